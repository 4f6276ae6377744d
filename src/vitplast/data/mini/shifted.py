"""Corrupted sets: ``mini:source-c``, and graded versions of two targets, ``mini:textures-c`` and ``mini:novel-c``.

**mini:source-c[:CORRUPTION[:SEVERITY]]** - the source test images under a CIFAR-10-C-style corruption.

Like the paper's CIFAR-10-C protocol (README, "Reproducing the paper offline"), the 4,992 corrupted test images of
``mini:source`` (48 classes) form one pool that is split 80/20 into train / test, and the train part
80/20 into train / val, class-stratified with a fixed seed: 3,194 / 799 / 999 images. Corruptions
(:mod:`vitplast.data.mini.corruptions`): ``gaussian_noise`` (default), ``motion_blur``, ``contrast``,
``snow``, ``speckle_noise``; severity 1-5 (default 5). The corruption noise is seeded by the
corruption alone, so severities differ only in strength. Built from the cached source set in a few
seconds and cached beside it (one file per corruption and severity), so sweeps pay for it once.

**mini:textures-c[:CORRUPTION[:SEVERITY]]**, **mini:novel-c[:CORRUPTION[:SEVERITY]]** - every split of
``mini:textures`` / ``mini:novel`` under the corruption (same defaults), so the splits keep their sizes, classes
and disjoint sources (texture crops from disjoint photo cells; independently rendered scenes); split ``k``'s
noise is seeded by ``3 * corruption index + k``, so the severities of one corruption differ only in strength
(a graded family of targets). Cached beside the base set's file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitplast.data.base import DataBundle
from vitplast.data.mini import source, textures
from vitplast.data.mini.cache import SPLITS, Splits
from vitplast.data.mini.common import cached_bundle, split_pool
from vitplast.data.mini.corruptions import CORRUPTIONS, corrupt
from vitplast.data.registry import DataContext
from vitplast.errors import VitplastError

DEFAULT_CORRUPTION = "gaussian_noise"
DEFAULT_SEVERITY = 5
VERSION = 1  # bump when a corruption or the split changes (invalidates caches)


#: graded targets: spec name -> the mini set whose splits are corrupted
GRADED = {"textures-c": "textures", "novel-c": "novel"}


def parse(arg: str, name: str = "source-c") -> tuple[str, int]:
    """``'' | CORRUPTION | CORRUPTION:SEVERITY`` -> ``(corruption, severity)``; bad values -> VitplastError."""
    parts = arg.split(":") if arg else []
    if len(parts) > 2:
        raise VitplastError(f"mini:{name} takes at most CORRUPTION:SEVERITY, got {arg!r}")
    name = parts[0] if parts else DEFAULT_CORRUPTION
    if name not in CORRUPTIONS:
        raise VitplastError(f"unknown corruption {name!r}: choose one of {', '.join(CORRUPTIONS)}")
    if len(parts) < 2:
        return name, DEFAULT_SEVERITY
    if not parts[1].isdigit() or not 1 <= int(parts[1]) <= 5:
        raise VitplastError(f"corruption severity must be an integer from 1 to 5, got {parts[1]!r}")
    return name, int(parts[1])


def cache_path(base_cache: Path, name: str, severity: int) -> Path:
    """Beside the source set's cache file, named by its generator version and seed (so it follows them)."""
    return base_cache.with_name(f"{base_cache.stem}-c{VERSION}-{name}-{severity}.pt")


def load(arg: str, ctx: DataContext) -> DataBundle:
    name, severity = parse(arg)
    base = source.load("source", "", ctx)

    def build() -> Splits:
        images = base.test.images  # type: ignore[attr-defined]
        labels = base.test.labels.numpy()  # type: ignore[attr-defined]
        shifted = corrupt(images, name, severity, seed=list(CORRUPTIONS).index(name))
        return split_pool(shifted, np.asarray(labels))

    return cached_bundle(
        f"mini:source-c:{name}:{severity}",
        base.classes,
        cache_path(Path(base.info["cache"]), name, severity),
        build,
        origin="mini:source test images under a CIFAR-10-C-style corruption, split 80/20",
        corruption=name,
        severity=severity,
        seed=base.info["seed"],
        generator_version=base.info["generator_version"],
    )


def load_graded(name: str, arg: str, ctx: DataContext) -> DataBundle:
    """``mini:textures-c`` / ``mini:novel-c`` (module docstring): every split of the base set corrupted."""
    corruption, severity = parse(arg, name)
    base = textures.load("", ctx) if GRADED[name] == "textures" else source.load("novel", "", ctx)
    index = list(CORRUPTIONS).index(corruption)

    def build() -> Splits:
        return {
            s: (corrupt(base.split(s).images, corruption, severity, seed=3 * index + k), base.split(s).labels)  # type: ignore[attr-defined]
            for k, s in enumerate(SPLITS)
        }

    return cached_bundle(
        f"mini:{name}:{corruption}:{severity}",
        base.classes,
        cache_path(Path(base.info["cache"]), corruption, severity),
        build,
        origin=f"every split of {base.name} under a CIFAR-10-C-style corruption",
        corruption=corruption,
        severity=severity,
    )
