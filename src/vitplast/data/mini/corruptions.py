"""CIFAR-10-C-style corruptions of 32 px images (Hendrycks & Dietterich, 2019), severity 1-5.

All functions map ``float32 [N, 3, H, W]`` images in ``[0, 1]`` to corrupted images in ``[0, 1]``; the
random draws come from a ``torch.Generator`` and do not depend on the severity (the same noise field is
scaled), so the distance to the clean image grows with the severity. Parameters are those of the
CIFAR-10-C generation script for 32 px images:

- ``gaussian_noise``: ``x + c * z``, ``z ~ N(0, 1)``, ``c`` in (0.04, 0.06, 0.08, 0.09, 0.10);
- ``speckle_noise``: ``x + x * c * z``, ``c`` in (0.06, 0.10, 0.12, 0.16, 0.20);
- ``contrast``: ``(x - m) * c + m`` with ``m`` the per-image mean, ``c`` in (0.75, 0.5, 0.4, 0.3, 0.15);
- ``motion_blur``: average of the image shifted along a random direction (uniform in +-45 degrees)
  at offsets ``0..radius`` px weighted by ``exp(-t^2 / 2 sigma^2)`` (one-sided, as ImageMagick's
  motion blur), ``(radius, sigma)`` in ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3));
- ``snow`` (snow-like; the original uses ImageMagick): a flake layer ``loc + scale * z`` on a grid
  zoomed by ``zoom``, cut below ``threshold``, motion-blurred (random direction in -135..-45 degrees),
  added twice (the layer and its 180-degree rotation) to the image brightened as
  ``blend * x + (1 - blend) * max(x, 1.5 * gray(x) + 0.5)``; ``(loc, scale, zoom, threshold, radius,
  sigma, blend)`` per severity as in CIFAR-10-C.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from vitplast.data.mini.common import one_torch_thread

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]

GAUSSIAN = (0.04, 0.06, 0.08, 0.09, 0.10)
SPECKLE = (0.06, 0.10, 0.12, 0.16, 0.20)
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
MOTION = ((10, 1.0), (10, 1.5), (10, 2.0), (10, 2.5), (12, 3.0))
SNOW = (
    (0.1, 0.2, 1.0, 0.6, 8, 3.0, 0.95),
    (0.1, 0.2, 1.0, 0.5, 10, 4.0, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4.0, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6.0, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12.0, 0.8),
)


def gaussian_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    z = torch.randn(x.shape, generator=gen)
    return (x + GAUSSIAN[severity - 1] * z).clamp(0, 1)


def speckle_noise(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    z = torch.randn(x.shape, generator=gen)
    return (x + x * SPECKLE[severity - 1] * z).clamp(0, 1)


def contrast(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - m) * CONTRAST[severity - 1] + m).clamp(0, 1)


def directional_blur(x: torch.Tensor, angle: torch.Tensor, radius: int, sigma: float) -> torch.Tensor:
    """One-sided motion blur: ``sum_t w_t x(p + t d) / sum_t w_t``, ``d = (cos a, sin a)``, ``t = 0..radius``.

    ``angle`` holds one direction (radians) per image; samples are bilinear with border padding.
    """
    n, _, h, w = x.shape
    ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h)
    xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).expand(n, h, w, 2)
    step = torch.stack([torch.cos(angle) * 2 / w, torch.sin(angle) * 2 / h], -1)[:, None, None, :]
    out = torch.zeros_like(x)
    total = 0.0
    for t in range(radius + 1):
        wt = math.exp(-(t**2) / (2 * sigma**2))
        grid = base + step * t
        out += wt * F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        total += wt
    return out / total


def motion_blur(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    radius, sigma = MOTION[severity - 1]
    angle = (torch.rand(len(x), generator=gen) * 90 - 45) * math.pi / 180
    return directional_blur(x, angle, radius, sigma).clamp(0, 1)


def _zoom(layer: torch.Tensor, factor: float) -> torch.Tensor:
    """Centre crop of ``1 / factor`` of the side, resized back (``scipy.ndimage.zoom`` of CIFAR-10-C)."""
    if factor <= 1.0:
        return layer
    h, w = layer.shape[-2:]
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = layer[..., top : top + ch, left : left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)


def snow(x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor:
    loc, scale, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    n, _, h, w = x.shape
    z = torch.randn((n, 1, h, w), generator=gen)
    angle = (torch.rand(n, generator=gen) * 90 - 135) * math.pi / 180
    layer = _zoom(loc + scale * z, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
    layer = directional_blur(layer, angle, radius, sigma)
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]) * 1.5 + 0.5
    x = blend * x + (1 - blend) * torch.maximum(x, gray)
    return (x + layer + layer.flip(-1, -2)).clamp(0, 1)


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "motion_blur": motion_blur,
    "contrast": contrast,
    "snow": snow,
    "speckle_noise": speckle_noise,
}


def corrupt(images: torch.Tensor, name: str, severity: int, seed: int, chunk: int = 1024) -> torch.Tensor:
    """Corrupt ``uint8 [N, 3, H, W]`` images; deterministic in ``(name, seed)`` and the same draws at every
    severity. Processed in chunks of ``chunk`` images, each with its own generator."""
    fn = CORRUPTIONS[name]
    out = torch.empty_like(images)
    with one_torch_thread():
        for k, start in enumerate(range(0, len(images), chunk)):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + k)
            x = images[start : start + chunk].float() / 255.0
            out[start : start + chunk] = (fn(x, severity, gen) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return out
