"""Loading a :class:`SelectorData` from data specs (the images a selector sees)."""

from __future__ import annotations

import numpy as np
import torch

from vitplast.data import DataContext, IndexedSet, Transformed, load_data, make_transform
from vitplast.data.base import check_trainable
from vitplast.models import ViT
from vitplast.selectors.base import SelectorData


def _images(vit: ViT, spec: str, split: str, n: int, seed: int, stream: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    bundle = load_data(spec, DataContext(input_size=vit.data_config.input_size, seed=seed))
    if stream == 1:  # the target: refused as training refuses it (one class: every score would be zero)
        check_trainable(bundle)
    ds = bundle.split(split)
    idx = np.random.default_rng([seed, stream]).permutation(len(ds))[:n]  # type: ignore[arg-type]
    items = Transformed(IndexedSet(ds, idx), make_transform(vit.data_config, train=False))
    pairs = [items[i] for i in range(len(items))]
    return torch.stack([x for x, _ in pairs]), torch.tensor([y for _, y in pairs]), bundle.num_classes


def load_selector_data(
    vit: ViT, target: str, n: int = 64, seed: int = 0, source: str | None = None, split: str = "train",
    batch_size: int = 32,
) -> SelectorData:
    """``n`` seeded-random ``split`` images of ``target`` (and of ``source``), preprocessed for ``vit``; fewer
    when the split holds fewer. A target that training refuses (:func:`~vitplast.data.base.check_trainable`:
    fewer than two classes, an empty split) is refused here too."""
    x, y, k = _images(vit, target, split, n, seed, stream=1)
    src = _images(vit, source, split, len(x), seed, stream=0)[0] if source else None
    if src is not None and len(src) < len(x):
        x, y = x[: len(src)], y[: len(src)]
    return SelectorData(images=x, labels=y, num_classes=k, source=src, seed=seed, batch_size=batch_size)
