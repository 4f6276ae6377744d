"""``mini:count`` and ``mini:position``: relation tasks drawn from a seed; train / val / test use different shapes.

Objects are the filled shapes of :mod:`vitplast.data.mini.procedural` (signed distance fields, one-pixel
anti-aliasing), each in a random bright colour (hue uniform, saturation 0.5-1, value 0.7-1) and rotation,
over that module's procedural background with 0-4 clutter items behind them, then pixel noise. The shape
of every object is drawn from its split's shapes (:data:`SPLIT_SHAPES`): train ``disk, square, triangle``,
val ``ring``, test ``cross, star``, so the test objects are shapes never seen in training.

**mini:count** - 5 classes, the number of objects (1-5), each of radius 2.5-4.5 px, centres at least
``r_i + r_j + 1.5`` px apart (each drawn uniformly until it fits, all redrawn
when one cannot be placed) and at least 3 px inside the border.

**mini:position** - 4 classes, where object B (a blue family colour, hue 0.55-0.70) lies relative to object
A (a red one, hue -0.05-0.05): ``left``, ``right``, ``above``, ``below``; the direction from A to B is
within 30 degrees of the class direction, the distance 10-16 px (so the two never touch), the radii 2.5-4.5
px, both at least 3 px inside the border; the clutter is gray here, so A and B are the only red and blue objects.

Per class: 1,000 train, 250 val and 250 test images for count (5,000 / 1,250 / 1,250) and 1,200 / 300 /
300 for position (4,800 / 1,200 / 1,200). Every split is drawn from ``SeedSequence([VERSION, task, split])``
and cached as ``ROOT/mini/{task}-v{VERSION}.pt``.
"""

from __future__ import annotations

import numpy as np
import torch

from vitplast.data.base import DataBundle
from vitplast.data.mini import procedural
from vitplast.data.mini.cache import SPLITS, Splits
from vitplast.data.mini.common import cache_file, cached_bundle
from vitplast.data.registry import DataContext

VERSION = 1  # bump when the construction changes (invalidates caches)
SIZE = 32
SPLIT_SHAPES = {"train": ("disk", "square", "triangle"), "val": ("ring",), "test": ("cross", "star")}
TASKS = ("count", "position")
CLASSES = {"count": ["1", "2", "3", "4", "5"], "position": ["left", "right", "above", "below"]}
PER_CLASS = {
    "count": {"train": 1000, "val": 250, "test": 250},
    "position": {"train": 1200, "val": 300, "test": 300},
}
COUNT_RADIUS = (2.5, 4.5)
BORDER = 3.0
GAP = 1.5
POSITION_RADIUS = (2.5, 4.5)
POSITION_DISTANCE = (10.0, 16.0)
POSITION_SPREAD = 30.0  # degrees, +-
#: class -> direction of B from A in image coordinates (y grows downwards)
DIRECTIONS = {"left": np.pi, "right": 0.0, "above": -np.pi / 2, "below": np.pi / 2}
HUE_A, HUE_B = (-0.05, 0.05), (0.55, 0.70)


def place(rng: np.random.Generator, radii: np.ndarray, tries: int = 100) -> np.ndarray:
    """Centres ``[k, 2]`` of ``k`` disks of ``radii`` inside the image, pairwise at least ``r_i + r_j + GAP`` apart:
    each drawn uniformly until it fits (``tries`` draws, then all start again; ``ValueError`` after ``tries``
    restarts)."""
    for _ in range(tries):
        centres: list[np.ndarray] = []
        for r in radii:
            for _ in range(tries):
                c = rng.uniform(BORDER + r, SIZE - BORDER - r, 2)
                if all(np.hypot(*(c - o)) >= r + q + GAP for o, q in zip(centres, radii, strict=False)):
                    centres.append(c)
                    break
            else:
                break
        if len(centres) == len(radii):
            return np.stack(centres)
    raise ValueError(f"cannot place {len(radii)} objects")


def object_coverage(shape: int, centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """``float32 [S, S]`` anti-aliased coverage of one rotated shape of ``radius`` px at ``centre`` (x, y)."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + np.float32(0.5)
    rx, ry = (xs - centre[0]) / radius, (ys - centre[1]) / radius
    u, v = np.cos(angle) * rx + np.sin(angle) * ry, -np.sin(angle) * rx + np.cos(angle) * ry
    sdf = procedural.shape_sdf(shape, u, v) * radius
    return np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32)


def _scene(task: str, label: int, shapes: list[int], rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    """Objects of one image as (coverage, hue); the count task's hues are uniform."""
    if task == "count":
        radii = rng.uniform(*COUNT_RADIUS, label + 1)
        centres = place(rng, radii)
        hues = rng.random(label + 1)
    else:
        radii = rng.uniform(*POSITION_RADIUS, 2)
        ang = DIRECTIONS[CLASSES["position"][label]] + np.deg2rad(rng.uniform(-POSITION_SPREAD, POSITION_SPREAD))
        step = rng.uniform(*POSITION_DISTANCE) * np.array([np.cos(ang), np.sin(ang)])
        lo = np.maximum(BORDER + radii[0], BORDER + radii[1] - step)
        hi = np.minimum(SIZE - BORDER - radii[0], SIZE - BORDER - radii[1] - step)
        a = rng.uniform(np.minimum(lo, hi), np.maximum(lo, hi))
        centres = np.stack([a, a + step])
        hues = np.array([rng.uniform(*HUE_A) % 1.0, rng.uniform(*HUE_B)])
    kinds = rng.choice(shapes, len(radii))
    angles = rng.uniform(0, 2 * np.pi, len(radii))
    return [
        (object_coverage(int(k), c, float(r), float(t)), float(h))
        for k, c, r, t, h in zip(kinds, centres, radii, angles, hues, strict=True)
    ]


def render(task: str, split: str, per_class: int, seed: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` images of every class of ``task`` with the shapes of ``split``, shuffled."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES[task])), per_class))
    shapes = [procedural.SHAPES.index(s) for s in SPLIT_SHAPES[split]]
    b = len(labels)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + np.float32(0.5)
    x, y = np.broadcast_to(xs, (b, SIZE, SIZE)), np.broadcast_to(ys, (b, SIZE, SIZE))
    img = procedural.background(rng, b, SIZE, x, y)
    items = procedural.clutter(rng, b, SIZE, x, y)
    if task == "position":  # no red or blue clutter: gray items
        items = [(idx, alpha, colour.mean(axis=1, keepdims=True).repeat(3, 1), front) for idx, alpha, colour, front in items]
    procedural.composite(img, items, front=False)
    for i, label in enumerate(labels):
        for cov, hue in _scene(task, int(label), shapes, rng):
            hsv = np.array([hue, rng.uniform(0.5, 1.0), rng.uniform(0.7, 1.0)])
            colour = procedural.hsv_rgb(hsv[None])[0][:, None, None]
            img[i] += (colour - img[i]) * cov[None]
    return torch.from_numpy(procedural.finish(img, rng)), torch.from_numpy(labels.astype(np.int64))


def build(task: str) -> Splits:
    index = TASKS.index(task)
    return {s: render(task, s, PER_CLASS[task][s], [VERSION, index, k]) for k, s in enumerate(SPLITS)}


def load(task: str, arg: str, ctx: DataContext) -> DataBundle:
    """The cached bundle of ``task`` (``arg``: the spec argument, unused: checked by the caller)."""
    path = cache_file(ctx, f"{task}-v{VERSION}.pt")
    return cached_bundle(
        f"mini:{task}",
        CLASSES[task],
        path,
        lambda: build(task),
        origin=f"procedural {task} scenes; object shapes train {'/'.join(SPLIT_SHAPES['train'])}, "
        f"val {'/'.join(SPLIT_SHAPES['val'])}, test {'/'.join(SPLIT_SHAPES['test'])}",
        shapes={s: list(SPLIT_SHAPES[s]) for s in SPLITS},
        version=VERSION,
    )
