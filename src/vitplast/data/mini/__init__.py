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
``mini:latin``                                26       4,992 / 1,248 / 1,248   glyphs, fonts held out
``mini:greek``                                24       4,608 / 1,152 / 1,152   glyphs, fonts held out
``mini:cyrillic``                             32       6,144 / 1,536 / 1,536   glyphs, fonts held out
``mini:digit-glyphs``                         10       1,920 / 480 / 480       glyphs, fonts held out
``mini:count``                                5        5,000 / 1,250 / 1,250   procedural, shapes held out
``mini:position``                             4        4,800 / 1,200 / 1,200   procedural, shapes held out
``mini:textures-c[:CORRUPTION[:SEVERITY]]``   12       4,800 / 1,200 / 1,200   corrupted textures
``mini:novel-c[:CORRUPTION[:SEVERITY]]``      48       4,800 / 1,200 / 1,200   corrupted novel
============================================  =======  =====================  ==========================

The graded targets (the last eight rows; docs/mini-targets.md lists their linear-probe accuracies) keep train and
test apart by source: different typefaces, different object shapes, disjoint photo regions, independently
rendered scenes. Details of each construction are in the docstrings of :mod:`~vitplast.data.mini.source`,
:mod:`~vitplast.data.mini.procedural`, :mod:`~vitplast.data.mini.real`,
:mod:`~vitplast.data.mini.textures`, :mod:`~vitplast.data.mini.shifted`, :mod:`~vitplast.data.mini.glyphs`,
:mod:`~vitplast.data.mini.relations` and :mod:`~vitplast.data.mini.corruptions`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from vitplast.data.base import DataBundle
from vitplast.data.mini import glyphs, real, relations, shifted, source, textures
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
    **{script: partial(glyphs.load, script) for script in glyphs.SCRIPTS},
    **{task: partial(relations.load, task) for task in relations.TASKS},
    **{name: partial(shifted.load_graded, name) for name in shifted.GRADED},
}
TAKES_ARGUMENT = {"source", "source-c", "novel", *shifted.GRADED}


@register("mini")
def load_mini(arg: str, ctx: DataContext) -> DataBundle:
    name, _, rest = arg.partition(":")
    if name not in SETS:
        raise VitplastError(f"unknown mini set {arg!r}: choose one of {', '.join(SETS)}")
    if rest and name not in TAKES_ARGUMENT:
        raise VitplastError(f"mini:{name} takes no argument, got {arg!r}")
    with one_torch_thread():  # many small tensor ops: see one_torch_thread
        return SETS[name](rest, ctx)
