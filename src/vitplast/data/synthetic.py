"""``random``: seeded Gaussian images, already preprocessed, at the model's input size.

For smoke tests and benchmarks: ``random`` or ``random:N`` (N images per split, default 256). Items are
``float32 [3, S, S]`` tensors drawn i.i.d. from N(0, 1), i.e. in the model's normalised input space.
Labels cycle over 10 classes. Splits use different seeds so they never coincide.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from vitplast.data.base import DataBundle, Item
from vitplast.data.registry import DataContext, register
from vitplast.errors import VitplastError


class RandomImages(Dataset[Item]):
    """``n`` Gaussian images of ``size`` px; image i is a pure function of ``(seed, i)``."""

    def __init__(self, n: int, size: int, seed: int, num_classes: int = 10) -> None:
        self.n, self.size, self.seed, self.num_classes = n, size, seed, num_classes
        self.labels = torch.arange(n) % num_classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Item:
        if not 0 <= i < self.n:
            raise IndexError(i)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return torch.randn(3, self.size, self.size, generator=g), int(self.labels[i])


@register("random")
def load_random(arg: str, ctx: DataContext) -> DataBundle:
    try:
        n = int(arg) if arg else 256
    except ValueError:
        raise VitplastError(f"random:N needs an integer N, got {arg!r}") from None
    if n < 1:
        raise VitplastError(f"random:N needs N >= 1, got {n}")
    size = ctx.input_size or 224
    classes = [f"class{i}" for i in range(10)]
    base = 7919 * (ctx.seed + 1)
    return DataBundle(
        "random",
        classes,
        RandomImages(n, size, base + 1),
        RandomImages(max(1, n // 4), size, base + 2),
        RandomImages(n, size, base + 3),
        {"preprocessed": True},
    )
