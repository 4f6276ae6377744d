"""``mini:source-c[:CORRUPTION[:SEVERITY]]``: the source test images under a CIFAR-10-C-style corruption.

Like the paper's CIFAR-10-C protocol (README, "Reproducing the paper offline"), the 4,992 corrupted test images of
``mini:source`` (48 classes) form one pool that is split 80/20 into train / test, and the train part
80/20 into train / val, class-stratified with a fixed seed: 3,194 / 799 / 999 images. Corruptions
(:mod:`vitplast.data.mini.corruptions`): ``gaussian_noise`` (default), ``motion_blur``, ``contrast``,
``snow``, ``speckle_noise``; severity 1-5 (default 5). The corruption noise is seeded by the
corruption alone, so severities differ only in strength. Built from the cached source set in a few
seconds and cached beside it (one file per corruption and severity), so sweeps pay for it once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitplast.data.base import DataBundle
from vitplast.data.mini import source
from vitplast.data.mini.cache import Splits, cached
from vitplast.data.mini.common import bundle, split_pool
from vitplast.data.mini.corruptions import CORRUPTIONS, corrupt
from vitplast.data.registry import DataContext
from vitplast.errors import VitplastError

DEFAULT_CORRUPTION = "gaussian_noise"
DEFAULT_SEVERITY = 5
VERSION = 1  # bump when a corruption or the split changes (invalidates caches)


def parse(arg: str) -> tuple[str, int]:
    """``'' | CORRUPTION | CORRUPTION:SEVERITY`` -> ``(corruption, severity)``; bad values -> VitplastError."""
    parts = arg.split(":") if arg else []
    if len(parts) > 2:
        raise VitplastError(f"mini:source-c takes at most CORRUPTION:SEVERITY, got {arg!r}")
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

    path = cache_path(Path(base.info["cache"]), name, severity)
    splits, hit = cached(path, build)
    return bundle(
        f"mini:source-c:{name}:{severity}",
        base.classes,
        splits,
        origin="mini:source test images under a CIFAR-10-C-style corruption, split 80/20",
        corruption=name,
        severity=severity,
        seed=base.info["seed"],
        generator_version=base.info["generator_version"],
        cache=str(path),
        cache_hit=hit,
    )
