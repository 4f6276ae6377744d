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


def test_convolved_null_equals_brute_force_over_every_permutation_pair() -> None:
    """The exact null of the mean rho (per-stratum enumeration, then convolution) is the distribution over all
    pairs of within-stratum permutations; ties included."""
    a = (np.array([1.0, 2, 3, 4]), sps.rankdata([0.2, 0.5, 0.5, 0.9]))
    b = (np.arange(1.0, 6), np.arange(1.0, 6))
    vals, probs = I.rank_null([a, b])
    brute = np.array([(I._rho(a[0], a[1][list(p)][None])[0] + I._rho(b[0], b[1][list(q)][None])[0]) / 2
                      for p in itertools.permutations(range(4)) for q in itertools.permutations(range(5))])
    for v, pr in zip(vals, probs, strict=True):
        assert pr == pytest.approx(np.mean(np.abs(brute - v) < 1e-9))
    assert probs.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(("targets", "critical"), [(3, 0.80), (5, 0.62), (9, 7 / 15)])
def test_smallest_significant_mean_rho_at_the_full_family_level(targets: int, critical: float) -> None:
    """5 components per target, level 0.05/21: the critical mean rho is 0.80 (3 targets), 0.62 (5), 0.47 (9)."""
    assert I.rank_critical(targets, 0.05 / 21) == pytest.approx(critical)
    r = np.arange(1.0, 6)
    vals, probs = I.rank_null([(r, r)] * targets)
    upper = lambda c: probs[vals >= c - 1e-9].sum()  # noqa: E731
    step = 1 / (10 * targets)  # rho of 5 untied points moves in steps of 0.1
    assert upper(critical) <= 0.05 / 21 < upper(critical - step)


def test_perfect_agreement_on_three_targets_is_exact() -> None:
    r = I.stratified_rank_test(np.tile(np.arange(5.0), 3), np.tile(np.arange(5.0), 3), np.repeat([0, 1, 2], 5),
                               "greater")
    assert r.statistic == pytest.approx(1.0) and r.p == pytest.approx(120.0**-3) == r.p_min
    assert r.p == pytest.approx(5.787e-7, rel=1e-3) and r.method.startswith("exact")


def test_many_strata_of_six_are_exact_and_match_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=18), rng.normal(size=18)
    s = np.repeat(np.arange(3), 6)  # 720^3 permutations: exact by convolution
    r = I.stratified_rank_test(x, y, s, "two-sided")
    assert r.method.startswith("exact")
    blocks = [(sps.rankdata(x[s == k]), sps.rankdata(y[s == k])) for k in range(3)]
    draws = np.mean([I._rho(rx, ry[np.argsort(rng.random((40_000, 6)), axis=1)]) for rx, ry in blocks], axis=0)
    hi, lo = np.mean(draws >= r.statistic - 1e-9), np.mean(draws <= r.statistic + 1e-9)
    assert r.p == pytest.approx(min(1, 2 * min(hi, lo)), abs=0.01)


def test_a_stratum_too_large_to_enumerate_falls_back_to_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    r = I.stratified_rank_test(rng.normal(size=9), rng.normal(size=9), np.zeros(9), "two-sided")
    assert r.method.startswith("Monte-Carlo") and r.p_min == pytest.approx(1 / (1 + I.N_PERM))


def test_expected_spearman_closed_form_matches_simulation() -> None:
    z = np.random.default_rng(3).standard_normal((2, 100_000, 5))
    y = 0.7 * z[0] + math.sqrt(1 - 0.49) * z[1]
    rho = I._rho(np.arange(5.0), sps.rankdata(y[np.arange(len(y))[:, None], np.argsort(z[0], axis=1)], axis=1))
    assert float(I.expected_spearman(0.7)) == pytest.approx(rho.mean(), abs=0.005)
    assert sps.spearmanr(z[0][0], y[0]).statistic == pytest.approx(rho[0])


def test_family_excludes_tests_that_cannot_pass_before_adjusting() -> None:
    p = np.array([0.001, 0.125, 0.02, np.nan, 0.3])
    p_min = np.array([0.0, 0.125, 1e-6, 0.0, 0.02])
    adj, excluded, m = I.family(p, p_min, 0.05)
    # 0.125 > 0.05/4 goes first; then 0.02 > 0.05/3 goes too; two tests remain
    assert excluded.tolist() == [False, True, False, False, True] and m == 2
    assert adj[0] == pytest.approx(0.002) and adj[2] == pytest.approx(0.02)
    assert np.isnan(adj[[1, 3, 4]]).all()


def _naive_difference(targets: list[dict[str, np.ndarray]], a: list[str], b: list[str]) -> tuple[float, float, float]:
    """The two-stage variance of docs/statistics.md written with loops: (effect, se, df)."""
    w = {g: 1 / len(a) for g in a} | {g: -1 / len(b) for g in b}
    effects, comps, dfs = [], [], []  # comps: (variance, half the variance of its estimate)
    for t in targets:
        n = next(iter(t.values())).shape[1]
        effects.append(sum(w[g] * t[g].mean() for g in w))
        delta = [sum(w[g] * t[g][:, i].mean() for g in w) for i in range(n)]
        overlap = np.zeros(n)
        for g in w:
            h = t[g].astype(float)
            s = h.shape[0]
            acc = [h[k].mean() for k in range(s)]
            v = w[g] ** 2 * np.var(acc, ddof=1) / s
            comps.append((v, v * v / (s + 1)))
            dfs.append(s - 1)
            for i in range(n):
                res = sum((h[k, i] - acc[k] - h[:, i].mean() + h.mean()) ** 2 for k in range(s))
                overlap[i] += w[g] ** 2 * n / ((s - 1) * (n - 1)) * res / (s * n * n)
        q = np.array([n / (n - 1) * (delta[i] - np.mean(delta)) ** 2 / n**2 for i in range(n)]) - overlap
        comps.append((q.sum(), n / (n - 1) * np.sum((q - q.mean()) ** 2) / 2))
    d = len(targets)
    v = sum(c for c, _ in comps) / d**2
    num = sum(c for _, c in comps) / d**4
    hi = sum(dfs) + sum(next(iter(t.values())).shape[1] - 1 for t in targets)
    df = min(max((v * v - 2 * num) / num, min(dfs)), hi)
    return float(np.mean(effects)), math.sqrt(v), df


def test_difference_test_equals_its_definition_written_with_loops() -> None:
    rng = np.random.default_rng(5)
    targets = [{"x": rng.random((3, 40)) < 0.7, "y": rng.random((3, 40)) < 0.6, "z": rng.random((2, 40)) < 0.5}
               for _ in range(2)]
    effect, se, df = _naive_difference(targets, ["x", "y"], ["z"])
    r = I.difference_test(targets, ["x", "y"], ["z"], "two-sided")
    assert (r.effect, r.se, r.df) == pytest.approx((effect, se, df))
    t = effect / se
    assert r.p == pytest.approx(2 * sps.t.sf(abs(t), df))
    assert r.ci_high - r.effect == pytest.approx(sps.t.ppf(0.975, df) * se)
    assert I.difference_test(targets, ["x", "y"], ["z"], "greater").p == pytest.approx(sps.t.sf(t, df))


def test_a_one_row_group_has_no_seed_term() -> None:
    """The probe (one record) contributes image variance only."""
    rng = np.random.default_rng(6)
    probe = rng.random((1, 200)) < 0.6
    same = np.repeat(probe, 3, axis=0)  # three seeds that agree with the probe on every image
    r = I.difference_test([{"g": same, "probe": probe}], ["g"], ["probe"], "two-sided")
    assert r.effect == 0 and r.se == 0 and r.p == 1.0


def test_clusters_count_crops_of_one_source_image_once() -> None:
    """Each source image seen as two identical crops: the cluster variance equals the variance of the source
    images alone, where treating the crops as independent images understates it."""
    rng = np.random.default_rng(7)
    # the groups get different images right (an image-level difference the test images must carry)
    src = {g: rng.random((3, 300)) < rng.beta(0.3, 0.3, 300) for g in ("a", "b")}
    crops = {g: np.repeat(h, 2, axis=1) for g, h in src.items()}
    ids = np.repeat(np.arange(300), 2)
    single = I.difference_test([src], ["a"], ["b"], "two-sided")
    clustered = I.difference_test([crops], ["a"], ["b"], "two-sided", clusters=[ids])
    naive = I.difference_test([crops], ["a"], ["b"], "two-sided")
    assert clustered.effect == pytest.approx(single.effect)
    assert clustered.se == pytest.approx(single.se, rel=0.02)
    assert naive.se < 0.85 * clustered.se
    unit = I.difference_test([src], ["a"], ["b"], "two-sided", clusters=[np.arange(300)])
    assert unit.se == pytest.approx(single.se)  # one image per cluster: the plain variance


def test_t_power_is_the_noncentral_t_tail_and_grows_with_the_effect() -> None:
    assert I.t_power(0.02, 0.01, 10, 0.05) == pytest.approx(sps.nct.sf(sps.t.ppf(0.95, 10), 10, 2.0))
    assert I.t_power(0.0, 0.01, 10, 0.05, two_sided=True) == pytest.approx(0.025)
    assert I.t_power(0.01, 0.01, 10, 0.01) < I.t_power(0.03, 0.01, 10, 0.01)


def test_signed_rank_power_equals_a_direct_simulation() -> None:
    rng = np.random.default_rng(11)
    d = rng.normal(0.5, 1.0, (400, 7))
    direct = np.mean([I.signed_rank_test(x, "greater").p <= 0.05 for x in d])
    assert I.signed_rank_power(0.5, 1.0, 7, 0.05, sims=20_000) == pytest.approx(direct, abs=0.06)
    assert I.signed_rank_power(10.0, 1.0, 3, 0.05) == 0.0  # p_min = 1/8 > 0.05
