"""Procedural 32 px scenes: one textured, coloured shape on a cluttered background.

A class is a triple ``(shape, texture, colour family)`` from :data:`SHAPES` x :data:`TEXTURES` x
:data:`COLOURS` (6 x 4 x 4 = 96 triples). The *source* classes are the triples whose index sum
``s + t + c`` is even (48 classes), the *novel* classes those whose sum is odd (48): every shape,
texture and colour family occurs in both designs, every pair of attributes fixes only half of the
third's values, so recognising a class needs all three attributes, and the novel classes are
exactly the combinations never shown during pretraining.

Nuisance factors, drawn independently per image: object centre (uniform in ``[0.28, 0.72]`` of the
image side), radius (``0.2``-``0.36`` of the side), rotation (uniform, the texture rotates with the
shape), hue / saturation / value jitter inside the colour family, texture period and phase, a
low-saturation background (two-colour linear gradient plus low-frequency noise), 0-4 clutter items
(small blobs and thin line segments of any colour; one in three drawn in front of the object),
shading across the object, and pixel noise (uniform, standard deviation ``U(0, 0.03)``). Rendering is vectorised over a batch (signed distance
fields with one-pixel anti-aliasing), with no per-pixel Python loop.

A batch depends only on the ``numpy`` generator handed to :func:`render`: a seeded generator gives
identical images on a given machine and numpy version (across CPUs, numpy's SIMD float32 math may move
a rare pixel by one gray level).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import hsv_to_rgb

SHAPES = ("disk", "square", "triangle", "cross", "ring", "star")
TEXTURES = ("solid", "stripes", "checker", "dots")
COLOURS = ("red", "yellow", "green", "blue")
# Centre hue of each colour family (fraction of the hue circle) and the jitter around it.
HUES = (0.0, 0.15, 0.35, 0.62)
HUE_JITTER = 0.035
MAX_CLUTTER = 4

Triple = tuple[int, int, int]


def design(kind: str) -> list[Triple]:
    """Class triples ``(shape, texture, colour)`` of the ``source`` (even index sum) or ``novel`` (odd) set."""
    parity = {"source": 0, "novel": 1}[kind]
    return [
        (s, t, c)
        for s in range(len(SHAPES))
        for t in range(len(TEXTURES))
        for c in range(len(COLOURS))
        if (s + t + c) % 2 == parity
    ]


def class_name(triple: Triple) -> str:
    s, t, c = triple
    return f"{COLOURS[c]}-{TEXTURES[t]}-{SHAPES[s]}"


@dataclass(frozen=True)
class Scene:
    """Per-image attributes of a batch (arrays of length B)."""

    shape: np.ndarray
    texture: np.ndarray
    colour: np.ndarray


def _box(u: np.ndarray, v: np.ndarray, bu: float, bv: float) -> np.ndarray:
    qu, qv = np.abs(u) - bu, np.abs(v) - bv
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    return outside + np.minimum(np.maximum(qu, qv), 0.0)


def _triangle(u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Signed distance to an equilateral triangle of half side ``r`` (apex up, centred)."""
    k = 3.0**0.5
    px = np.abs(u) - r
    py = -v + r / k
    fold = px + k * py > 0
    px, py = np.where(fold, (px - k * py) / 2, px), np.where(fold, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2 * r, 0.0)
    return -np.hypot(px, py) * np.sign(py)


def shape_sdf(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (in object radii; negative inside) of shape ``shape`` at object coords ``(u, v)``."""
    name = SHAPES[shape]
    if name == "disk":
        return np.hypot(u, v) - 0.88
    if name == "square":
        return _box(u, v, 0.74, 0.74)
    if name == "triangle":
        return _triangle(u, v + 0.18, 0.98)
    if name == "cross":
        return np.minimum(_box(u, v, 0.95, 0.3), _box(u, v, 0.3, 0.95))
    if name == "ring":
        return np.abs(np.hypot(u, v) - 0.7) - 0.24
    if name == "star":
        rad = np.hypot(u, v)
        phi = np.arctan2(v, u)
        return (rad - (0.6 + 0.36 * np.cos(5 * phi))) * 0.6
    raise ValueError(name)


def texture_mask(texture: int, u: np.ndarray, v: np.ndarray, period: np.ndarray) -> np.ndarray:
    """Fraction (0..1) of the family colour at each point; the rest is the dark shade."""
    name = TEXTURES[texture]
    a, b = 2 * np.pi * u / period, 2 * np.pi * v / period
    if name == "solid":
        return np.ones_like(u)
    if name == "stripes":
        return 0.5 + 0.5 * np.tanh(3.0 * np.sin(a))
    if name == "checker":
        return 0.5 + 0.5 * np.tanh(4.0 * np.sin(a) * np.sin(b))
    if name == "dots":
        fu, fv = u / period - np.round(u / period), v / period - np.round(v / period)
        return 0.5 + 0.5 * np.tanh(12.0 * (np.hypot(fu, fv) - 0.27))
    raise ValueError(name)


def _coverage(sdf_px: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a pixel from the signed distance in pixels."""
    return np.clip(0.5 - sdf_px, 0.0, 1.0)


def _segment_distance(
    x: np.ndarray, y: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray
) -> np.ndarray:
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / np.maximum(dx * dx + dy * dy, 1e-6), 0.0, 1.0)
    return np.hypot(x - x0 - t * dx, y - y0 - t * dy)


def _col(a: np.ndarray) -> np.ndarray:
    """[B] -> float32 [B, 1, 1] for broadcasting over pixels."""
    return np.asarray(a, dtype=np.float32)[:, None, None]


def hsv_rgb(hsv: np.ndarray) -> np.ndarray:
    return hsv_to_rgb(hsv).astype(np.float32)


def _upsample_matrix(n: int, size: int) -> np.ndarray:
    """Bilinear interpolation weights ``[size, n]`` from ``n`` grid nodes spanning the image to ``size`` px."""
    pos = np.linspace(0, n - 1, size)
    w = np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(n)[None, :]))
    return w.astype(np.float32)


def background(rng: np.random.Generator, b: int, size: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[B, 3, S, S]``: two low-saturation colours blended along a random direction, plus 5x5 bilinear noise."""
    hsv = np.stack([rng.random((b, 2)), rng.uniform(0.0, 0.35, (b, 2)), rng.uniform(0.2, 0.85, (b, 2))], -1)
    c0, c1 = hsv_rgb(hsv[:, 0]), hsv_rgb(hsv[:, 1])  # [B, 3]
    ang = rng.uniform(0, 2 * np.pi, b)
    g = (_col(np.cos(ang)) * (x - size / 2) + _col(np.sin(ang)) * (y - size / 2)) / size + 0.5
    g = np.clip(g, 0, 1)[:, None]  # [B, 1, S, S]
    grid = rng.normal(0.0, 0.06, (b, 3, 5, 5)).astype(np.float32)
    up = _upsample_matrix(5, size)
    rows = np.tensordot(grid, up, axes=([3], [1]))  # [B, 3, 5, S]: upsampled along x
    img = np.ascontiguousarray(np.tensordot(rows, up, axes=([2], [1])).transpose(0, 1, 3, 2))  # [B, 3, S, S]
    img += c0[:, :, None, None]
    img += (c1 - c0)[:, :, None, None] * g
    return img


Item = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def clutter(rng: np.random.Generator, b: int, size: int, x: np.ndarray, y: np.ndarray) -> list[Item]:
    """Up to ``MAX_CLUTTER`` items per image: slots of (image index [M], alpha [M,1,S,S], colour [M,3,1,1],
    in front [M]).

    Each image has ``count ~ U{0..MAX_CLUTTER}`` items; geometry is computed only where an item exists.
    """
    count = rng.integers(0, MAX_CLUTTER + 1, b)
    items = []
    for k in range(MAX_CLUTTER):
        is_line = rng.random(b) < 0.5
        cx, cy = rng.uniform(0, size, (2, b))
        radius = rng.uniform(1.2, 2.8, b)
        ang = rng.uniform(0, np.pi, b)
        half = rng.uniform(3.0, 8.0, b)
        width = rng.uniform(0.35, 0.7, b)
        hsv = np.stack([rng.random(b), rng.random(b), rng.uniform(0.3, 1.0, b)], -1)
        front = rng.random(b) < 1 / 3
        idx = np.flatnonzero(count > k)
        sdf = np.empty((len(idx), size, size), np.float32)
        line = is_line[idx]
        bi, li = idx[~line], idx[line]
        sdf[~line] = np.hypot(x[bi] - _col(cx[bi]), y[bi] - _col(cy[bi])) - _col(radius[bi])
        dx, dy = half[li] * np.cos(ang[li]), half[li] * np.sin(ang[li])
        ends = _col(cx[li] - dx), _col(cy[li] - dy), _col(cx[li] + dx), _col(cy[li] + dy)
        sdf[line] = _segment_distance(x[li], y[li], *ends) - _col(width[li])
        items.append((idx, _coverage(sdf)[:, None], hsv_rgb(hsv[idx])[:, :, None, None], front[idx]))
    return items


def composite(img: np.ndarray, items: list[Item], front: bool) -> None:
    """Paint the clutter items that are (``front``) or are not in front of the object onto ``img`` in place."""
    for idx, alpha, colour, in_front in items:
        keep = in_front == front
        sel = idx[keep]
        img[sel] += (colour[keep] - img[sel]) * alpha[keep]


def render(scene: Scene, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Render a batch of scenes as ``uint8 [B, 3, size, size]`` RGB images, all randomness from ``rng``.

    Layout: images ``[B, 3, S, S]``, per-pixel maps ``[B, S, S]``.
    """
    b = len(scene.shape)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + np.float32(0.5)
    x, y = np.broadcast_to(xs, (b, size, size)), np.broadcast_to(ys, (b, size, size))

    img = background(rng, b, size, x, y)
    items = clutter(rng, b, size, x, y)
    composite(img, items, front=False)

    cx, cy = rng.uniform(0.28, 0.72, (2, b)) * size
    radius = rng.uniform(0.2, 0.36, b) * size
    theta = rng.uniform(0, 2 * np.pi, b)
    period = rng.uniform(0.11, 0.19, b) * size / radius  # 3.5-6 px at 32 px, in object radii
    phase = rng.uniform(0, 1, (2, b))
    cos, sin = _col(np.cos(theta)), _col(np.sin(theta))
    rx, ry = (x - _col(cx)) / _col(radius), (y - _col(cy)) / _col(radius)
    u, v = cos * rx + sin * ry, -sin * rx + cos * ry

    sdf = np.empty((b, size, size), np.float32)
    mask = np.empty((b, size, size), np.float32)
    for s in range(len(SHAPES)):
        idx = np.flatnonzero(scene.shape == s)
        if len(idx):
            sdf[idx] = shape_sdf(s, u[idx], v[idx])
    for t in range(len(TEXTURES)):
        idx = np.flatnonzero(scene.texture == t)
        if len(idx):
            p = _col(period[idx])
            mask[idx] = texture_mask(t, u[idx] + _col(phase[0, idx]) * p, v[idx] + _col(phase[1, idx]) * p, p)
    coverage = _coverage(sdf * _col(radius))

    hue = (np.asarray(HUES)[scene.colour] + rng.uniform(-HUE_JITTER, HUE_JITTER, b)) % 1.0
    hsv = np.stack([hue, rng.uniform(0.65, 1.0, b), rng.uniform(0.7, 1.0, b)], -1)
    bright = hsv_rgb(hsv)[:, :, None, None]  # [B, 3, 1, 1]
    dark = bright * rng.uniform(0.12, 0.3, (b, 1, 1, 1)).astype(np.float32)
    shade_ang = rng.uniform(0, 2 * np.pi, b)
    shade = 1 + _col(rng.uniform(0, 0.25, b)) * (_col(np.cos(shade_ang)) * rx + _col(np.sin(shade_ang)) * ry)
    # img <- img (1 - cov) + cov * shade * (dark + (bright - dark) * mask), with few full-size temporaries
    lit = coverage * shade
    img *= (1 - coverage)[:, None]
    img += dark * lit[:, None]
    img += (bright - dark) * (lit * mask)[:, None]

    composite(img, items, front=True)

    return finish(img, rng)


def finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add pixel noise (uniform, standard deviation ``U(0, 0.03)`` per image) to float images ``[B, 3, S, S]`` in
    0..1 (in place) and round them to ``uint8``."""
    noise = rng.random(img.shape, dtype=np.float32)
    noise -= 0.5
    noise *= rng.uniform(0, 0.03 * 12**0.5, (len(img), 1, 1, 1)).astype(np.float32)
    img += noise
    img *= 255.0
    img += 0.5
    np.clip(img, 0, 255.49, out=img)
    assert img.dtype == np.float32, img.dtype
    return img.astype(np.uint8)  # truncation of x + 0.5: rounding to nearest


def generate(
    triples: list[Triple], per_class: int, seed: int | Sequence[int], chunk: int = 1024, size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` images of each class triple (shuffled), ``uint8 [N,3,S,S]`` and labels ``[N]``.

    The label order and each chunk of ``chunk`` images come from independent child streams of
    ``numpy.random.SeedSequence(seed)``, so the result is a pure function of the arguments.
    """
    n = per_class * len(triples)
    ss = np.random.SeedSequence(seed if isinstance(seed, int) else list(seed))
    order_seq, *chunk_seqs = ss.spawn(1 + -(-n // chunk))
    labels = np.random.default_rng(order_seq).permutation(np.repeat(np.arange(len(triples)), per_class))
    table = np.asarray(triples, dtype=np.int64)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    for k, cs in enumerate(chunk_seqs):
        sl = slice(k * chunk, min(n, (k + 1) * chunk))
        attrs = table[labels[sl]]
        scene = Scene(shape=attrs[:, 0], texture=attrs[:, 1], colour=attrs[:, 2])
        images[sl] = render(scene, np.random.default_rng(cs), size)
    return images, labels
