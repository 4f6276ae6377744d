"""Bounds against measurement: per-pair violations, tightness, and the theory's ranking (README, "Theory: bounds on plasticity").

A rigorous bound of (layer, component) must be >= the ratio ``||f(X) - f(Y)||_F / ||X - Y||_F`` of every
measured pair of that layer and component (embedding mode, the pairs the bound was computed on). A
measured ratio above ``bound * (1 + rtol)`` is a violation; ``rtol`` absorbs the float32 rounding of the
measurement (default 1e-5). Violations are returned, never dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from vitplast.analysis_config import DEFAULT_RTOL
from vitplast.bounds.result import BoundsResult
from vitplast.components import COMPONENTS, THEORY_RANKING
from vitplast.errors import VitplastError
from vitplast.plasticity import PlasticityResult

VIOLATION_COLUMNS = ["layer", "component", "variant", "pair", "value", "bound", "margin", "rel_margin"]


def _pairs_of(bounds: BoundsResult, result: PlasticityResult) -> tuple[np.ndarray, np.ndarray]:
    if result.mode != "embedding":
        raise VitplastError(f"the bounds hold in embedding mode; this plasticity result is in {result.mode} mode")
    if result.pairs is None:
        raise VitplastError("the plasticity result has no per-pair ratios: measure with keep_pairs=True")
    pairs = np.asarray(result.pairs, dtype=np.float64)
    index = result.pair_index if result.pair_index is not None else np.arange(len(pairs))
    if len(index) and int(np.max(index)) >= bounds.stats.n_pairs:
        raise VitplastError(
            f"the plasticity result has pair {int(np.max(index))} but the bounds cover only the first "
            f"{bounds.stats.n_pairs} pairs: compute both on the same pairs"
        )
    if pairs.ndim != 3 or pairs.shape[1:] != (bounds.info["depth"], len(COMPONENTS)):
        raise VitplastError(
            f"per-pair ratios of shape {pairs.shape} do not fit a model of depth {bounds.info['depth']}"
        )
    return pairs, np.asarray(index)


def check_bounds(bounds: BoundsResult, result: PlasticityResult, rtol: float = DEFAULT_RTOL) -> pd.DataFrame:
    """Every (rigorous bound, measured pair) of the same layer and component where ``value > bound (1 + rtol)``.

    Columns :data:`VIOLATION_COLUMNS`: ``pair`` is the pair's position in the input streams, ``margin`` =
    bound - value (negative), ``rel_margin`` = margin / bound. Empty when every bound holds.
    """
    pairs, index = _pairs_of(bounds, result)
    rig = bounds.rigorous()
    rows: list[dict[str, Any]] = []
    for layer, comp, variant, bound in zip(
        rig["layer"].to_numpy(dtype=int),
        rig["component"].astype(str),
        rig["variant"].astype(str),
        rig["bound"].to_numpy(dtype=float),
        strict=True,
    ):
        values = pairs[:, layer, COMPONENTS.index(comp)]
        for i in np.nonzero(values > bound * (1 + rtol))[0]:
            v = float(values[i])
            rows.append(
                {
                    "layer": int(layer),
                    "component": comp,
                    "variant": variant,
                    "pair": int(index[i]),
                    "value": v,
                    "bound": float(bound),
                    "margin": float(bound) - v,
                    "rel_margin": (float(bound) - v) / float(bound),
                }
            )
    return pd.DataFrame(rows, columns=VIOLATION_COLUMNS)


def bound_tightness(bounds: BoundsResult, result: PlasticityResult, rtol: float = DEFAULT_RTOL) -> pd.DataFrame:
    """Per bounds row (all variants): measured mean and max ratio, ``max / bound`` and how many pairs exceed it."""
    pairs, _ = _pairs_of(bounds, result)
    out = bounds.table.copy()
    cols = [COMPONENTS.index(str(c)) for c in out["component"]]
    vals = pairs[:, out["layer"].to_numpy(dtype=int), cols]  # [n_pairs, rows]
    bound = out["bound"].to_numpy(dtype=float)
    out["measured_mean"] = vals.mean(0) if len(vals) else np.nan
    out["measured_max"] = vals.max(0) if len(vals) else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        out["max_over_bound"] = out["measured_max"] / bound
    out["n_exceed"] = (vals > bound * (1 + rtol)).sum(0)
    out["n_pairs"] = len(vals)
    return out


def check_summary(tight: pd.DataFrame, violations: pd.DataFrame, rtol: float = DEFAULT_RTOL) -> dict[str, Any]:
    """JSON-friendly digest: pairs and bounds checked, violations, the tightest rigorous bound, paper variants."""
    rig = tight[tight["rigorous"]].reset_index(drop=True)
    worst = rig.iloc[int(np.nanargmax(rig["max_over_bound"].to_numpy(dtype=float)))] if len(rig) else None
    paper = tight[~tight["rigorous"]]
    return {
        "rtol": rtol,
        "n_pairs": int(tight["n_pairs"].iloc[0]) if len(tight) else 0,
        "rigorous_bounds_checked": len(rig),
        "comparisons": int(len(rig) * (tight["n_pairs"].iloc[0] if len(tight) else 0)),
        "violations": len(violations),
        "all_hold": bool(len(violations) == 0),
        "tightest": None
        if worst is None
        else {k: worst[k] for k in ("layer", "component", "variant", "bound", "measured_max", "max_over_bound")},
        "non_rigorous_exceeded": {
            f"{r.component}/{r.variant}": int(r.n_exceed)
            for r in paper.groupby(["component", "variant"], as_index=False)["n_exceed"].sum().itertuples()
        },
    }


def _component_means(table: pd.DataFrame, value: str = "mean") -> pd.Series:
    return table.groupby("component")[value].mean().reindex(list(COMPONENTS))


def _spearman(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    if np.isnan(a).any() or np.isnan(b).any() or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan"), float("nan")
    res = spearmanr(a, b)
    return float(res.statistic), float(res.pvalue)


def ranking_agreement(plasticity_table: pd.DataFrame, bounds: BoundsResult | None = None) -> dict[str, Any]:
    """Spearman correlation between the theory's ranking (MHA > FC1 > FC2 > LN2 > LN1) and the measured one.

    The measured ranking orders components by their plasticity averaged over layers (column ``mean`` of
    a :func:`~vitplast.plasticity.measure_plasticity` table, one model). ``spearman`` compares it with
    :data:`~vitplast.components.THEORY_RANKING`; ``per_layer`` does the same within each layer. With
    ``bounds``, the ranking of the primary (rigorous) bounds averaged over layers is compared with both.
    """
    if "model" in plasticity_table and plasticity_table["model"].nunique() > 1:
        raise VitplastError("ranking_agreement takes one model's table: split it by its model column first")
    theory = np.array([THEORY_RANKING.index(c) + 1 for c in COMPONENTS], dtype=float)
    means = _component_means(plasticity_table)
    measured_rank = means.rank(ascending=False, method="average").to_numpy()
    rho, p = _spearman(theory, measured_rank)
    per_layer = {}
    for layer, t in plasticity_table.groupby("layer"):
        m = t.set_index("component")["mean"].reindex(list(COMPONENTS))
        rho_layer, _ = _spearman(theory, m.rank(ascending=False).to_numpy())
        per_layer[int(str(layer))] = rho_layer
    out: dict[str, Any] = {
        "theory": list(THEORY_RANKING),
        "measured": [str(c) for c in means.sort_values(ascending=False).index],
        "component_means": {str(c): float(v) for c, v in means.items()},
        "spearman": rho,
        "pvalue": p,
        "per_layer": per_layer,
    }
    if bounds is not None:
        b = _component_means(bounds.primary(), "bound")
        b_rank = b.rank(ascending=False, method="average").to_numpy()
        out["bound_ranking"] = [str(c) for c in b.sort_values(ascending=False).index]
        out["bound_means"] = {str(c): float(v) for c, v in b.items()}
        out["spearman_bounds_theory"] = _spearman(theory, b_rank)[0]
        out["spearman_bounds_measured"] = _spearman(b_rank, measured_rank)[0]
    return out
