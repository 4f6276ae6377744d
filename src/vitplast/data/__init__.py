"""Data sources (one spec string each) and the transforms a model expects.

The public names are imported on first use, so that the torch-free :mod:`vitplast.data.specs` (the known
spec prefixes) can be imported without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vitplast.lazy import lazy_getattr

if TYPE_CHECKING:
    from vitplast.data.base import DataBundle, FileImageSet, IndexedSet, TensorImageSet
    from vitplast.data.registry import DataContext, available, load_data, register
    from vitplast.data.transforms import Transformed, make_transform

_LAZY = {
    **dict.fromkeys(("DataBundle", "FileImageSet", "IndexedSet", "TensorImageSet"), "vitplast.data.base"),
    **dict.fromkeys(("DataContext", "available", "load_data", "register"), "vitplast.data.registry"),
    **dict.fromkeys(("Transformed", "make_transform"), "vitplast.data.transforms"),
}

__all__ = [
    "DataBundle",
    "DataContext",
    "FileImageSet",
    "IndexedSet",
    "TensorImageSet",
    "Transformed",
    "available",
    "load_data",
    "make_transform",
    "register",
]
__getattr__ = lazy_getattr(__name__, _LAZY, globals())
