"""Helpers shared by the mini-suite loaders: fixed stratified splits, resizing, bundle assembly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vitplast.data.base import SPLIT_SEED, VAL_FRACTION, DataBundle, TensorImageSet
from vitplast.data.mini.cache import SPLITS, Splits, cached
from vitplast.data.registry import DataContext, default_root

TEST_FRACTION = 0.2


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch ops on one intra-op thread, restoring the previous count afterwards.

    Data building is a long chain of small tensor ops; on a shared machine, every multi-threaded op
    waits for all its threads to be scheduled, which made these builders 10-50x slower on 2 busy cores.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def stratified_splits(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Indices of a fixed, class-stratified split of one pool: 20 % test, then 20 % of the rest as val.

    Drawn with :data:`~vitplast.data.base.SPLIT_SEED`, independently of any run seed; each index array
    is in a fixed shuffled order (so a prefix of a split is a class-mixed sample).
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)
    train, val = train_test_split(rest, test_size=VAL_FRACTION, stratify=labels[rest], random_state=SPLIT_SEED)
    return {"train": np.asarray(train), "val": np.asarray(val), "test": np.asarray(test)}


def split_pool(images: torch.Tensor, labels: np.ndarray) -> Splits:
    """Apply :func:`stratified_splits` to a pool of images."""
    lab = torch.as_tensor(labels, dtype=torch.long)
    return {s: (images[torch.as_tensor(i)], lab[torch.as_tensor(i)]) for s, i in stratified_splits(labels).items()}


def gray_to_rgb_uint8(gray: np.ndarray, scale: float, size: int = 32) -> torch.Tensor:
    """Gray images ``[N, h, w]`` with values in ``[0, scale]`` -> bilinearly resized ``uint8 [N, 3, size, size]``."""
    x = torch.as_tensor(np.asarray(gray, dtype=np.float32) * (255.0 / scale))[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def bundle(name: str, classes: list[str], splits: Splits, **info: Any) -> DataBundle:
    """A :class:`DataBundle` of :class:`TensorImageSet` splits; ``info`` gains the split sizes."""
    sets = {s: TensorImageSet(*splits[s]) for s in SPLITS}
    info["sizes"] = {s: len(sets[s]) for s in SPLITS}
    return DataBundle(name, classes, sets["train"], sets["val"], sets["test"], info)


def cache_file(ctx: DataContext, name: str) -> Path:
    """``ROOT/mini/name``, where a mini set is cached (``ROOT``: the context's data root, else the default)."""
    return (ctx.root if ctx.root is not None else default_root()) / "mini" / name


def cached_bundle(name: str, classes: list[str], path: Path, build: Callable[[], Splits], **info: Any) -> DataBundle:
    """:func:`bundle` of the splits cached at ``path`` (built by ``build`` on a miss); ``info`` gains ``cache`` (the
    path) and ``cache_hit``."""
    splits, hit = cached(path, build)
    return bundle(name, classes, splits, **info, cache=str(path), cache_hit=hit)
