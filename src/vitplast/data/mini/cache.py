"""On-disk cache of generated splits: one ``.pt`` file of ``uint8`` image and ``int64`` label tensors.

A cache file is written to a temporary file in the same directory and moved into place with
``os.replace`` (atomic on POSIX and Windows), so two processes building the same set at once both end
with a complete file and a reader never sees a partial one. A file that cannot be read, or whose
tensors do not have the expected layout, is rebuilt.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

Splits = dict[str, tuple[torch.Tensor, torch.Tensor]]
SPLITS = ("train", "val", "test")


def _valid(blob: object) -> bool:
    if not isinstance(blob, dict):
        return False
    for split in SPLITS:
        x, y = blob.get(f"{split}_images"), blob.get(f"{split}_labels")
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            return False
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3 or len(x) != len(y):
            return False
    return True


def _read(path: Path) -> Splits | None:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable or truncated (e.g. written by an older torch): rebuild
        return None
    if not _valid(blob):
        return None
    return {s: (blob[f"{s}_images"], blob[f"{s}_labels"]) for s in SPLITS}


def write_atomic(path: Path, splits: Splits) -> None:
    """Save ``splits`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {}
    for s in SPLITS:
        x, y = splits[s]
        blob[f"{s}_images"], blob[f"{s}_labels"] = x.contiguous(), y.to(torch.int64).contiguous()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(blob, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached(path: Path, build: Callable[[], Splits]) -> tuple[Splits, bool]:
    """The splits stored at ``path``, or ``build()`` saved there first; also whether the cache was hit."""
    if path.is_file():
        hit = _read(path)
        if hit is not None:
            return hit, True
    splits = build()
    write_atomic(path, splits)
    return splits, False
