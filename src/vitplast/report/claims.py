"""The paper's claims as rows with a test, an effect, a 95 % interval, raw and Holm-adjusted p, the design's
power and one verdict under one rule (``docs/statistics.md``).

* Families. The *primary* family is declared in advance: the finetuning order MHA/FFN > LN (mean over
  targets of ``mean(acc MHA, FC1, FC2) - mean(acc LN1, LN2)``), plasticity predicts the finetuning order (mean
  within-target Spearman rho) and the LayerNorms against their parameter-matched control. Every other p-value
  of the report is *secondary*. Each family is Holm-adjusted on its own after excluding, before testing, the
  tests whose smallest attainable p exceeds the family's corrected level ``alpha / m``
  (:func:`vitplast.report.inference.family`); an excluded test is listed as such.
* Tests. Differences of accuracies: two-stage (seeds within groups, then test images) Welch-Satterthwaite t,
  two-sided (:func:`vitplast.report.inference.difference_test`); rank agreement: exact permutation null of the
  mean within-target rho; across targets: exact signed-rank test, one-sided.
* Power: of the test at the family's corrected level ``alpha / m`` for the declared smallest effect of
  interest (1.5 accuracy points, rho 0.6): noncentral t with the observed standard error and df, or
  simulation (:func:`vitplast.report.inference.rank_power`, :func:`vitplast.report.inference.signed_rank_power`).
* Verdict (every tested claim): *supported* when the Holm-adjusted p < alpha and the effect has the claimed
  sign; *not supported* when the reverse is significant (two-sided tests), or when the power is >= 80 % and
  the test did not reject; otherwise *inconclusive: underpowered (power X %)*.
* "the rigorous bounds hold" / "the bounds rank the components as the theory" / the measured plasticity
  ranking are checks without a p-value (every (model, dataset) must agree).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from vitplast.components import COMPONENTS, DISPLAY, THEORY_RANKING
from vitplast.report import evidence as E
from vitplast.report import inference as I
from vitplast.report.design import ALPHA, MIN_DIFFERENCE, MIN_RHO, POWER

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, REFERENCE, EXCLUDED = (
    "supported", "not supported", "inconclusive", "reference", "excluded")
PRIMARY, SECONDARY = "primary", "secondary"
COLUMNS = ["claim", "scope", "kind", "family", "test", "n_targets", "effect", "unit", "ci_low", "ci_high", "p",
           "p_holm", "min_effect", "power", "status", "evidence", "rule"]
RULE = ("supported: Holm-adjusted p < 0.05 (own family) and the claimed sign; not supported: the reverse is "
        "significant, or the power at the corrected level for the declared smallest effect is >= 80 % and the test "
        "did not reject; otherwise inconclusive (underpowered); excluded before testing when no result could pass")
T_TEST = "seed-level t: seeds within groups, then test images; Welch-Satterthwaite df (two-sided)"


@dataclass
class Claim:
    """One row of ``tables/claims.*``; :func:`decide` fills ``p_holm`` (unless set), ``power`` and ``status``."""

    claim: str
    scope: str
    status: str = INCONCLUSIVE
    evidence: str = ""
    rule: str = RULE
    kind: str = "claim"
    #: primary or secondary for a tested claim (empty for checks and references)
    family: str = ""
    test: str = ""
    n_targets: int = 0
    effect: float = math.nan
    unit: str = ""
    ci_low: float = math.nan
    ci_high: float = math.nan
    p: float = math.nan
    p_holm: float = math.nan
    #: the declared smallest effect of interest the power refers to
    min_effect: float = math.nan
    power: float = math.nan
    #: standard error and degrees of freedom of a seed-level t (not in the claims table: in its evidence)
    se: float = field(default=math.nan, repr=False)
    df: float = field(default=math.nan, repr=False)
    p_min: float = field(default=math.nan, repr=False)
    excluded: bool = field(default=False, repr=False)
    two_sided: bool = field(default=False, repr=False)
    #: the test's power at a level (set by the claim's builder; None: unknown)
    power_at: Callable[[float], float] | None = field(default=None, repr=False, compare=False)


def difference_claim(ev: E.Evidence, text: str, a: Sequence[str], b: Sequence[str], kind: str = "claim",
                     family: str = SECONDARY) -> Claim:
    """"A finetunes better than B" on these targets: :func:`vitplast.report.inference.difference_test`."""
    targets = ev.targets([*a, *b])
    c = Claim(text, ev.scope, kind=kind, family=family, n_targets=len(targets), unit="pp", two_sided=True,
              test=T_TEST, min_effect=MIN_DIFFERENCE, p_min=0.0)
    if not targets:
        c.evidence = "no target has results for both sides"
        return c
    d = E.per_target_difference(ev, targets, a, b)
    c.effect = float(np.mean(d))
    c.evidence = (f"ahead on {int(np.sum(d > 0))}/{len(d)} targets; per target "
                  + ", ".join(f"{t} {100 * x:+.2f}" for t, x in zip(targets, d, strict=True)))
    if not ev.has_hits(targets, [*a, *b]):
        c.evidence += "; no per-image records, no test"
        return c
    r = I.difference_test([ev.hits[t] for t in targets], a, b, "two-sided",
                          [ev.clusters.get(t) for t in targets] if ev.clusters else None)
    c.effect, c.ci_low, c.ci_high, c.p, c.se, c.df = r.effect, r.ci_low, r.ci_high, r.p, r.se, r.df
    c.evidence += f"; se {100 * r.se:.2f} pp, df {r.df:.1f}"
    single = sorted({g for t in targets for g in [*a, *b] if g not in E.REFERENCES and ev.hits[t][g].shape[-2] < 2})
    if single:  # e.g. a staged design whose other seeds have not run yet
        c.evidence += (f"; {', '.join(single)} with one seed at the best lr: no seed-to-seed variance counted "
                       "(the interval is too narrow)")
    c.power_at = lambda level: I.t_power(MIN_DIFFERENCE, r.se, r.df, level, two_sided=True)
    return c


def _signed_rank(c: Claim, d: np.ndarray, min_effect: float) -> Claim:
    """One-sided exact signed-rank test of the per-target values ``d`` into ``c`` (power by simulation at the
    observed spread of ``d``)."""
    r = I.signed_rank_test(d, "greater")
    c.effect, c.p, c.p_min, c.min_effect = float(np.mean(d)), r.p, r.p_min, min_effect
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else math.nan
    c.power_at = lambda level: I.signed_rank_power(min_effect, sd, len(d), level)
    c.evidence = (f"ahead on {int(np.sum(d > 0))}/{len(d)} targets, W+ = {r.statistic:g}, {r.ties} tied "
                  f"|differences|, {r.zeros} zero differences dropped; smallest attainable p = {r.p_min:.3g}")
    return c


def generalisation_claim(ev: E.Evidence, text: str, a: Sequence[str], b: Sequence[str]) -> Claim:
    """The same difference, tested across targets: exact one-sided Wilcoxon signed-rank test."""
    targets = ev.targets([*a, *b])
    c = Claim(text, ev.scope, family=SECONDARY, n_targets=len(targets), unit="pp",
              test="exact Wilcoxon signed-rank over targets (one-sided; zeros dropped, mid-ranks for ties)")
    d = E.per_target_difference(ev, targets, a, b)
    if not len(d):
        c.evidence = "no target has results for both sides"
        return c
    return _signed_rank(c, d, MIN_DIFFERENCE)


def _per_target_rho(predictor: Mapping[str, Mapping[str, float]], acc: Mapping[str, Mapping[str, float]],
                    targets: Sequence[str]) -> np.ndarray:
    return np.array([I.spearman_test([predictor[d][g] for g in COMPONENTS],
                                     [acc[d][g] for g in COMPONENTS]).statistic for d in targets])


def rank_claim(ev: E.Evidence, text: str, predictor: Mapping[str, Mapping[str, float]] | None, kind: str,
               what: str, family: str = SECONDARY) -> Claim:
    """"``what`` predicts the finetuning order": mean within-target Spearman rho of the predictor and the
    accuracy of finetuning each component alone; exact permutation null within targets (one-sided)."""
    c = Claim(text, ev.scope, kind=kind, family=family, unit="rho", min_effect=MIN_RHO,
              test="mean within-target Spearman rho; exact permutation null within targets (one-sided)")
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
    c.effect, c.p, c.p_min = r.statistic, r.p, r.p_min
    c.power_at = lambda level: I.rank_power(MIN_RHO, r.n, level)
    per = _per_target_rho(predictor, ev.acc, targets)
    c.evidence = (f"{r.method}; {r.ties} tied values; per-target rho "
                  + ", ".join(f"{t} {v:+.2f}" for t, v in zip(targets, per, strict=True)))
    return c


def random_baseline(ev: E.Evidence, n_targets: int) -> Claim:
    """The random order's score: the exact permutation null of the mean within-target rho (mean 0)."""
    c = Claim("Baseline: a random order predicts the finetuning order", ev.scope, status=REFERENCE, kind="baseline",
              unit="rho", n_targets=n_targets, test="exact permutation null of the mean within-target rho", effect=0.0,
              rule="reference: what a predictor scores by chance")
    if n_targets:
        r = np.arange(1.0, len(COMPONENTS) + 1)
        vals, probs = I.rank_null([(r, r)] * n_targets)
        cum = np.cumsum(probs)
        c.ci_low, c.ci_high = float(vals[np.searchsorted(cum, 0.025)]), float(vals[np.searchsorted(cum, 0.975)])
        c.evidence = f"95 % of random orders score between {c.ci_low:+.2f} and {c.ci_high:+.2f}"
    return c


def better_predictor_claim(ev: E.Evidence, text: str, p1: Mapping[str, Mapping[str, float]] | None,
                           p2: Mapping[str, Mapping[str, float]] | None) -> Claim:
    """Predictor 1 agrees better with the finetuning order than predictor 2: per-target difference of the two
    rhos, exact one-sided signed-rank test over targets."""
    c = Claim(text, ev.scope, family=SECONDARY, unit="rho",
              test="per-target rho difference; exact Wilcoxon signed-rank over targets (one-sided)")
    if not p1 or not p2:
        c.evidence = "a predictor is missing"
        return c
    targets = [d for d in ev.targets(COMPONENTS) if d in p1 and d in p2]
    c.n_targets = len(targets)
    if not targets:
        c.evidence = "no target has both predictors and the finetuning accuracies"
        return c
    d = np.nan_to_num(_per_target_rho(p1, ev.acc, targets)) - np.nan_to_num(_per_target_rho(p2, ev.acc, targets))
    return _signed_rank(c, d, MIN_RHO)


def decide(claims: list[Claim], m: int | None = None) -> list[Claim]:
    """Set ``power`` and the verdicts (module docstring). When ``m`` (the size of the claims' family after
    exclusion) is not given, ``claims`` are one family: excluded and Holm-adjusted here."""
    if m is None:
        adj, excluded, m = I.family([c.p for c in claims], [c.p_min for c in claims], ALPHA)
        for c, pa, ex in zip(claims, adj, excluded, strict=True):
            c.p_holm, c.excluded = float(pa), bool(ex)
    level = ALPHA / max(m, 1)
    for c in claims:
        if c.status == REFERENCE or math.isnan(c.p):
            continue  # a reference row, or nothing to test: stays as built (inconclusive)
        if c.excluded:
            c.status = EXCLUDED
            c.evidence += (f"; excluded before testing: the smallest attainable p ({c.p_min:.3g}) exceeds the "
                           f"corrected level {ALPHA}/{m} = {level:.3g}")
            continue
        c.power = c.power_at(level) if c.power_at is not None else math.nan
        if c.p_holm < ALPHA and c.effect > 0:
            c.status = SUPPORTED
        elif c.two_sided and c.p_holm < ALPHA and c.effect < 0:
            c.status = NOT_SUPPORTED
            c.evidence += f"; the reverse holds (two-sided, Holm-adjusted p = {c.p_holm:.3g})"
        elif c.power >= POWER:
            c.status = NOT_SUPPORTED
            c.evidence += (f"; no effect of {_fmt_effect(c.min_effect, c.unit)} or more: the test had "
                           f"{100 * c.power:.0f} % power for it at level {level:.3g} and did not reject")
        else:
            c.status = INCONCLUSIVE
            pw = "unknown" if math.isnan(c.power) else f"{100 * c.power:.0f} %"
            c.evidence += (f"; underpowered: power {pw} for {_fmt_effect(c.min_effect, c.unit)} at level "
                           f"{level:.3g}")
    return claims


def _fmt_effect(x: float, unit: str) -> str:
    return f"{100 * x:.1f} pp" if unit == "pp" else f"{x:.2g} {unit}"


def finetune_claims(ev: E.Evidence, plasticity: Mapping[str, Mapping[str, float]] | None,
                    params: Mapping[str, Mapping[str, float]] | None) -> list[Claim]:
    """Every tested claim and baseline of one scope (module docstring), before :func:`decide`."""
    high, low = ["mha", "fc1", "fc2"], ["ln1", "ln2"]
    theory: dict[str, dict[str, float]] = {d: {str(g): -float(THEORY_RANKING.index(g)) for g in COMPONENTS}
                                           for d in ev.acc}
    out = [
        difference_claim(ev, "The finetuning order MHA/FFN > LN holds (MHA, FC1, FC2 vs LN1, LN2; these targets)",
                         high, low, family=PRIMARY),
        generalisation_claim(ev, "The finetuning order MHA/FFN > LN generalises across targets", high, low),
        rank_claim(ev, "Plasticity predicts the finetuning order", plasticity, "claim", "plasticity measurement",
                   family=PRIMARY),
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
                                    [a], [b], kind="comparison"))
    out.append(difference_claim(ev, "MHA finetuning beats the linear probe", ["mha"], [E.PROBE]))
    control = next((g for g in ("ln-control", "bias") if any(g in a for a in ev.acc.values())), None)
    if control:
        out.append(difference_claim(ev, f"LN1+LN2 finetune better than a parameter-matched control ({control})",
                                    low, [control], kind="baseline", family=PRIMARY))
    else:
        out.append(Claim("LN1+LN2 finetune better than a parameter-matched control", ev.scope, kind="baseline",
                         family=PRIMARY, test="seed-level t (not run)",
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
    from vitplast.bounds.variants import PRIMARY

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
