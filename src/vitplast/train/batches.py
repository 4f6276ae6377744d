"""Deterministic, resumable data order and augmentation for training.

The training stream is the concatenation of epoch permutations of the train split: epoch ``e`` is
``randperm(n)`` drawn from a generator seeded with ``(seed, e)``. Update ``s`` uses stream positions
``[s * B, (s + 1) * B)``, so a run resumed at step ``s`` sees exactly the images an uninterrupted run sees.
Each stream position ``p`` also carries its own augmentation seed ``hash(seed, p)``; the random crop and
flip of an image are drawn from a generator seeded with it, so augmentation does not depend on worker
processes, on the number of workers or on where a run was resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2 as T

from vitplast.data.transforms import make_transform
from vitplast.models.vit import DataConfig


def _seed_of(*parts: int) -> int:
    """A 63-bit seed mixing integers (SeedSequence), stable across platforms and Python versions."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class StreamSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, aug_seed)`` for stream positions ``start .. stop - 1`` (see module docstring)."""

    def __init__(self, n: int, seed: int, start: int, stop: int) -> None:
        self.n, self.seed, self.start, self.stop = n, seed, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        pos = self.start
        while pos < self.stop:
            epoch, offset = divmod(pos, self.n)
            g = torch.Generator().manual_seed(_seed_of(self.seed, epoch, 1))
            perm = torch.randperm(self.n, generator=g).tolist()
            for i in perm[offset:]:
                if pos >= self.stop:
                    return
                yield i, _seed_of(self.seed, pos, 2)
                pos += 1


class SeededAugment(Dataset[tuple[torch.Tensor, int]]):
    """``base`` items transformed under a per-item seed: ``ds[(i, s)]`` is deterministic in ``(i, s)``.

    The transform draws from the global CPU generator (torchvision's convention); it is seeded with
    ``s`` for the call and its previous state restored, so the caller's random state is left untouched.
    """

    def __init__(self, base: Dataset[Any], transform: Callable[[Any], torch.Tensor]) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        i, seed = key
        img, label = self.base[i]
        gen = torch.default_generator
        saved = gen.get_state()
        gen.manual_seed(seed)
        try:
            return self.transform(img), int(label)
        finally:
            gen.set_state(saved)


def train_transform(cfg: DataConfig, augment: str) -> Callable[[Any], torch.Tensor]:
    """``rrc``: :func:`~vitplast.data.make_transform` (RandomResizedCrop + flip); ``crop``: pad-crop + flip;
    ``none``: the eval transform."""
    if augment == "rrc":
        return make_transform(cfg, train=True)
    if augment == "none":
        return make_transform(cfg, train=False)
    size = cfg.input_size
    resize = make_transform(cfg, train=False)  # used only when an image is not at the input size
    pipeline = T.Compose(
        [
            T.RandomCrop(size, padding=max(1, size // 8), padding_mode="reflect"),
            T.RandomHorizontalFlip(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(list(cfg.mean), list(cfg.std)),
        ]
    )

    def apply(img: Any) -> torch.Tensor:
        t = img if isinstance(img, torch.Tensor) else T.functional.pil_to_tensor(img.convert("RGB"))
        if t.is_floating_point() or tuple(t.shape[-2:]) != (size, size) or t.shape[0] != 3:
            return resize(img)
        return pipeline(t)

    return apply


def loader(
    dataset: Dataset[Any], batch_size: int, workers: int, sampler: Sampler[Any] | None = None, pin: bool = False
) -> DataLoader[Any]:
    """A DataLoader in fixed order that never draws from the global random generator; ``pin``: batches in
    page-locked memory (for non-blocking copies to a GPU).

    (A DataLoader without its own ``generator`` draws a base seed from the global generator each time it
    is iterated, which would make the model's random state depend on how often it was evaluated.)
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=workers,
        persistent_workers=False,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(0),
    )
