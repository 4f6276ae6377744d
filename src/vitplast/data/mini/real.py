"""``mini:digits`` and ``mini:faces``: small real-image sets that ship inside scikit-learn / scikit-image.

**mini:digits** - scikit-learn's ``load_digits``: 1,797 handwritten digits (10 classes, 8 x 8 px,
16 gray levels), scaled to 0-255, bilinearly upsampled to 32 x 32 and copied to 3 channels.
Fixed class-stratified split: 20 % test, then 20 % of the rest val: 1,149 / 288 / 360 images.

**mini:faces** - scikit-image's ``lfw_subset``: 200 gray 25 x 25 px images, the first 100 faces from
Labeled Faces in the Wild and the last 100 non-face patches of natural images (2 classes), upsampled
to 32 x 32 RGB. Same stratified split: 128 / 32 / 40 images.
"""

from __future__ import annotations

import numpy as np

from vitplast.data.base import DataBundle
from vitplast.data.mini.common import bundle, gray_to_rgb_uint8, split_pool
from vitplast.data.registry import DataContext


def load_digits(arg: str, ctx: DataContext) -> DataBundle:
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    images = gray_to_rgb_uint8(digits.images, scale=16.0)
    labels = np.asarray(digits.target, dtype=np.int64)
    return bundle(
        "mini:digits",
        [str(d) for d in range(10)],
        split_pool(images, labels),
        origin="sklearn.datasets.load_digits (UCI optical digits), 8 px upsampled to 32 px",
    )


def load_faces(arg: str, ctx: DataContext) -> DataBundle:
    from skimage.data import lfw_subset

    images = lfw_subset()  # [200, 25, 25]: 100 faces then 100 non-faces
    scale = 1.0 if np.issubdtype(images.dtype, np.floating) else 255.0  # float in [0, 1] or uint8
    labels = np.repeat(np.arange(2, dtype=np.int64), len(images) // 2)
    return bundle(
        "mini:faces",
        ["face", "non-face"],
        split_pool(gray_to_rgb_uint8(images, scale=scale), labels),
        origin="skimage.data.lfw_subset (LFW faces vs non-face patches), 25 px upsampled to 32 px",
    )
