"""The evidence of a sweep for the claims: per target and group, the test accuracy at the best lr and the
per-image correctness of every seed at that lr (definitions in ``docs/statistics.md``).

For every ``(model, optimizer)`` scope, :func:`collect_evidence` reads the per-image correctness
(``test_hits.npz``) of every seed of each group at its best lr, and of the references: the linear probe and the
LP-FT start. The claims test
differences of accuracies on these records with a seed-level test
(:func:`vitplast.report.inference.difference_test`): seeds within groups, then test images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vitplast.report.stats import KEYS
from vitplast.train.scoring import HITS_FILE, load_hits

PROBE = "probe"
#: The LP-FT start (:mod:`vitplast.train.start`) as a group of the evidence.
START = "start"
#: The references that are groups of the evidence beside the finetuned ones (one record per target, or one per
#: seed where the reference depends on it).
REFERENCES = (PROBE, START)


@dataclass
class Evidence:
    """Point accuracies ``acc[dataset][group]`` and per-image records ``hits[dataset][group]`` (bool
    ``[seeds, images]``) of one scope; a target without complete per-image records has no entry in ``hits``.
    ``clusters[dataset]`` (optional) names the source image of each test image when several test crops share
    one; the tests then treat each source image as one unit."""

    model: str
    optimizer: str
    acc: dict[str, dict[str, float]]
    hits: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    clusters: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return f"{self.model}, {self.optimizer}"

    def targets(self, groups: Sequence[str]) -> list[str]:
        """Targets where every group in ``groups`` has a point accuracy."""
        return [d for d, a in sorted(self.acc.items())
                if all(g in a and not math.isnan(a[g]) for g in groups)]

    def has_hits(self, targets: Sequence[str], groups: Sequence[str]) -> bool:
        return bool(targets) and all(d in self.hits and all(g in self.hits[d] for g in groups) for d in targets)


@dataclass(frozen=True)
class Reference:
    """A reference scored once per (model label, dataset) beside the finetuned groups (the linear probe, the
    LP-FT start): its test accuracy and the folders of its records (one, or one per seed where it depends on
    the seed), each holding ``test_hits.npz``."""

    acc: Mapping[tuple[str, str], float]
    dirs: Mapping[tuple[str, str], Sequence[Path]] = field(default_factory=dict)

    @staticmethod
    def of(frame: pd.DataFrame, column: str, dirs: Mapping[tuple[str, str], Sequence[Path]] | None = None) -> Reference:
        """From a frame with ``model``, ``dataset`` and the accuracy ``column`` (:func:`vitplast.report.stats.probes_frame`)."""
        acc = {(str(m), str(d)): float(a) for m, d, a in
               zip(frame["model"].tolist(), frame["dataset"].tolist(), frame[column].tolist(), strict=True)}
        return Reference(acc, dirs or {})


def collect_evidence(
    root: Path | None, runs: pd.DataFrame, best: pd.DataFrame, references: Mapping[str, Reference] | None = None,
) -> list[Evidence]:
    """One :class:`Evidence` per ``(model, optimizer)`` of ``best`` (module docstring), each reference (by its
    group name, :data:`PROBE`, :data:`START`) a group of its own; without ``root`` (or without hit files) only
    the point accuracies are filled."""
    out = []
    references = references or {}
    for (model, opt), t in best.groupby(["model", "optimizer"], sort=True):
        ev = Evidence(str(model), str(opt), {})
        for ds, d in t.groupby("dataset", sort=True):
            key = (str(model), str(ds))
            ev.acc[str(ds)] = {str(g): float(a) for g, a in zip(d["group"].tolist(), d["acc_mean"].tolist(), strict=True)}
            ev.acc[str(ds)] |= {name: ref.acc[key] for name, ref in references.items() if key in ref.acc}
            if root is None:
                continue
            hits = _target_hits(root, runs, d, {name: ref.dirs[key] for name, ref in references.items()
                                                if key in ref.dirs})
            if hits:
                ev.hits[str(ds)] = hits
        out.append(ev)
    return out


def _records(paths: Sequence[Path]) -> np.ndarray | None:
    """``bool [records, images]`` of the ``test_hits.npz`` files in ``paths`` (None when one is missing or the
    sizes differ)."""
    rows = [load_hits(p) for p in paths]
    if not rows or any(r is None for r in rows) or len({len(r) for r in rows if r is not None}) != 1:
        return None
    return np.stack([r for r in rows if r is not None])


def _target_hits(root: Path, runs: pd.DataFrame, best_rows: pd.DataFrame,
                 reference_dirs: Mapping[str, Sequence[Path]]) -> dict[str, np.ndarray]:
    """``group -> bool [seeds, images]`` at the best lr (seeds sorted), and each reference's records; groups with
    a missing file are left out."""
    sel = runs.merge(best_rows[[*KEYS, "best_lr"]], on=KEYS)
    sel = sel[np.isclose(sel["lr"], sel["best_lr"])].sort_values("seed")
    hits: dict[str, np.ndarray] = {}
    for group, g in sel.groupby("group", sort=True):
        if (h := _records([Path(root) / "runs" / str(i) / HITS_FILE for i in g["id"]])) is not None:
            hits[str(group)] = h
    for name, dirs in reference_dirs.items():
        if (h := _records([Path(d) / HITS_FILE for d in dirs])) is not None:
            hits[name] = h
    sizes = {h.shape[1] for h in hits.values()}
    return {} if len(sizes) > 1 else hits  # records of different test sets cannot be paired


def per_target_difference(ev: Evidence, targets: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Per target: ``mean_{g in a} acc_g - mean_{g in b} acc_g`` of the point accuracies."""
    return np.array([np.mean([ev.acc[d][g] for g in a]) - np.mean([ev.acc[d][g] for g in b]) for d in targets])
