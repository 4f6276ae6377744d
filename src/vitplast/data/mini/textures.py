"""``mini:textures``: 32 px crops of the photographs bundled with scikit-image; class = source photo.

Twelve photographs that ship inside the scikit-image wheel (no download: the loaders used here read
files from ``skimage/data``): astronaut, brick, camera, chelsea (cat), coffee, coins, grass, gravel,
hubble_deep_field, immunohistochemistry, moon, rocket. Gray photos are copied to 3 channels.

Each photo is resized (anti-aliased) so its short side is 256 px and cut into a grid of 64 x 64 px
cells. A fixed permutation of the cells (seed :data:`~vitplast.data.base.SPLIT_SEED` + photo index)
gives 60 % of them to train, 20 % to val and 20 % to test. A crop is a square of side 32-64 px lying
wholly inside one cell of its split, resampled to 32 x 32 by ``torchvision.ops.roi_align`` (bin
averaging, i.e. anti-aliased); train, val and test crops therefore come from disjoint image regions.
400 train, 100 val and 100 test crops per photo: 4,800 / 1,200 / 1,200 images, built in a few
seconds and cached as ``ROOT/mini/textures-v{VERSION}.pt``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from vitplast.data.base import SPLIT_SEED, DataBundle
from vitplast.data.mini.cache import SPLITS, Splits, cached
from vitplast.data.mini.common import bundle, cache_file
from vitplast.data.registry import DataContext

PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "rocket",
)
SHORT_SIDE = 256
CELL = 64
CROP_RANGE = (32, 64)
CELL_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
PER_CLASS = {"train": 400, "val": 100, "test": 100}
SIZE = 32
VERSION = 1  # bump when the construction changes (invalidates caches)


def load_photo(name: str) -> torch.Tensor:
    """Photo ``name`` of ``skimage.data`` as ``float32 [3, H, W]`` in 0-255, short side :data:`SHORT_SIDE`."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    x = torch.as_tensor(img[..., :3], dtype=torch.float32).permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    f = SHORT_SIDE / min(h, w)
    size = (round(h * f), round(w * f))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)[0]


def cell_splits(shape: tuple[int, int], photo: int) -> dict[str, np.ndarray]:
    """Cells ``(row, col)`` of each split for a photo of ``shape`` (H, W): a fixed 60/20/20 partition."""
    rows, cols = shape[0] // CELL, shape[1] // CELL
    cells = np.array([(r, c) for r in range(rows) for c in range(cols)])
    perm = np.random.default_rng([SPLIT_SEED, photo]).permutation(len(cells))
    n_val = n_test = max(1, round(CELL_FRACTIONS["test"] * len(cells)))
    return {
        "test": cells[np.sort(perm[:n_test])],
        "val": cells[np.sort(perm[n_test : n_test + n_val])],
        "train": cells[np.sort(perm[n_test + n_val :])],
    }


def crop_boxes(shape: tuple[int, int], photo: int, split: str, n: int) -> np.ndarray:
    """``n`` square crops ``[n, 4]`` as ``(x0, y0, x1, y1)`` in pixels, each inside one cell of ``split``."""
    cells = cell_splits(shape, photo)[split]
    rng = np.random.default_rng([SPLIT_SEED, photo, SPLITS.index(split)])
    which = cells[rng.integers(0, len(cells), n)]
    side = rng.integers(CROP_RANGE[0], CROP_RANGE[1] + 1, n)
    y0 = which[:, 0] * CELL + rng.integers(0, CELL - side + 1)
    x0 = which[:, 1] * CELL + rng.integers(0, CELL - side + 1)
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1)


def build() -> Splits:
    out: dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]] = {s: ([], []) for s in SPLITS}
    for label, name in enumerate(PHOTOS):
        photo = load_photo(name)
        shape = (photo.shape[1], photo.shape[2])
        for split in SPLITS:
            boxes = torch.as_tensor(crop_boxes(shape, label, split, PER_CLASS[split]), dtype=torch.float32)
            rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)
            crops = roi_align(photo[None], rois, output_size=SIZE, spatial_scale=1.0, aligned=True)
            out[split][0].append(crops.round().clamp(0, 255).to(torch.uint8))
            out[split][1].append(torch.full((len(boxes),), label, dtype=torch.long))
    splits: Splits = {}
    for k, s in enumerate(SPLITS):  # fixed shuffle, so that a prefix of a split mixes the classes
        images, labels = torch.cat(out[s][0]), torch.cat(out[s][1])
        order = torch.as_tensor(np.random.default_rng([SPLIT_SEED, k]).permutation(len(labels)))
        splits[s] = images[order], labels[order]
    return splits


def load(arg: str, ctx: DataContext) -> DataBundle:
    path = cache_file(ctx, f"textures-v{VERSION}.pt")
    splits, hit = cached(path, build)
    return bundle(
        "mini:textures",
        list(PHOTOS),
        splits,
        origin="crops of photographs bundled in scikit-image; train/val/test crops from disjoint cells",
        version=VERSION,
        cache=str(path),
        cache_hit=hit,
    )
