"""Data sources (one spec string each) and the transforms a model expects."""

from vitplast.data.base import DataBundle, FileImageSet, IndexedSet, TensorImageSet
from vitplast.data.registry import DataContext, available, load_data, register
from vitplast.data.transforms import Transformed, make_transform

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
