"""The evidence of a sweep for the claims: per target and group, the test accuracy at the best lr and its
paired bootstrap replicates over test images and seeds (definitions in ``docs/statistics.md``).

For every ``(model, optimizer)`` scope, :func:`collect_evidence` reads the per-image correctness
(``test_hits.npz``) of every seed of each group at its best lr, and of the linear probe, and draws
:data:`N_BOOT` paired replicates per target (one image draw and one seed draw shared by all groups of the
target, independent across targets). Effects are then computed on the point accuracies and, identically,
on every replicate; the percentile interval and a bootstrap p-value follow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from vitplast.components import COMPONENTS
from vitplast.report import inference as I
from vitplast.report.stats import KEYS
from vitplast.train.scoring import HITS_FILE, load_hits

N_BOOT = 2000
PROBE = "probe"


@dataclass
class Evidence:
    """Point accuracies ``acc[dataset][group]`` and bootstrap replicates ``reps[dataset][group]`` ([N_BOOT])
    of one scope; a target without complete per-image records has no entry in ``reps``."""

    model: str
    optimizer: str
    acc: dict[str, dict[str, float]]
    reps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    n_test: dict[str, int] = field(default_factory=dict)
    n_seeds: dict[str, int] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return f"{self.model}, {self.optimizer}"

    def targets(self, groups: Sequence[str]) -> list[str]:
        """Targets where every group in ``groups`` has a point accuracy."""
        return [d for d, a in sorted(self.acc.items())
                if all(g in a and not math.isnan(a[g]) for g in groups)]

    def has_reps(self, targets: Sequence[str], groups: Sequence[str]) -> bool:
        return bool(targets) and all(d in self.reps and all(g in self.reps[d] for g in groups) for d in targets)


def collect_evidence(
    root: Path | None, runs: pd.DataFrame, best: pd.DataFrame, probes: pd.DataFrame,
    probe_dirs: Mapping[tuple[str, str], Path] | None = None, n_boot: int = N_BOOT, seed: int = 0,
) -> list[Evidence]:
    """One :class:`Evidence` per ``(model, optimizer)`` of ``best`` (module docstring); without ``root`` (or
    without hit files) only the point accuracies are filled."""
    out = []
    rng = np.random.default_rng(seed)
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
                ev.reps[str(ds)] = I.bootstrap_accuracy(hits, n_boot, rng)
                ev.n_test[str(ds)] = next(iter(hits.values())).shape[1]
                ev.n_seeds[str(ds)] = max(h.shape[0] for h in hits.values())
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
    if len(sizes) > 1:  # records of different test sets cannot be paired
        return {}
    seeds = {h.shape[0] for h in hits.values() if h.shape[0] > 1}
    return hits if len(seeds) <= 1 else {}


# --- effects: a function of (accuracy per target and group) evaluated on the point and on every replicate ----
Effect = Callable[[Mapping[str, Mapping[str, np.ndarray]]], np.ndarray]


def evaluate(ev: Evidence, targets: Sequence[str], groups: Sequence[str], effect: Effect) -> tuple[float, np.ndarray | None]:
    """``effect`` on the point accuracies and (when every target has replicates of ``groups``) on the replicates."""
    point = effect({d: {g: np.array([ev.acc[d][g]]) for g in groups} for d in targets})
    reps = effect({d: {g: ev.reps[d][g] for g in groups} for d in targets}) if ev.has_reps(targets, groups) else None
    return float(point[0]), reps


def mean_difference(a: Sequence[str], b: Sequence[str]) -> Effect:
    """Mean over targets of ``mean_{g in a} acc_g - mean_{g in b} acc_g``."""
    def f(acc: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        per = [np.mean([acc[d][g] for g in a], axis=0) - np.mean([acc[d][g] for g in b], axis=0) for d in acc]
        return np.asarray(np.mean(per, axis=0))
    return f


def per_target_difference(ev: Evidence, targets: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    return np.array([np.mean([ev.acc[d][g] for g in a]) - np.mean([ev.acc[d][g] for g in b]) for d in targets])


def rank_agreement(predictor: Mapping[str, Mapping[str, float]], groups: Sequence[str] = COMPONENTS) -> Effect:
    """Mean over targets of Spearman's rho between ``predictor[target][group]`` and the accuracy of
    finetuning ``group`` alone (within-target ranks; a constant target is left out)."""
    def f(acc: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
        rhos = []
        for d in acc:
            x = sps.rankdata([predictor[d][g] for g in groups])
            if np.all(x == x[0]):
                continue
            y = np.stack([acc[d][g] for g in groups], axis=1)  # [B, groups]
            rhos.append(I._rho(x, sps.rankdata(y, axis=1)))
        return np.asarray(np.mean(rhos, axis=0)) if rhos else np.array([math.nan])
    return f
