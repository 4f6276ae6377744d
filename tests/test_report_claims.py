"""Verdicts of the claims: supported / not supported / inconclusive follow the stated rules."""

from __future__ import annotations

import numpy as np
import pytest

from vitplast.report import claims as C
from vitplast.report import evidence as E
from vitplast.report import inference as I


def evidence(diff: float, n_test: int, targets: int, seed: int = 0) -> E.Evidence:
    """MHA vs LN1 on ``targets`` targets of ``n_test`` images and 3 seeds; MHA right on ``diff`` more images."""
    rng = np.random.default_rng(seed)
    ev = E.Evidence("m", "adamw", {})
    for t in range(targets):
        base = rng.random((3, n_test)) < 0.6
        better = base | (rng.random((3, n_test)) < diff / 0.4)
        if diff == 0:  # as good, on other images
            better = rng.random((3, n_test)) < 0.6
        hits = {"ln1": base, "mha": better}
        ev.acc[f"t{t}"] = {g: float(h.mean()) for g, h in hits.items()}
        ev.reps[f"t{t}"] = I.bootstrap_accuracy(hits, 1000, rng)
    return ev


def verdict(ev: E.Evidence, m: int | None = None) -> C.Claim:
    claim = C.difference_claim(ev, "MHA > LN1", ["mha"], ["ln1"])
    return C.decide([claim])[0] if m is None else _with_m(claim, m)


def _with_m(claim: C.Claim, m: int) -> C.Claim:
    claim.p_holm = min(1.0, claim.p * m)
    return C.decide([claim], m)[0]


def test_a_clear_effect_is_supported_with_an_interval_around_it() -> None:
    c = verdict(evidence(0.10, 1000, 3))
    assert c.status == C.SUPPORTED and c.ci_low > 0 and c.ci_low < c.effect < c.ci_high
    assert c.effect == pytest.approx(0.10, abs=0.03)


def test_no_effect_with_a_precise_design_is_not_supported() -> None:
    c = verdict(evidence(0.0, 5000, 3))
    assert c.status == C.NOT_SUPPORTED and c.ci_high <= c.mde


def test_a_small_design_is_inconclusive_and_states_its_detectable_effect() -> None:
    c = verdict(evidence(0.02, 60, 1), m=10)
    assert c.status == C.INCONCLUSIVE and "minimum detectable effect" in c.evidence
    # MDE = (z_{1 - 0.05/10} + z_0.8) * bootstrap se
    assert c.mde == pytest.approx(I.detectable_effect(c.se, 0.005), rel=1e-9) and c.mde > 0.05


def test_across_targets_four_targets_can_never_be_significant() -> None:
    ev = evidence(0.10, 500, 4)
    c = C.decide([C.generalisation_claim(ev, "x", ["mha"], ["ln1"])])[0]
    assert c.p == pytest.approx(1 / 16) and c.p_min == pytest.approx(1 / 16)
    assert c.status == C.INCONCLUSIVE and "underpowered" in c.evidence
    worse = C.decide([C.generalisation_claim(ev, "x", ["ln1"], ["mha"])])[0]
    assert worse.status == C.NOT_SUPPORTED


def test_holm_is_applied_across_the_claims() -> None:
    ev = evidence(0.03, 400, 2)
    claims = C.decide([C.difference_claim(ev, "a", ["mha"], ["ln1"]), C.generalisation_claim(ev, "b", ["mha"], ["ln1"])])
    assert [c.p_holm for c in claims] == pytest.approx(list(I.holm([c.p for c in claims])))


def test_an_unreachable_detectable_effect_never_makes_a_claim_not_supported() -> None:
    """A rank claim whose MDE exceeds rho = 1 cannot be "not supported" by the MDE rule: it is inconclusive and
    says why; an interval at or below 0 is "not supported" whatever the power."""
    def rank(effect: float, hi: float, se: float) -> C.Claim:
        c = C.Claim("plasticity predicts", "m", unit="rho", max_effect=1.0, effect=effect, ci_low=effect - 0.2,
                    ci_high=hi, p=0.3, se=se)
        return C.decide([c])[0]

    weak = rank(0.15, 0.53, 0.45)
    assert weak.mde > 1.0 and weak.ci_high <= weak.mde and weak.status == C.INCONCLUSIVE
    assert "exceeds the largest possible effect" in weak.evidence
    assert rank(-0.4, 0.0, 0.45).status == C.NOT_SUPPORTED
    assert rank(0.05, 0.2, 0.1).status == C.NOT_SUPPORTED  # MDE ~0.25 < 1 and the interval ends below it


def test_a_significant_reverse_of_a_two_sided_comparison_is_stated() -> None:
    c = C.decide([C.difference_claim(evidence(0.10, 1000, 3), "LN1 > MHA", ["ln1"], ["mha"], "two-sided")])[0]
    assert c.status == C.NOT_SUPPORTED and c.effect < 0 and "the reverse holds" in c.evidence
