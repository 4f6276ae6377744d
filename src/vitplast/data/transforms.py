"""Image transforms built from the model's own preprocessing (:class:`~vitplast.models.vit.DataConfig`).

Eval: resize the short side to ``input_size / crop_pct``, centre-crop ``input_size``, scale to [0, 1],
normalise with the model's mean/std. Train (README, "Reproducing the paper offline"): RandomResizedCrop at ``input_size`` plus a
horizontal flip, then the same normalisation. Items that are already float tensors of the right size
(the ``random`` set) pass through unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from vitplast.models.vit import DataConfig

_INTERP = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
}


def _to_rgb_tensor(img: Any) -> torch.Tensor:
    """PIL / ndarray / tensor -> uint8 or float tensor [3, H, W] (grayscale and RGBA made RGB)."""
    t = img if isinstance(img, torch.Tensor) else T.functional.pil_to_tensor(img.convert("RGB"))
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    elif t.shape[0] == 4:
        t = t[:3]
    return t


def make_transform(cfg: DataConfig, train: bool = False) -> Callable[[Any], torch.Tensor]:
    """Transform from a raw image to the model's normalised float input ``[3, S, S]``."""
    size = cfg.input_size
    interp = _INTERP.get(cfg.interpolation, InterpolationMode.BICUBIC)
    if train:
        geometric: list[Any] = [
            T.RandomResizedCrop(size, interpolation=interp, antialias=True),
            T.RandomHorizontalFlip(),
        ]
    else:
        resize = size if cfg.crop_pct >= 1.0 else math.floor(size / cfg.crop_pct)
        geometric = [T.Resize(resize, interpolation=interp, antialias=True), T.CenterCrop(size)]
    pipeline = T.Compose([*geometric, T.ToDtype(torch.float32, scale=True), T.Normalize(list(cfg.mean), list(cfg.std))])

    def apply(img: Any) -> torch.Tensor:
        t = _to_rgb_tensor(img)
        if t.is_floating_point() and tuple(t.shape[-2:]) == (size, size):
            return t  # already preprocessed (e.g. the ``random`` set)
        if t.is_floating_point():
            raise ValueError("float images must already be at the model's input size")
        return pipeline(t)

    return apply


class Transformed(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """``base`` with ``transform`` applied to each image."""

    def __init__(self, base: torch.utils.data.Dataset[Any], transform: Callable[[Any], torch.Tensor]):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img, label = self.base[i]
        return self.transform(img), label
