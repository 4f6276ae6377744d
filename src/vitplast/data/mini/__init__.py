"""The offline mini-suite (docs/mini-protocol.md): data specs ``mini:NAME`` that need no download.

Every set is a :class:`~vitplast.data.base.DataBundle` of :class:`~vitplast.data.base.TensorImageSet`
splits holding ``uint8 [N, 3, 32, 32]`` RGB images, with deterministic train / val / test splits, class
names, and provenance in ``info`` (origin, split sizes, seed / corruption where relevant). Images stay
32 px whatever ``DataContext.input_size`` is: the model's own transform resizes them. The run seed
(``DataContext.seed``) never changes the data; splits are fixed (README, "Reproducing the paper offline").

============================================  =======  =====================  ==========================
spec                                          classes  train / val / test     origin
============================================  =======  =====================  ==========================
``mini:source[:SEED]``                        48       39,984 / 4,992 / 4,992  procedural (pretraining)
``mini:digits``                               10       1,149 / 288 / 360       scikit-learn digits
``mini:textures``                             12       4,800 / 1,200 / 1,200   scikit-image photographs
``mini:faces``                                2        128 / 32 / 40           scikit-image LFW subset
``mini:source-c[:CORRUPTION[:SEVERITY]]``     48       3,194 / 799 / 999       corrupted source test set
``mini:novel[:SEED]``                         48       4,800 / 1,200 / 1,200   unseen source combinations
============================================  =======  =====================  ==========================

Details of each construction are in the docstrings of :mod:`~vitplast.data.mini.source`,
:mod:`~vitplast.data.mini.procedural`, :mod:`~vitplast.data.mini.real`,
:mod:`~vitplast.data.mini.textures`, :mod:`~vitplast.data.mini.shifted` and
:mod:`~vitplast.data.mini.corruptions`.
"""

from __future__ import annotations

from collections.abc import Callable

from vitplast.data.base import DataBundle
from vitplast.data.mini import real, shifted, source, textures
from vitplast.data.mini.common import one_torch_thread
from vitplast.data.registry import DataContext, register
from vitplast.errors import VitplastError

SETS: dict[str, Callable[[str, DataContext], DataBundle]] = {
    "source": lambda arg, ctx: source.load("source", arg, ctx),
    "digits": real.load_digits,
    "textures": textures.load,
    "faces": real.load_faces,
    "source-c": shifted.load,
    "novel": lambda arg, ctx: source.load("novel", arg, ctx),
}
TAKES_ARGUMENT = {"source", "source-c", "novel"}


@register("mini")
def load_mini(arg: str, ctx: DataContext) -> DataBundle:
    name, _, rest = arg.partition(":")
    if name not in SETS:
        raise VitplastError(f"unknown mini set {arg!r}: choose one of {', '.join(SETS)}")
    if rest and name not in TAKES_ARGUMENT:
        raise VitplastError(f"mini:{name} takes no argument, got {arg!r}")
    with one_torch_thread():  # many small tensor ops: see one_torch_thread
        return SETS[name](rest, ctx)
