"""``folder:PATH``: class-per-subfolder images (``PATH/<class>/<image>``).

If ``PATH`` holds ``train/`` and ``test/`` (and optionally ``val/``) subfolders, those are the splits;
otherwise all images form one pool split 80/20 into train/test with a fixed seed. Images of any size and
mode (grayscale, RGBA, palette) are converted to RGB when read. Every image is opened and verified when the
folder is loaded (:func:`~vitplast.data.base.verify_images`), before any work; a class of ``val/`` or ``test/``
that ``train/`` lacks is refused.
"""

from __future__ import annotations

from pathlib import Path

from vitplast.data.base import DataBundle, FileImageSet, verify_images
from vitplast.data.registry import DataContext, register
from vitplast.errors import VitplastError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def scan_class_folders(root: Path, classes: list[str] | None = None) -> tuple[list[str], FileImageSet]:
    """Images under ``root/<class>/`` (sorted, recursive), labelled by class folder in sorted order."""
    if classes is None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths, labels = [], []
    for label, cls in enumerate(classes):
        d = root / cls
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(p)
                labels.append(label)
    return classes, FileImageSet(paths, labels)


@register("folder")
def load_folder(arg: str, ctx: DataContext) -> DataBundle:
    if not arg:
        raise VitplastError("folder:PATH needs a path")
    root = Path(arg).expanduser()
    if not root.is_dir():
        raise VitplastError(f"folder {root} does not exist or is not a directory")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes, train = scan_class_folders(root / "train")
        splits = {"test": _split(root, "test", classes)}
        if len(train) == 0 or len(splits["test"]) == 0:
            raise VitplastError(f"no images found under {root}/train or {root}/test")
        if (root / "val").is_dir():
            splits["val"] = _split(root, "val", classes)
        for ds in (train, *splits.values()):
            verify_images(ds.paths)
        if "val" in splits:
            return DataBundle(f"folder:{root}", classes, train, splits["val"], splits["test"], {"path": str(root)})
        return DataBundle.from_train_test(f"folder:{root}", classes, train, splits["test"], path=str(root))
    classes, pool = scan_class_folders(root)
    if not classes:
        raise VitplastError(f"folder {root} has no class subfolders (expected PATH/<class>/<image>)")
    if len(pool) == 0:
        raise VitplastError(f"no images found in the class subfolders of {root}")
    verify_images(pool.paths)
    return DataBundle.from_single(f"folder:{root}", classes, pool, path=str(root))


def _split(root: Path, split: str, classes: list[str]) -> FileImageSet:
    """The images of ``root/split`` labelled by the train split's ``classes``; a class folder that ``train/``
    lacks is refused (its images could never be scored right, and dropping them would bias the score)."""
    own = scan_class_folders(root / split)[0]
    extra = [c for c in own if c not in classes]
    if extra:
        raise VitplastError(f"folder {root}: {split}/ has class {extra[0]!r} that train/ lacks "
                            f"({len(extra)} such classes): every {split} class needs training images")
    return scan_class_folders(root / split, classes)[1]
