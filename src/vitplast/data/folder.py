"""``folder:PATH``: class-per-subfolder images (``PATH/<class>/<image>``).

If ``PATH`` holds ``train/`` and ``test/`` (and optionally ``val/``) subfolders, those are the splits;
otherwise all images form one pool split 80/20 into train/test with a fixed seed. Images of any size and
mode (grayscale, RGBA, palette) are converted to RGB when read.
"""

from __future__ import annotations

from pathlib import Path

from vitplast.data.base import DataBundle, FileImageSet
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
        _, test = scan_class_folders(root / "test", classes)
        if len(train) == 0 or len(test) == 0:
            raise VitplastError(f"no images found under {root}/train or {root}/test")
        if (root / "val").is_dir():
            _, val = scan_class_folders(root / "val", classes)
            return DataBundle(f"folder:{root}", classes, train, val, test, {"path": str(root)})
        return DataBundle.from_train_test(f"folder:{root}", classes, train, test, path=str(root))
    classes, pool = scan_class_folders(root)
    if not classes:
        raise VitplastError(f"folder {root} has no class subfolders (expected PATH/<class>/<image>)")
    if len(pool) == 0:
        raise VitplastError(f"no images found in the class subfolders of {root}")
    return DataBundle.from_single(f"folder:{root}", classes, pool, path=str(root))
