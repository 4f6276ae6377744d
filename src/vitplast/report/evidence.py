"""The evidence of a sweep for the claims: per target and group, the test accuracy at the best lr and the
per-image correctness of every seed at that lr (definitions in ``docs/statistics.md``).

For every ``(model, optimizer)`` scope, :func:`collect_evidence` reads the per-image correctness
(``test_hits.npz``) of every seed of each group at its best lr, and of the linear probe. The claims test
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


def collect_evidence(
    root: Path | None, runs: pd.DataFrame, best: pd.DataFrame, probes: pd.DataFrame,
    probe_dirs: Mapping[tuple[str, str], Path] | None = None,
) -> list[Evidence]:
    """One :class:`Evidence` per ``(model, optimizer)`` of ``best`` (module docstring); without ``root`` (or
    without hit files) only the point accuracies are filled."""
    out = []
    probe_acc = {(str(m), str(d)): float(a) for m, d, a in
                 zip(probes["model"].tolist(), probes["dataset"].tolist(), probes["probe_acc"].tolist(), strict=True)}
    for (model, opt), t in best.groupby(["model", "optimizer"], sort=True):
        ev = Evidence(str(model), str(opt), {})
        for ds, d in t.groupby("dataset", sort=True):
            ev.acc[str(ds)] = {str(g): float(a) for g, a in zip(d["group"].tolist(), d["acc_mean"].tolist(), strict=True)}
            if (str(model), str(ds)) in probe_acc:
                ev.acc[str(ds)][PROBE] = probe_acc[(str(model), str(ds))]
            if root is None:
                continue
            hits = _target_hits(root, runs, d, (probe_dirs or {}).get((str(model), str(ds))))
            if hits:
                ev.hits[str(ds)] = hits
        out.append(ev)
    return out


def _target_hits(root: Path, runs: pd.DataFrame, best_rows: pd.DataFrame, probe_dir: Path | None) -> dict[str, np.ndarray]:
    """``group -> bool [seeds, images]`` at the best lr (seeds sorted); groups with a missing file are left out."""
    sel = runs.merge(best_rows[[*KEYS, "best_lr"]], on=KEYS)
    sel = sel[np.isclose(sel["lr"], sel["best_lr"])].sort_values("seed")
    hits: dict[str, np.ndarray] = {}
    for group, g in sel.groupby("group", sort=True):
        rows = [load_hits(Path(root) / "runs" / str(i) / HITS_FILE) for i in g["id"]]
        if rows and all(r is not None for r in rows) and len({len(r) for r in rows if r is not None}) == 1:
            hits[str(group)] = np.stack([r for r in rows if r is not None])
    if probe_dir is not None and (h := load_hits(probe_dir / HITS_FILE)) is not None:
        hits[PROBE] = h[None, :]
    sizes = {h.shape[1] for h in hits.values()}
    return {} if len(sizes) > 1 else hits  # records of different test sets cannot be paired


def per_target_difference(ev: Evidence, targets: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Per target: ``mean_{g in a} acc_g - mean_{g in b} acc_g`` of the point accuracies."""
    return np.array([np.mean([ev.acc[d][g] for g in a]) - np.mean([ev.acc[d][g] for g in b]) for d in targets])
