"""The paper's claims as rows with a test, an effect size, a 95 % interval, raw and Holm-adjusted p and a verdict.

Definitions and decision rules are in ``docs/statistics.md``. In short (alpha = 0.05, Holm over every
p-value of the report):

* "the finetuning order MHA/FFN > LN holds" and "plasticity predicts the finetuning order" are separate
  claims. The first is the mean over targets of ``mean(acc MHA, FC1, FC2) - mean(acc LN1, LN2)`` at each
  group's best lr, tested by the paired bootstrap over test images and seeds (on these targets) and by the
  exact Wilcoxon signed-rank test over targets (does it generalise across targets). The second is the
  mean within-target Spearman rho between component plasticity and finetuning accuracy, tested by a
  permutation test within targets;
* baselines every predictor must beat, scored the same way: the trainable parameter count, the theory's
  constant order MHA > FC1 > FC2 > LN2 > LN1, and a random order (its permutation null: mean 0);
* MHA, FC1 and FC2 have the same parameter count and are compared pairwise (two-sided);
* when the sweep ran the LayerNorms' parameter-matched control (group ``ln-control``, or ``bias``), the mean
  over targets of ``mean(acc LN1, LN2) - acc control`` at each group's best lr, paired bootstrap (two-sided);
* verdict of a claim "effect > 0": *supported* when the adjusted p < alpha and the effect is positive;
  *not supported* when the 95 % interval lies at or below 0 (for a two-sided comparison: when the reverse
  is significant after Holm), or when its upper end is below the minimum detectable effect (MDE) and that
  MDE is an effect the statistic can reach (the data exclude any effect this design could detect; an MDE
  above 1 for a mean rho, for example, means the design cannot detect anything), or, for the across-target
  test, when the effect is not positive on most targets; *inconclusive* otherwise, with the MDE (or the
  smallest attainable p) stated. ``MDE = (z_{1 - alpha/m} + z_{0.8}) * se`` with ``m`` the number of tests and ``se`` the
  bootstrap standard error (for rank correlations, the standard deviation of the permutation null).
* "the rigorous bounds hold" / "the bounds rank the components as the theory" / the measured plasticity
  ranking are checks without a p-value (every (model, dataset) must agree).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from vitplast.components import COMPONENTS, DISPLAY, THEORY_RANKING
from vitplast.report import evidence as E
from vitplast.report import inference as I

ALPHA = 0.05
POWER = 0.8
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, REFERENCE = "supported", "not supported", "inconclusive", "reference"
COLUMNS = ["claim", "scope", "kind", "test", "n_targets", "effect", "unit", "ci_low", "ci_high", "p", "p_holm",
           "mde", "status", "evidence", "rule"]


@dataclass
class Claim:
    """One row of ``tables/claims.*``; :func:`decide` fills ``p_holm``, ``mde`` and ``status``."""

    claim: str
    scope: str
    status: str = INCONCLUSIVE
    evidence: str = ""
    rule: str = ""
    kind: str = "claim"
    test: str = ""
    n_targets: int = 0
    effect: float = math.nan
    unit: str = ""
    ci_low: float = math.nan
    ci_high: float = math.nan
    p: float = math.nan
    p_holm: float = math.nan
    mde: float = math.nan
    se: float = field(default=math.nan, repr=False)
    p_min: float = field(default=math.nan, repr=False)
    wins: int = field(default=-1, repr=False)
    #: the largest effect the statistic can take (rho 1, a rho difference 2, an accuracy difference 1)
    max_effect: float = field(default=math.inf, repr=False)
    two_sided: bool = field(default=False, repr=False)


RULE = ("supported: Holm-adjusted p < 0.05 and effect > 0; not supported: the interval lies at or below 0, or its "
        "upper end is below a minimum detectable effect the statistic can reach; otherwise inconclusive")


def _from_reps(c: Claim, point: float, reps: np.ndarray | None, alternative: str) -> Claim:
    c.effect = point
    if reps is not None:
        c.ci_low, c.ci_high = I.percentile_interval(reps)
        c.se = float(np.nanstd(reps))
        c.p = I.bootstrap_p(reps, alternative)
    return c


def difference_claim(ev: E.Evidence, text: str, a: Sequence[str], b: Sequence[str], alternative: str = "greater",
                     kind: str = "claim") -> Claim:
    """"A finetunes better than B" on these targets: paired bootstrap over test images and seeds."""
    targets = ev.targets([*a, *b])
    side = "one-sided" if alternative == "greater" else "two-sided"
    c = Claim(text, ev.scope, kind=kind, rule=RULE, n_targets=len(targets), unit="pp", max_effect=1.0,
              two_sided=alternative != "greater",
              test=f"paired bootstrap over test images and seeds ({side}, {E.N_BOOT} draws)")
    if not targets:
        c.evidence = "no target has results for both sides"
        return c
    point, reps = E.evaluate(ev, targets, [*a, *b], E.mean_difference(a, b))
    _from_reps(c, point, reps, alternative)
    d = E.per_target_difference(ev, targets, a, b)
    c.evidence = (f"ahead on {int(np.sum(d > 0))}/{len(d)} targets; per target "
                  + ", ".join(f"{t} {100 * x:+.2f}" for t, x in zip(targets, d, strict=True)))
    if reps is None:
        c.evidence += "; no per-image records, no interval"
    return c


def generalisation_claim(ev: E.Evidence, text: str, a: Sequence[str], b: Sequence[str]) -> Claim:
    """The same difference, tested across targets: exact one-sided Wilcoxon signed-rank test."""
    targets = ev.targets([*a, *b])
    c = Claim(text, ev.scope, kind="claim", n_targets=len(targets), unit="pp",
              test="exact Wilcoxon signed-rank over targets (one-sided; zeros dropped, mid-ranks for ties)",
              rule="supported: Holm-adjusted p < 0.05 and ahead on most targets; inconclusive when even a perfect "
                   "result could not reach it; otherwise not supported")
    d = E.per_target_difference(ev, targets, a, b)
    if not len(d):
        c.evidence = "no target has results for both sides"
        return c
    r = I.signed_rank_test(d, "greater")
    c.effect, c.p, c.p_min, c.wins = float(np.mean(d)), r.p, r.p_min, int(np.sum(d > 0))
    c.evidence = (f"ahead on {c.wins}/{len(d)} targets, W+ = {r.statistic:g}, {r.ties} tied |differences|, "
                  f"{r.zeros} zero differences dropped; smallest attainable p = {r.p_min:.3g}")
    return c


def rank_claim(ev: E.Evidence, text: str, predictor: Mapping[str, Mapping[str, float]] | None, kind: str,
               what: str) -> Claim:
    """"``what`` predicts the finetuning order": mean within-target Spearman rho of the predictor and the
    accuracy of finetuning each component alone; within-target permutation p; bootstrap interval."""
    c = Claim(text, ev.scope, kind=kind, rule=RULE, unit="rho", max_effect=1.0,
              test="mean within-target Spearman rho; permutation within targets (one-sided)")
    if not predictor:
        c.evidence = f"no {what}"
        return c
    targets = [d for d in ev.targets(COMPONENTS) if d in predictor and all(g in predictor[d] for g in COMPONENTS)]
    c.n_targets = len(targets)
    if not targets:
        c.evidence = f"no target has both the {what} and the finetuning accuracy of every component"
        return c
    x = [predictor[d][g] for d in targets for g in COMPONENTS]
    y = [ev.acc[d][g] for d in targets for g in COMPONENTS]
    s = [d for d in targets for _ in COMPONENTS]
    r = I.stratified_rank_test(x, y, s, "greater")
    c.n_targets = r.n  # targets where the predictor and the accuracies both vary
    if not r.n:
        c.evidence = f"the {what} is the same for every component: no rank information"
        return c
    point, reps = E.evaluate(ev, targets, COMPONENTS, E.rank_agreement(predictor))
    _from_reps(c, point, reps, "greater")
    c.p, c.p_min, c.se = r.p, r.p_min, r.null_sd
    per = [I.spearman_test([predictor[d][g] for g in COMPONENTS], [ev.acc[d][g] for g in COMPONENTS]).statistic
           for d in targets]
    c.evidence = (f"{r.method}; {r.ties} tied values; per-target rho "
                  + ", ".join(f"{t} {v:+.2f}" for t, v in zip(targets, per, strict=True)))
    return c


def random_baseline(ev: E.Evidence, n_targets: int) -> Claim:
    """The random order's score: the permutation null of the mean within-target rho (mean 0)."""
    c = Claim("Baseline: a random order predicts the finetuning order", ev.scope, status=REFERENCE, kind="baseline",
              unit="rho", n_targets=n_targets, test="permutation null of the mean within-target rho", effect=0.0,
              rule="reference: what a predictor scores by chance")
    if n_targets:
        rng = np.random.default_rng(0)
        null = np.mean([I._rho(np.arange(5.0), np.argsort(rng.random((20_000, 5)), axis=1).astype(float))
                        for _ in range(n_targets)], axis=0)
        c.ci_low, c.ci_high = I.percentile_interval(null)
        c.evidence = f"95 % of random orders score between {c.ci_low:+.2f} and {c.ci_high:+.2f}"
    return c


def better_predictor_claim(ev: E.Evidence, text: str, p1: Mapping[str, Mapping[str, float]] | None,
                           p2: Mapping[str, Mapping[str, float]] | None) -> Claim:
    """Predictor 1 agrees better with the finetuning order than predictor 2: difference of the mean
    within-target rhos, paired bootstrap over test images and seeds (one-sided)."""
    c = Claim(text, ev.scope, kind="claim", rule=RULE, unit="rho", max_effect=2.0,
              test=f"paired bootstrap of the rho difference over test images and seeds (one-sided, {E.N_BOOT} draws)")
    if not p1 or not p2:
        c.evidence = "a predictor is missing"
        return c
    targets = [d for d in ev.targets(COMPONENTS) if d in p1 and d in p2]
    c.n_targets = len(targets)
    if not targets:
        c.evidence = "no target has both predictors and the finetuning accuracies"
        return c
    f1, f2 = E.rank_agreement(p1), E.rank_agreement(p2)
    point, reps = E.evaluate(ev, targets, COMPONENTS, lambda acc: f1(acc) - f2(acc))
    _from_reps(c, point, reps, "greater")
    c.evidence = "no per-image records, no test" if reps is None else f"difference of the two mean rhos {point:+.2f}"
    return c


def decide(claims: list[Claim], m: int | None = None) -> list[Claim]:
    """Set ``mde`` and the verdicts (module docstring) from ``p_holm``; when ``m`` (the number of tests of
    the whole report) is not given, the claims are the whole family and are Holm-adjusted here."""
    if m is None:
        ps = np.array([c.p for c in claims], dtype=float)
        m = int(np.sum(~np.isnan(ps)))
        for c, pa in zip(claims, I.holm(ps), strict=True):
            c.p_holm = float(pa)
    for c in claims:
        if c.status == REFERENCE or math.isnan(c.p):
            continue  # a reference row, or nothing to test: stays as built (inconclusive)
        if not math.isnan(c.se) and m:
            c.mde = I.detectable_effect(c.se, ALPHA / m, POWER)
        if c.wins >= 0:  # across-target signed-rank test
            if c.p_holm < ALPHA and c.effect > 0:
                c.status = SUPPORTED
            elif c.wins <= c.n_targets / 2 or not c.effect > 0:
                c.status = NOT_SUPPORTED
            elif c.p_min * m >= ALPHA:
                c.status = INCONCLUSIVE
                c.evidence += f"; underpowered: with {c.n_targets} targets and {m} tests no result can reach p < {ALPHA}"
            else:
                c.status = NOT_SUPPORTED
        elif c.p_holm < ALPHA and c.effect > 0:
            c.status = SUPPORTED
        elif c.two_sided and c.p_holm < ALPHA and c.effect < 0:
            c.status = NOT_SUPPORTED
            c.evidence += f"; the reverse holds (two-sided, Holm-adjusted p = {c.p_holm:.3g})"
        elif c.ci_high <= 0:
            c.status = NOT_SUPPORTED  # the data exclude any positive effect, whatever the design's power
        elif not math.isnan(c.mde) and c.mde < c.max_effect and c.ci_high <= c.mde:
            c.status = NOT_SUPPORTED
        else:
            c.status = INCONCLUSIVE
            if not math.isnan(c.mde) and c.mde >= c.max_effect:
                c.evidence += (f"; underpowered: the minimum detectable effect {c.mde:.3g} {c.unit} exceeds the largest "
                               f"possible effect ({c.max_effect:g})")
            elif not math.isnan(c.mde):
                c.evidence += f"; underpowered: minimum detectable effect {c.mde:.3g} {c.unit}"
    return claims


def finetune_claims(ev: E.Evidence, plasticity: Mapping[str, Mapping[str, float]] | None,
                    params: Mapping[str, Mapping[str, float]] | None) -> list[Claim]:
    """Every tested claim and baseline of one scope (module docstring), before :func:`decide`."""
    high, low = ["mha", "fc1", "fc2"], ["ln1", "ln2"]
    theory: dict[str, dict[str, float]] = {d: {str(g): -float(THEORY_RANKING.index(g)) for g in COMPONENTS}
                                           for d in ev.acc}
    out = [
        difference_claim(ev, "The finetuning order MHA/FFN > LN holds (MHA, FC1, FC2 vs LN1, LN2; these targets)",
                         high, low),
        generalisation_claim(ev, "The finetuning order MHA/FFN > LN generalises across targets", high, low),
        rank_claim(ev, "Plasticity predicts the finetuning order", plasticity, "claim", "plasticity measurement"),
        rank_claim(ev, "Baseline: the trainable parameter count predicts the finetuning order", params, "baseline",
                   "parameter counts"),
        rank_claim(ev, f"Baseline: the theory's constant order {' > '.join(DISPLAY[c] for c in THEORY_RANKING)} "
                   "predicts the finetuning order", theory, "baseline", "order"),
    ]
    out.append(random_baseline(ev, out[2].n_targets or out[3].n_targets))
    out += [
        better_predictor_claim(ev, "Plasticity predicts the finetuning order better than the parameter count",
                               plasticity, params),
        better_predictor_claim(ev, "Plasticity predicts the finetuning order better than the theory's constant order",
                               plasticity, theory),
    ]
    for a, b in (("mha", "fc1"), ("mha", "fc2"), ("fc1", "fc2")):
        out.append(difference_claim(ev, f"{DISPLAY[a]} finetunes better than {DISPLAY[b]} (same parameter count)",
                                    [a], [b], "two-sided", kind="comparison"))
    out.append(difference_claim(ev, "MHA finetuning beats the linear probe", ["mha"], [E.PROBE]))
    control = next((g for g in ("ln-control", "bias") if any(g in a for a in ev.acc.values())), None)
    if control:
        out.append(difference_claim(ev, f"LN1+LN2 finetune better than a parameter-matched control ({control})",
                                    low, [control], "two-sided", kind="baseline"))
    else:
        out.append(Claim("LN1+LN2 finetune better than a parameter-matched control", ev.scope, kind="baseline",
                         rule=RULE, test="paired bootstrap (not run)",
                         evidence="no parameter-matched control group was run (design: docs/statistics.md)"))
    return out


def claims_table(claims: list[Claim]) -> pd.DataFrame:
    return pd.DataFrame([{k: v for k, v in asdict(c).items() if k in COLUMNS} for c in claims], columns=COLUMNS)


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
