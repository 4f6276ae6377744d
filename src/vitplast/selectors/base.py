"""The selector interface: ``(model, data) -> Scores`` (docs/selectors.md).

A selector scores every selectable trainable group (``embed ln1 mha ln2 fc1 fc2``; the ``head`` is always
trained) and, where the score is defined per block, each component of each block. Higher = more worth
training. A group a selector cannot score (plasticity has no ``embed`` score) gets NaN and is ranked last.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from vitplast.errors import VitplastError
from vitplast.models import ViT, as_vit
from vitplast.selectors.registry import get_selector
from vitplast.train.groups import SELECTABLE


@dataclass
class SelectorData:
    """What a selector sees of the user's data: preprocessed target images ``[N, 3, H, W]`` with labels.

    ``source``: preprocessed source (pretraining-like) images, needed only by embedding-mode and in-situ
    plasticity (pairs (source_i, target_i)). ``num_classes``: size of the new head the gradient selectors
    attach. ``seed`` fixes the new head and the random selector. ``cache`` memoises per-model results
    (the gradients several selectors share), keyed by the model and the version counters of its parameters,
    so a model changed in place is never served stale results.
    """

    images: Tensor
    labels: Tensor
    num_classes: int
    source: Tensor | None = None
    seed: int = 0
    batch_size: int = 32
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or len(self.images) != len(self.labels) or len(self.images) < 2:
            raise VitplastError(f"selector data needs >= 2 images [N,3,H,W] with N labels, got {tuple(self.images.shape)}")
        if self.num_classes < 1 or int(self.labels.max()) >= self.num_classes or int(self.labels.min()) < 0:
            raise VitplastError(f"labels must lie in [0, {self.num_classes})")


@dataclass
class Scores:
    """One selector's output: ``groups[g]`` per selectable group; ``blocks[c][b]`` per block where defined.
    ``whole_blocks``: a block-level set takes whole blocks (every component of a block at once: last-k, first-k)."""

    selector: str
    groups: dict[str, float]
    blocks: dict[str, list[float]] = field(default_factory=dict)
    whole_blocks: bool = False

    def unit_ranking(self) -> list[tuple[str, int]]:
        """``(component, block)`` units by decreasing per-block score; NaN scores last; ties broken by block,
        then by the canonical component order."""
        order = {c: i for i, c in enumerate(SELECTABLE)}
        units = [(c, b) for c, per in self.blocks.items() for b in range(len(per))]
        return sorted(units, key=lambda u: (math.isnan(v := self.blocks[u[0]][u[1]]), -_num(v), u[1], order[u[0]]))

    def ranking(self) -> list[str]:
        """Groups by decreasing score; NaN scores last; ties broken by the canonical group order."""
        order: dict[str, int] = {str(g): i for i, g in enumerate(SELECTABLE)}
        return sorted(self.groups, key=lambda g: (math.isnan(self.groups[g]), -_num(self.groups[g]), order.get(g, 99)))


def _num(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def score(name: str, model: ViT | nn.Module, data: SelectorData) -> Scores:
    """Run selector ``name`` on ``model`` (a :class:`ViT` or a timm / HF module) and ``data``."""
    fn = get_selector(name)
    vit = as_vit(model)
    return fn(vit, data)


def group_params(vit: ViT) -> dict[str, list[nn.Parameter]]:
    """Parameters of each selectable group (each tensor once)."""
    groups = vit.param_groups()
    return {g: _unique(groups[g]) for g in SELECTABLE}


def block_params(vit: ViT) -> dict[str, list[list[nn.Parameter]]]:
    """``[component][block]`` -> that component's parameters in that block."""
    comps = [g for g in SELECTABLE if g != "embed"]
    return {c: [_unique(b.params[c]) for b in vit.blocks] for c in comps}


def _unique(params: list[nn.Parameter]) -> list[nn.Parameter]:
    seen: dict[int, nn.Parameter] = {}
    for p in params:
        seen.setdefault(id(p), p)
    return list(seen.values())


def memo(data: SelectorData, vit: ViT, what: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per (model state, ``what``) for this data (see :attr:`SelectorData.cache`)."""
    key = (what, id(vit.module), tuple(p._version for p in vit.module.parameters()))
    if key not in data.cache:
        data.cache[key] = compute()
    return data.cache[key]


def numel(params: list[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def by_group(vit: ViT, fn: Callable[[list[nn.Parameter]], float], name: str, per_block: bool = True) -> Scores:
    """Scores whose value for a set of parameters is ``fn(params)``, per group and (optionally) per block."""
    groups = {g: fn(ps) for g, ps in group_params(vit).items()}
    blocks = {c: [fn(ps) for ps in per] for c, per in block_params(vit).items()} if per_block else {}
    return Scores(name, groups, blocks)


def total_norm(tensors: list[Tensor]) -> float:
    """sqrt(sum of squared entries of all tensors), in float64."""
    return math.sqrt(sum(float(t.double().pow(2).sum()) for t in tensors))


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
