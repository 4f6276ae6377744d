"""Labelled image sets and their train / val / test splits.

Every data source, whatever its origin (procedural, a folder, torchvision, the offline suite), is exposed
as a :class:`DataBundle`: three map-style datasets whose items are ``(image, label)`` with ``image`` a
``uint8`` tensor ``[3, H, W]`` (RGB) or a PIL image, or a ``float`` tensor that is already preprocessed
for the model (the ``random`` set). Transforms are applied by the consumer (:mod:`vitplast.data.transforms`).

Split rule (README, "Reproducing the paper offline"): ``val`` is a fixed 20 % of the training split, drawn with :data:`SPLIT_SEED`
independently of any run seed, unless the source has a native validation split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vitplast.errors import VitplastError

SPLIT_SEED = 0
VAL_FRACTION = 0.2
MIN_CLASSES = 2  # training and probing refuse data with fewer classes in the train split
MIN_EVAL_IMAGES = 10  # val or test splits smaller than this give a recorded warning

Item = tuple[Any, int]


class TensorImageSet(Dataset[Item]):
    """Images held in memory: ``images`` is ``uint8 [N, 3, H, W]`` (or preprocessed float), ``labels`` ``[N]``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> None:
        labels_t = torch.as_tensor(labels, dtype=torch.long)
        if images.ndim != 4 or images.shape[1] != 3 or len(images) != len(labels_t):
            raise ValueError(f"expected images [N,3,H,W] and N labels, got {tuple(images.shape)}, {len(labels_t)}")
        self.images = images
        self.labels = labels_t

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Item:
        return self.images[i], int(self.labels[i])


def to_8bit(img: Image.Image) -> Image.Image:
    """An ``L`` image from a 16-bit or 32-bit grayscale one (modes ``I;16*``, ``I``, ``F``), scaled, not clipped.

    Integer images are taken as 16-bit: ``v -> round(v * 255 / 65535)`` (``I`` images whose values exceed 65535
    are scaled by their maximum instead); float images with values in [0, 1] are scaled by 255, others by their
    maximum. Other modes are returned unchanged (Pillow's own conversion clips these modes to 0..255).
    """
    if not (img.mode.startswith("I") or img.mode == "F"):
        return img
    a = np.asarray(img, dtype=np.float64)
    top = max(float(a.max(initial=0.0)), 1e-12)
    scale = 65535.0 if img.mode != "F" and top <= 65535 else 1.0 if img.mode == "F" and top <= 1 else top
    return Image.fromarray(np.clip(np.rint(a * 255.0 / scale), 0, 255).astype(np.uint8))


#: Errors Pillow raises for a file that is not a readable image (a bomb: more than twice
#: ``Image.MAX_IMAGE_PIXELS`` pixels, which Pillow refuses to decode).
_UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def load_rgb(path: Path) -> Image.Image:
    """Open an image file as RGB (grayscale, CMYK are converted; 16-bit images are scaled to 8 bits by
    :func:`to_8bit`). An image with transparency (RGBA, grey + alpha ``LA``, palette with a transparent
    colour) is composited onto white, the same for every mode. Unreadable -> VitplastError."""
    try:
        with Image.open(path) as opened:
            opened.load()
            img = to_8bit(opened)
            if {"A", "a"} & set(img.getbands()) or "transparency" in img.info:
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(background, rgba).convert("RGB")
            return img.convert("RGB")
    except _UNREADABLE as exc:
        raise VitplastError(f"unreadable image {path}: {exc}") from None


def verify_images(paths: Sequence[Path]) -> None:
    """Open every file of ``paths`` and verify it is an intact image Pillow will decode (headers, size within
    Pillow's decompression-bomb limit, checksums where the format has them), without decoding the pixels.
    The first failure is a one-line VitplastError naming the file; data sets call it before any work."""
    for path in paths:
        try:
            with Image.open(path) as img:
                img.verify()
        except _UNREADABLE as exc:
            raise VitplastError(f"unreadable image {path}: {exc}") from None


class FileImageSet(Dataset[Item]):
    """Images read from files on access (``paths[i]`` has label ``labels[i]``), returned as RGB PIL images."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], loader: Callable[[Path], Any] = load_rgb):
        if len(paths) != len(labels):
            raise ValueError("paths and labels differ in length")
        self.paths = list(paths)
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.loader = loader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Item:
        return self.loader(self.paths[i]), int(self.labels[i])


class IndexedSet(Dataset[Item]):
    """A view of ``base`` restricted to ``indices`` (like ``torch.utils.data.Subset``, with labels exposed)."""

    def __init__(self, base: Dataset[Item], indices: Sequence[int] | np.ndarray) -> None:
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Item:
        return self.base[int(self.indices[i])]

    @property
    def labels(self) -> torch.Tensor:
        return dataset_labels(self.base)[torch.as_tensor(self.indices)]


def dataset_labels(ds: Dataset[Item]) -> torch.Tensor:
    """All labels of a dataset, without decoding images where the dataset exposes them."""
    for attr in ("labels", "targets", "_labels"):
        lab = getattr(ds, attr, None)
        if lab is not None:
            return torch.as_tensor(np.asarray(lab), dtype=torch.long)
    return torch.as_tensor([ds[i][1] for i in range(len(ds))], dtype=torch.long)  # type: ignore[arg-type]


def split_indices(n: int, fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Fixed random split of ``range(n)`` into ``(keep, held_out)`` with ``round(fraction * n)`` held out."""
    perm = np.random.default_rng(seed).permutation(n)
    k = round(fraction * n)
    return np.sort(perm[k:]), np.sort(perm[:k])


@dataclass
class DataBundle:
    """A named labelled data source with ``train``, ``val`` and ``test`` splits.

    ``info`` carries provenance shown in outputs (e.g. the corruption and severity of a shifted set).
    """

    name: str
    classes: list[str]
    train: Dataset[Item]
    val: Dataset[Item]
    test: Dataset[Item]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> Dataset[Item]:
        """``train``, ``val``, ``test``, or ``all`` (the three concatenated)."""
        if name == "all":
            return torch.utils.data.ConcatDataset([self.train, self.val, self.test])
        if name not in ("train", "val", "test"):
            raise VitplastError(f"unknown split {name!r}: use train, val, test or all")
        ds: Dataset[Item] = getattr(self, name)
        return ds

    @staticmethod
    def from_train_test(
        name: str, classes: list[str], train: Dataset[Item], test: Dataset[Item], **info: Any
    ) -> DataBundle:
        """Bundle whose ``val`` is the fixed 20 % of ``train`` (README, "Reproducing the paper offline") and ``train`` the other 80 %."""
        keep, held = split_indices(len(train))  # type: ignore[arg-type]
        return DataBundle(name, classes, IndexedSet(train, keep), IndexedSet(train, held), test, dict(info))

    @staticmethod
    def from_single(name: str, classes: list[str], data: Dataset[Item], **info: Any) -> DataBundle:
        """Bundle from one pool of images: fixed 80/20 train/test split, then 80/20 train/val."""
        keep, held = split_indices(len(data))  # type: ignore[arg-type]
        train = IndexedSet(data, keep)
        bundle = DataBundle.from_train_test(name, classes, train, IndexedSet(data, held), **info)
        return bundle


def check_trainable(bundle: DataBundle) -> list[str]:
    """Refuse data that cannot be trained on or scored; warn about data too small to score meaningfully.

    Refused (:class:`VitplastError`): an empty split, or fewer than :data:`MIN_CLASSES` classes among the train
    labels (a one-class set scores 100 %). Warned: a val or test split of fewer than :data:`MIN_EVAL_IMAGES`
    images; each warning is added to ``bundle.info["warnings"]`` (recorded with the run) and returned, for the
    caller to print as one ``warning:`` line once its work starts. Finetuning and the linear probe apply the
    same rule.
    """
    sizes = {s: len(bundle.split(s)) for s in ("train", "val", "test")}  # type: ignore[arg-type]
    if min(sizes.values()) == 0:
        raise VitplastError(f"data {bundle.name} has an empty split ({_sizes(sizes)})")
    n_cls = len(torch.unique(dataset_labels(bundle.train)))
    if n_cls < MIN_CLASSES:
        raise VitplastError(
            f"data {bundle.name} has {n_cls} class in its train split; training and probing need at least {MIN_CLASSES}"
        )
    found = []
    if min(sizes["val"], sizes["test"]) < MIN_EVAL_IMAGES:
        found.append(f"data {bundle.name} is tiny ({_sizes(sizes)}): accuracies on fewer than {MIN_EVAL_IMAGES} "
                     "images are not meaningful")
    recorded = bundle.info.setdefault("warnings", [])
    recorded.extend(m for m in found if m not in recorded)
    return found


def _sizes(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sizes.items())
