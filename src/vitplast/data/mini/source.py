"""``mini:source`` (procedural pretraining data) and ``mini:novel`` (unseen attribute combinations).

**mini:source[:SEED]** - 48 classes, each a ``(shape, texture, colour family)`` triple with an even
index sum (see :mod:`vitplast.data.mini.procedural` for the rendering and the nuisance factors).
833 train, 104 val and 104 test images per class: 39,984 / 4,992 / 4,992 images, 32 x 32 RGB
``uint8``. The three splits are rendered from independent child streams of
``SeedSequence([SEED, 0, split])``, so no image is shared between them. ``SEED`` defaults to
:data:`DATA_SEED` = 0; the run seed (``DataContext.seed``) does not change the data, like every fixed
split of this library (README, "Reproducing the paper offline").

**mini:novel[:SEED]** - the 48 complementary triples (odd index sum): every shape, texture and colour
family is known from pretraining but none of these combinations was ever shown, so a model has to
recombine its features. 100 train, 25 val and 25 test images per class: 4,800 / 1,200 / 1,200,
rendered from ``SeedSequence([SEED, 1, split])`` with the same nuisance distribution.

Both are built once (a few seconds to a minute on 2 CPU cores) and cached under
``ROOT/mini/{source,novel}-g{GENERATOR_VERSION}-seed{SEED}.pt`` (``ROOT`` = ``DataContext.root``,
by default ``$VITPLAST_CACHE``); :data:`GENERATOR_VERSION` is bumped whenever the rendering changes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vitplast.data.base import DataBundle
from vitplast.data.mini import procedural
from vitplast.data.mini.cache import SPLITS, Splits, cached
from vitplast.data.mini.common import bundle
from vitplast.data.registry import DataContext, default_root
from vitplast.errors import VitplastError

GENERATOR_VERSION = 1
DATA_SEED = 0
KINDS = ("source", "novel")
PER_CLASS = {
    "source": {"train": 833, "val": 104, "test": 104},
    "novel": {"train": 100, "val": 25, "test": 25},
}


def parse_seed(arg: str, name: str) -> int:
    """``''`` -> :data:`DATA_SEED`; a non-negative integer string -> that seed; else VitplastError."""
    if not arg:
        return DATA_SEED
    if not arg.isdigit():
        raise VitplastError(f"mini:{name}:SEED needs a non-negative integer seed, got {arg!r}")
    return int(arg)


def cache_path(root: Path, kind: str, seed: int) -> Path:
    return root / "mini" / f"{kind}-g{GENERATOR_VERSION}-seed{seed}.pt"


def build(kind: str, seed: int) -> Splits:
    """Render the three splits of ``kind`` (``source`` or ``novel``) from ``seed`` (no cache)."""
    triples = procedural.design(kind)
    out: Splits = {}
    for k, split in enumerate(SPLITS):
        images, labels = procedural.generate(triples, PER_CLASS[kind][split], [seed, KINDS.index(kind), k])
        out[split] = torch.from_numpy(images), torch.from_numpy(labels).long()
    return out


def load(kind: str, arg: str, ctx: DataContext) -> DataBundle:
    """The cached bundle of ``kind`` for the spec argument ``arg`` (the optional seed)."""
    seed = parse_seed(arg, kind)
    root = ctx.root if ctx.root is not None else default_root()
    path = cache_path(root, kind, seed)
    splits, hit = cached(path, lambda: build(kind, seed))
    classes = [procedural.class_name(t) for t in procedural.design(kind)]
    name = f"mini:{kind}" + (f":{seed}" if seed != DATA_SEED else "")
    return bundle(
        name,
        classes,
        splits,
        origin=f"procedural {kind} scenes (shape x texture x colour), generator v{GENERATOR_VERSION}",
        seed=seed,
        generator_version=GENERATOR_VERSION,
        cache=str(path),
        cache_hit=hit,
    )
