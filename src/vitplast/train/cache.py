"""In-process cache of models and data sets, keyed by their spec (``docs/precision.md``, "Fixed cost").

A sweep worker runs many finetuning runs of the same model on the same data sets; building them once per
process removes that fixed cost from every run after the first. :func:`model` returns a deep copy of a
pristine cached model's module, wrapped anew by the adapters (a run trains its copy in place, the cached one
is never handed out); :func:`data`
returns the cached :class:`~vitplast.data.DataBundle` itself (data sets are read-only); :func:`probe_head`
keeps the linear-probe head an LP-FT run starts from (``docs/mini-protocol.md``), which depends only on the
pretrained backbone and the train split. Each keeps the :data:`SIZE` most recently used entries. :func:`clear`
empties the cache.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import torch

from vitplast.data import DataBundle, DataContext, load_data
from vitplast.models import as_vit, load_model
from vitplast.models.vit import ViT

T = TypeVar("T")
SIZE = 4
HEADS = 256
_MODELS: OrderedDict[Hashable, ViT] = OrderedDict()
_DATA: OrderedDict[Hashable, DataBundle] = OrderedDict()
_HEADS: OrderedDict[Hashable, tuple[torch.Tensor, torch.Tensor, float]] = OrderedDict()


def _get(store: OrderedDict[Hashable, T], key: Hashable, build: Callable[[], T], size: int = SIZE) -> T:
    if key in store:
        store.move_to_end(key)
        return store[key]
    value = build()
    store[key] = value
    while len(store) > size:
        store.popitem(last=False)
    return value


def model(spec: str, random_weights: bool = False, seed: int = 0) -> ViT:
    """A fresh copy of ``load_model(spec, random_weights=..., seed=...)`` (seed matters only for random weights)."""
    key = (spec, random_weights, seed if random_weights else None)
    return fresh_copy(_get(_MODELS, key, lambda: load_model(spec, random_weights=random_weights, seed=seed)))


def fresh_copy(vit: ViT) -> ViT:
    """A deep copy of ``vit``'s module, wrapped anew by the adapters (their closures see the copy)."""
    fresh = as_vit(copy.deepcopy(vit.module), vit.name)
    fresh.data_config = vit.data_config
    return fresh


def data(spec: str, input_size: int | None) -> DataBundle:
    """``load_data(spec, DataContext(input_size))``, built once per process."""
    return _get(_DATA, (spec, input_size), lambda: load_data(spec, DataContext(input_size=input_size)))


def probe_head(
    key: Hashable, fit: Callable[[], tuple[torch.Tensor, torch.Tensor, float]]
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``fit()`` once per process and ``key`` (the model and data identity of the backbone it was fitted on); a
    head is a few kB, so :data:`HEADS` of them are kept (a suite cycles through all its targets per group)."""
    return _get(_HEADS, key, fit, HEADS)


def clear() -> None:
    """Drop every cached model, data set and probe head."""
    _MODELS.clear()
    _DATA.clear()
    _HEADS.clear()
