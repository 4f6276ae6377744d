"""The paper's claims as rows: supported / not supported / inconclusive by these results, with the number.

Decision rules (alpha = 0.05; "datasets" are the paired observations across which the paper generalises):

* "A finetunes better than B" (best-lr seed-mean test accuracy, paired over datasets):
  no common dataset -> inconclusive; A wins on at most half of the datasets or the mean difference is
  <= 0 -> not supported; one-sided Wilcoxon p < alpha -> supported; otherwise inconclusive when even a
  perfect result could not reach alpha with this many datasets (exact one-sided p >= 2^-n, so n < 5),
  not supported when it could.
* "plasticity ranking MHA > FC1 > FC2 > LN2 > LN1": supported when the measured order (component means
  over layers) equals it on every (model, dataset); not supported otherwise; inconclusive without data.
* "plasticity ranking predicts finetuning ranking": pooled Spearman between component plasticity and
  relative gain; supported when rho > 0, p < alpha and the mean per-dataset rho > 0; inconclusive with
  fewer than :data:`MIN_DATASETS` datasets; not supported otherwise.
* "the rigorous bounds hold": every rigorous bound >= the measured mean plasticity of its layer and
  component (a necessary condition; ``vitplast bounds`` checks every pair).
* "the bounds rank the components as the theory": per model, mean over layers of the primary bound of
  each component in the theory's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from vitplast.components import DISPLAY, THEORY_RANKING
from vitplast.report.stats import paired_test

ALPHA = 0.05
MIN_DATASETS = 3
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


@dataclass
class Claim:
    claim: str
    scope: str
    status: str
    evidence: str
    rule: str = ""


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:+.2f} pp"


def _fmt_p(p: float) -> str:
    return "n/a" if p is None or math.isnan(p) else f"{p:.3g}"


def comparison_claim(
    text: str, scope: str, a: np.ndarray, b: np.ndarray, fmt: Callable[[float], str] = _pct
) -> Claim:
    """Claim "A is larger than B" from paired per-dataset values (module docstring); ``fmt`` prints the
    mean difference."""
    rule = "paired over datasets: one-sided Wilcoxon p < 0.05 and A ahead on most datasets"
    n = len(a)
    if n == 0:
        return Claim(text, scope, INCONCLUSIVE, "no dataset has results for both", rule)
    r = paired_test(a, b)
    ev = (f"A ahead on {int(r['wins'])}/{n} datasets, mean difference {fmt(r['mean_diff'])}, "
          f"Wilcoxon one-sided p = {_fmt_p(r['w_p'])}, paired t-test p = {_fmt_p(r['t_p'])}")
    if r["wins"] <= n / 2 or not r["mean_diff"] > 0:
        return Claim(text, scope, NOT_SUPPORTED, ev, rule)
    if r["w_p"] < ALPHA:
        return Claim(text, scope, SUPPORTED, ev, rule)
    if r["w_p_min"] >= ALPHA:
        ev += f"; with {n} datasets no result can reach p < {ALPHA} (needs >= 5)"
        return Claim(text, scope, INCONCLUSIVE, ev, rule)
    return Claim(text, scope, NOT_SUPPORTED, ev + " (not significant)", rule)


def _pair_arrays(best: pd.DataFrame, a: list[str], b: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per dataset, the mean of groups ``a`` and of groups ``b`` (datasets where all of them have a value)."""
    wide = best.pivot_table(index="dataset", columns="group", values="acc_mean", aggfunc="mean")
    need = a + b
    if any(g not in wide for g in need):
        return np.array([]), np.array([])
    wide = wide[need].dropna()
    return wide[a].mean(axis=1).to_numpy(), wide[b].mean(axis=1).to_numpy()


FINETUNE_CLAIMS: list[tuple[str, list[str], list[str]]] = [
    ("MHA finetuning beats LN1 finetuning", ["mha"], ["ln1"]),
    ("MHA finetuning beats LN2 finetuning", ["mha"], ["ln2"]),
    ("MHA finetuning beats FC1 finetuning", ["mha"], ["fc1"]),
    ("MHA finetuning beats FC2 finetuning", ["mha"], ["fc2"]),
    ("FFN layers (FC1, FC2) finetune better than LayerNorms (LN1, LN2)", ["fc1", "fc2"], ["ln1", "ln2"]),
    ("High-plasticity components (MHA, FC1, FC2) finetune better than smooth ones (LN1, LN2)",
     ["mha", "fc1", "fc2"], ["ln1", "ln2"]),
]


def finetune_claims(gains: pd.DataFrame) -> list[Claim]:
    """The comparison claims, per (model, optimizer), from the best-lr table with gains."""
    out: list[Claim] = []
    for (model, opt), t in gains.groupby(["model", "optimizer"], sort=True):
        scope = f"{model}, {opt}"
        for text, a, b in FINETUNE_CLAIMS:
            x, y = _pair_arrays(t, a, b)
            out.append(comparison_claim(text, scope, x, y))
        t2 = t[t["group"] == "mha"].dropna(subset=["acc_mean", "probe_acc"])
        out.append(comparison_claim("MHA finetuning beats the linear probe", scope,
                                    t2["acc_mean"].to_numpy(), t2["probe_acc"].to_numpy()))
        if "grad_norm" in t:
            x, y = _grad_pairs(t)
            out.append(comparison_claim(
                "MHA receives larger gradients than LN1 and LN2 (mean pre-clipping norm, log10)", scope, x, y,
                fmt=lambda d: f"{d:+.2f} decades"))
    return out


def _grad_pairs(t: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per dataset: log10 of MHA's mean gradient norm, and of the larger of LN1's and LN2's."""
    wide = t.pivot_table(index="dataset", columns="group", values="grad_norm", aggfunc="mean")
    if not {"mha", "ln1", "ln2"} <= set(wide.columns):
        return np.array([]), np.array([])
    wide = wide[["mha", "ln1", "ln2"]].dropna()
    wide = wide[(wide > 0).all(axis=1)]
    return np.log10(wide["mha"].to_numpy()), np.log10(wide[["ln1", "ln2"]].max(axis=1).to_numpy())


def ranking_claim(ranking: pd.DataFrame) -> Claim:
    text = f"Plasticity ranking {' > '.join(DISPLAY[c] for c in THEORY_RANKING)} (measured)"
    rule = "the measured order of component means over layers equals the theory on every (model, dataset)"
    if ranking.empty:
        return Claim(text, "all", INCONCLUSIVE, "no plasticity measurement", rule)
    k, n = int(ranking["matches_theory"].sum()), len(ranking)
    orders = ranking["order"].value_counts()
    ev = (f"exact order on {k}/{n} (model, dataset); mean Spearman with the theory "
          f"{ranking['spearman_theory'].mean():.2f}; most frequent order: {orders.index[0]} ({orders.iloc[0]}x)")
    return Claim(text, "all", SUPPORTED if k == n else NOT_SUPPORTED, ev, rule)


def predicts_claims(corr: pd.DataFrame) -> list[Claim]:
    text = "Plasticity ranking predicts the finetuning ranking (Spearman plasticity vs relative gain)"
    rule = (f"pooled Spearman rho > 0 with p < {ALPHA} and mean per-dataset rho > 0, "
            f"with at least {MIN_DATASETS} datasets")
    out = []
    if corr.empty:
        return [Claim(text, "all", INCONCLUSIVE, "needs both plasticity and finetuning results of the components", rule)]
    for (model, opt), t in corr.groupby(["model", "optimizer"], sort=True):
        pooled = t[t["scope"] == "pooled"].iloc[0]
        per = t[t["scope"] != "pooled"]["rho"]
        nd = int(pooled["n_datasets"])
        ev = (f"pooled rho = {pooled['rho']:.2f} (p = {_fmt_p(pooled['p'])}, {int(pooled['n'])} points, "
              f"{nd} datasets); per-dataset rho mean {per.mean():.2f}, positive on {int((per > 0).sum())}/{len(per)}")
        if nd < MIN_DATASETS or math.isnan(pooled["rho"]):
            status = INCONCLUSIVE
            ev += f"; fewer than {MIN_DATASETS} datasets" if nd < MIN_DATASETS else ""
        elif pooled["rho"] > 0 and pooled["p"] < ALPHA and per.mean() > 0:
            status = SUPPORTED
        else:
            status = NOT_SUPPORTED
        out.append(Claim(text, f"{model}, {opt}", status, ev, rule))
    return out


def bounds_claims(bounds: pd.DataFrame, plasticity: pd.DataFrame, analyses: pd.DataFrame | None = None) -> list[Claim]:
    """Bounds hold and rank the components as the theory (module docstring).

    "Hold" uses the per-pair check of the analyses (``bound_comparisons`` / ``bound_violations`` columns of
    ``analyses.csv``) when present, else compares each rigorous bound with the measured mean.
    """
    hold = "The rigorous upper bounds hold (every measured pair, layer and component)"
    rank = f"The bounds rank the components {' > '.join(DISPLAY[c] for c in THEORY_RANKING)}"
    if bounds.empty or "rigorous" not in bounds:
        return [Claim(hold, "all", INCONCLUSIVE, "no bounds were computed"),
                Claim(rank, "all", INCONCLUSIVE, "no bounds were computed")]
    rig = bounds[bounds["rigorous"].astype(str).str.lower() == "true"]
    if analyses is not None and "bound_comparisons" in analyses and analyses["bound_comparisons"].notna().any():
        a = analyses.dropna(subset=["bound_comparisons"])
        n_cmp, n_bad = int(a["bound_comparisons"].sum()), int(a["bound_violations"].sum())
        ev = f"{n_bad} violations in {n_cmp} (pair, rigorous bound) comparisons over {len(a)} analyses"
        status = SUPPORTED if n_bad == 0 and n_cmp > 0 else NOT_SUPPORTED if n_bad else INCONCLUSIVE
    else:
        keys = ["model_label", "dataset", "layer", "component"]
        m = rig.merge(plasticity[[*keys, "mean"]], on=keys)
        bad = m[m["bound"] < m["mean"]]
        ev = f"{len(bad)} of {len(m)} rigorous bounds below the measured mean (per-pair check not available)"
        status = INCONCLUSIVE if m.empty else (NOT_SUPPORTED if len(bad) else INCONCLUSIVE)
    out = [Claim(hold, "all", status, ev, "no measured pair exceeds a rigorous bound")]
    from vitplast.bounds.compute import PRIMARY

    prim = rig[[PRIMARY.get(c) == v for c, v in zip(rig["component"], rig["variant"], strict=True)]]
    means = prim.groupby(["model_label", "component"])["bound"].mean()
    orders = []
    for model, s in means.groupby(level=0):
        s = s.droplevel(0)
        orders.append((model, [str(c) for c in s.sort_values(ascending=False).index]))
    ok = all(o == list(THEORY_RANKING) for _, o in orders)
    ev2 = "; ".join(f"{m_}: {' > '.join(DISPLAY[c] for c in o)}" for m_, o in orders)
    out.append(Claim(rank, "all", SUPPORTED if orders and ok else NOT_SUPPORTED if orders else INCONCLUSIVE,
                     ev2 + " (primary rigorous bound, mean over layers and datasets)",
                     "the order of the bounds' component means equals the theory for every model"))
    return out


def claims_table(claims: list[Claim]) -> pd.DataFrame:
    return pd.DataFrame([asdict(c) for c in claims], columns=["claim", "scope", "status", "evidence", "rule"])
