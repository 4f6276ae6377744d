"""Verdicts of the claims: one rule (supported / not supported / inconclusive: underpowered / excluded)."""

from __future__ import annotations

import numpy as np
import pytest

from vitplast.report import claims as C
from vitplast.report import evidence as E
from vitplast.report import inference as I


def evidence(diff: float, n_test: int, targets: int, seed: int = 0, seed_sd: float = 0.0) -> E.Evidence:
    """MHA vs LN1 on ``targets`` targets of ``n_test`` images and 3 seeds; MHA right on ``diff`` more images;
    each seed's accuracy moves by ``N(0, seed_sd)``."""
    rng = np.random.default_rng(seed)
    ev = E.Evidence("m", "adamw", {})
    for t in range(targets):
        jitter = rng.normal(0, seed_sd, (2, 3, 1))
        base = rng.random((3, n_test)) < 0.6 + jitter[0]
        better = base | (rng.random((3, n_test)) < diff / 0.4 + jitter[1])
        if diff == 0:  # as good, on other images
            better = rng.random((3, n_test)) < 0.6 + jitter[1]
        ev.hits[f"t{t}"] = {"ln1": base, "mha": better}
        ev.acc[f"t{t}"] = {g: float(h.mean()) for g, h in ev.hits[f"t{t}"].items()}
    return ev


def verdict(ev: E.Evidence) -> C.Claim:
    return C.decide([C.difference_claim(ev, "MHA > LN1", ["mha"], ["ln1"])])[0]


def test_a_clear_effect_is_supported_with_an_interval_around_it() -> None:
    c = verdict(evidence(0.10, 1000, 3))
    assert c.status == C.SUPPORTED and c.ci_low > 0 and c.ci_low < c.effect < c.ci_high
    assert c.effect == pytest.approx(0.10, abs=0.03)
    r = I.difference_test([evidence(0.10, 1000, 3).hits[f"t{t}"] for t in range(3)], ["mha"], ["ln1"], "two-sided")
    assert (c.effect, c.ci_low, c.ci_high, c.p) == pytest.approx((r.effect, r.ci_low, r.ci_high, r.p))


def test_no_effect_with_a_powerful_design_is_not_supported() -> None:
    c = verdict(evidence(0.0, 5000, 3))
    se = (c.ci_high - c.effect) / 2.0
    assert c.power >= 0.8 and c.status == C.NOT_SUPPORTED and "did not reject" in c.evidence
    assert se < 0.01


def test_a_small_noisy_design_is_inconclusive_and_states_its_power() -> None:
    ev = evidence(0.02, 200, 2, seed_sd=0.03)
    c = verdict(ev)
    r = I.difference_test([ev.hits[t] for t in sorted(ev.hits)], ["mha"], ["ln1"], "two-sided")
    assert c.power == pytest.approx(I.t_power(C.MIN_DIFFERENCE, r.se, r.df, 0.05, two_sided=True))
    assert c.status == C.INCONCLUSIVE and c.power < 0.8 and f"power {100 * c.power:.0f} %" in c.evidence


def test_a_significant_reverse_is_not_supported_and_said() -> None:
    c = C.decide([C.difference_claim(evidence(0.10, 1000, 3), "LN1 > MHA", ["ln1"], ["mha"])])[0]
    assert c.status == C.NOT_SUPPORTED and c.effect < 0 and "the reverse holds" in c.evidence


def test_across_targets_four_targets_are_excluded_before_testing() -> None:
    """With 4 targets the smallest one-sided signed-rank p is 1/16 > 0.05: the test is excluded, whatever the
    data say, and the rest of its family is adjusted without it."""
    ev = evidence(0.10, 500, 4)
    gen = C.generalisation_claim(ev, "x", ["mha"], ["ln1"])
    diff = C.difference_claim(ev, "y", ["mha"], ["ln1"])
    C.decide([gen, diff])
    assert gen.p == pytest.approx(1 / 16) and gen.p_min == pytest.approx(1 / 16)
    assert gen.status == C.EXCLUDED and np.isnan(gen.p_holm) and "excluded before testing" in gen.evidence
    assert diff.p_holm == pytest.approx(diff.p)  # a family of one after the exclusion


def test_holm_within_the_family() -> None:
    ev = evidence(0.03, 400, 3)
    claims = C.decide([C.difference_claim(ev, "a", ["mha"], ["ln1"]), C.difference_claim(ev, "b", ["ln1"], ["mha"])])
    assert [c.p_holm for c in claims] == pytest.approx(list(I.holm([c.p for c in claims])))


def test_rank_claim_power_is_the_simulated_power_of_the_exact_test() -> None:
    """Plasticity predicts: power at the declared rho 0.6 for 3 targets at the family's level."""
    ev = E.Evidence("m", "adamw", {f"t{t}": {g: 0.5 + 0.01 * k for k, g in enumerate(C.COMPONENTS)} for t in range(3)})
    plast = {f"t{t}": {g: float(k) for k, g in enumerate(C.COMPONENTS)} for t in range(3)}
    c = C.rank_claim(ev, "plasticity predicts", plast, "claim", "plasticity", family=C.PRIMARY)
    C.decide([c])
    assert c.effect == pytest.approx(1.0) and c.p == pytest.approx(120.0**-3) and c.status == C.SUPPORTED
    assert c.power == pytest.approx(I.rank_power(C.MIN_RHO, 3, 0.05))
    reverse = {d: {g: -v for g, v in p.items()} for d, p in plast.items()}
    r = C.decide([C.rank_claim(ev, "reverse predicts", reverse, "claim", "plasticity")])[0]
    assert r.effect == pytest.approx(-1.0) and r.status in (C.NOT_SUPPORTED, C.INCONCLUSIVE)
    assert (r.status == C.NOT_SUPPORTED) == (r.power >= 0.8)


def test_the_random_baseline_is_the_exact_null_range() -> None:
    ev = E.Evidence("m", "adamw", {})
    c = C.random_baseline(ev, 3)
    r = np.arange(1.0, 6)
    vals, probs = I.rank_null([(r, r)] * 3)
    assert probs[vals <= c.ci_low + 1e-9].sum() >= 0.025 and probs[vals < c.ci_low - 1e-9].sum() < 0.025
    assert c.ci_low == pytest.approx(-c.ci_high)


def test_a_group_with_one_seed_says_that_its_seed_variance_is_missing() -> None:
    ev = evidence(0.05, 500, 2)
    assert "one seed" not in verdict(ev).evidence
    ev.hits["t0"]["mha"] = ev.hits["t0"]["mha"][:1]  # a staged design before its other seeds ran
    assert "mha with one seed at the best lr: no seed-to-seed variance counted" in verdict(ev).evidence
