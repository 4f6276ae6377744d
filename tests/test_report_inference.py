"""Exact tests, Holm and the paired bootstrap against naive enumeration and closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from vitplast.report import inference as I


def _naive_signed_rank(d: np.ndarray, alternative: str) -> float:
    d = d[d != 0]
    ranks = sps.rankdata(np.abs(d))
    obs = ranks[d > 0].sum()
    null = [sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in itertools.product([0, 1], repeat=len(d))]
    null_a = np.array(null)
    hi, lo = np.mean(null_a >= obs - 1e-9), np.mean(null_a <= obs + 1e-9)
    return {"greater": hi, "less": lo, "two-sided": min(1.0, 2 * min(hi, lo))}[alternative]


@pytest.mark.parametrize("alternative", I.ALTERNATIVES)
def test_signed_rank_with_ties_and_zeros_equals_enumeration(alternative: str) -> None:
    d = np.array([0.5, 0.5, -0.2, 1.0, 0.0, 0.2, 0.5, -1.0, 0.3])
    r = I.signed_rank_test(d, alternative)
    assert r.p == pytest.approx(_naive_signed_rank(d, alternative))
    assert r.zeros == 1 and r.n == 8 and r.ties == 4  # |d| = 0.5 x3, 0.2 x2, 1.0 x2


def test_signed_rank_without_ties_equals_scipy_exact() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1, 12)
    for alt in I.ALTERNATIVES:
        assert I.signed_rank_test(d, alt).p == pytest.approx(sps.wilcoxon(d, alternative=alt, method="exact").pvalue)


def test_signed_rank_all_positive_gives_the_minimum() -> None:
    r = I.signed_rank_test([1, 2, 3, 4, 5, 6])
    assert r.p == pytest.approx(2.0**-6) == r.p_min


def test_holm_against_the_definition() -> None:
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.2])
    adj = I.holm(p)
    m = 4
    order = [0, 3, 1, 4]  # ascending raw p
    expect, run = {}, 0.0
    for j, i in enumerate(order):
        run = max(run, min(1, (m - j) * p[i]))
        expect[i] = run
    assert math.isnan(adj[2])
    for i, v in expect.items():
        assert adj[i] == pytest.approx(v)
    assert adj[0] == pytest.approx(0.04) and adj[3] == pytest.approx(0.09) and adj[1] == pytest.approx(0.09)


def test_exact_spearman_small_n_closed_form() -> None:
    r = I.spearman_test([1, 2, 3, 4, 5], [2, 3, 4, 5, 9], "greater")
    assert r.statistic == pytest.approx(1.0) and r.p == pytest.approx(1 / 120)
    assert I.spearman_test([1, 2, 3, 4, 5], [2, 3, 4, 5, 9]).p == pytest.approx(2 / 120)


def test_spearman_with_ties_equals_enumeration() -> None:
    x, y = np.array([1.0, 2, 2, 3, 5, 4]), np.array([0.1, 0.3, 0.2, 0.2, 0.9, 0.5])
    r = I.spearman_test(x, y, "two-sided")
    obs = sps.spearmanr(x, y).statistic
    null = np.array([sps.spearmanr(x, y[list(p)]).statistic for p in itertools.permutations(range(6))])
    hi, lo = np.mean(null >= obs - 1e-9), np.mean(null <= obs + 1e-9)
    assert r.statistic == pytest.approx(obs) and r.p == pytest.approx(min(1, 2 * min(hi, lo)))
    assert r.ties == 2


def test_stratified_test_permutes_within_strata_only() -> None:
    x = np.array([1, 2, 3, 10, 20, 30.0])
    y = np.array([3, 1, 2, 100, 300, 200.0])
    s = np.array(["a", "a", "a", "b", "b", "b"])
    r = I.stratified_rank_test(x, y, s, "greater")
    rho = lambda a, b: sps.spearmanr(a, b).statistic  # noqa: E731
    obs = (rho(x[:3], y[:3]) + rho(x[3:], y[3:])) / 2
    null = [(rho(x[:3], y[:3][list(p)]) + rho(x[3:], y[3:][list(q)])) / 2
            for p in itertools.permutations(range(3)) for q in itertools.permutations(range(3))]
    assert r.statistic == pytest.approx(obs)
    assert r.p == pytest.approx(np.mean(np.array(null) >= obs - 1e-9)) and r.n == 2
    # pooling the raw values would see a near-perfect correlation driven by the targets' scales
    assert sps.spearmanr(x, y).statistic > 0.7 > r.statistic


def test_stratified_monte_carlo_is_close_to_exact() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=18), rng.normal(size=18)
    s = np.repeat(np.arange(3), 6)  # 720^3 permutations: Monte Carlo
    r = I.stratified_rank_test(x, y, s, "two-sided")
    assert r.method.startswith("Monte-Carlo")
    assert 0 < r.p <= 1 and r.p_min == pytest.approx(1 / (1 + I.N_PERM))


def test_bootstrap_accuracy_is_paired_and_centred() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((3, 400)) < 0.7
    b = a.copy()
    b[:, :40] = True  # b = a plus a few fixed images
    reps = I.bootstrap_accuracy({"a": a, "b": b, "probe": a[:1]}, 2000, np.random.default_rng(1))
    diff = reps["b"] - reps["a"]
    assert np.all(diff >= 0)  # paired: the same images in every replicate
    assert reps["a"].mean() == pytest.approx(a.mean(), abs=0.005)
    # the image-only standard error of a mean of 3 x 400 Bernoulli(0.7) is close to the binomial closed form
    one = I.bootstrap_accuracy({"a": a[:1]}, 4000, np.random.default_rng(2))["a"]
    assert one.std() == pytest.approx(math.sqrt(a[0].mean() * (1 - a[0].mean()) / 400), rel=0.1)
    lo, hi = I.percentile_interval(diff)
    assert 0 <= lo <= diff.mean() <= hi


def test_bootstrap_p_and_design_mde() -> None:
    assert I.bootstrap_p(np.array([1.0, 2, 3, -1])) == pytest.approx(2 / 5)
    assert I.design_mde(0.8, 1000, 3, 1, 0.05) == pytest.approx(
        (sps.norm.ppf(0.95) + sps.norm.ppf(0.8)) * math.sqrt(2 * 0.16 / 3000))
