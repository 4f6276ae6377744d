"""Exact and simulated inference of the report (definitions in ``docs/statistics.md``).

* :func:`signed_rank_test`: Wilcoxon signed-rank test of paired differences ``d``. Zero differences are
  dropped (Wilcoxon's convention); tied absolute differences get mid-ranks. The statistic is
  ``W+ = sum of the ranks of the positive differences``; its null distribution is the exact distribution
  of ``W+`` under independent random signs *given these ranks* (all ``2^n`` sign patterns, counted by
  dynamic programming on doubled ranks, so ties are exact too). ``p_min`` is the smallest p-value the test
  can give with ``n`` non-zero differences (``2^-n`` one-sided).
* :func:`holm`: Holm's step-down adjustment ``p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j))`` over the
  ``m`` non-NaN p-values (NaN stays NaN and does not count in ``m``); :func:`family` first excludes the
  tests whose smallest attainable p exceeds the family's corrected level ``alpha / m``.
* :func:`stratified_rank_test` (and :func:`spearman_test`, one stratum): the mean over strata (targets) of
  the within-stratum Spearman rho (Pearson correlation of mid-ranks). Its null permutes within strata
  only; the null distribution of each stratum's rho is enumerated over all ``n!`` pairings (``n <= 8``) and
  the strata's distributions are convolved (:func:`rank_null`), so the p-value is exact for any number of
  strata. A stratum with more than 8 points makes the whole null Monte-Carlo (:data:`N_PERM` draws).
* :func:`difference_test`: a difference of group accuracies, mean over targets, with a two-stage
  (seeds within groups, then test images) variance and a Welch-Satterthwaite t (:class:`Difference`).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

ALTERNATIVES = ("greater", "less", "two-sided")
N_PERM = 20_000
#: the largest support of a convolved null kept exact (distinct values of the mean rho)
MAX_SUPPORT = 2_000_000


@dataclass(frozen=True)
class TestResult:
    """A test's outcome: statistic, p-value, how the p-value was obtained and the smallest attainable p."""

    statistic: float
    p: float
    n: int
    method: str
    p_min: float = math.nan
    ties: int = 0
    zeros: int = 0


def _tail(null: np.ndarray, weights: np.ndarray | None, obs: float, alternative: str) -> float:
    """P(T >= obs), P(T <= obs) or the two-sided p ``min(1, 2 min(...))`` under a weighted null."""
    w = np.ones_like(null, dtype=float) if weights is None else weights.astype(float)
    w = w / w.sum()
    eps = 1e-9 * max(1.0, abs(obs))
    hi = float(w[null >= obs - eps].sum())
    lo = float(w[null <= obs + eps].sum())
    if alternative == "greater":
        return hi
    if alternative == "less":
        return lo
    return min(1.0, 2 * min(hi, lo))


def _check(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}")


def signed_rank_null(ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact null of ``W+`` given the (mid-)ranks: support and counts over all ``2^n`` sign patterns."""
    twice = np.rint(2 * np.asarray(ranks, dtype=float)).astype(int)  # mid-ranks are multiples of 1/2
    counts = np.zeros(int(twice.sum()) + 1)
    counts[0] = 1.0
    for r in twice:  # distribution of 2 W+ over all sign patterns
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[:-r] if r else counts
        counts = counts + shifted
    keep = counts > 0
    return np.arange(len(counts))[keep] / 2.0, counts[keep]


def signed_rank_test(d: Sequence[float] | np.ndarray, alternative: str = "greater") -> TestResult:
    """Exact Wilcoxon signed-rank test of ``d`` (module docstring); NaN differences are dropped."""
    _check(alternative)
    x = np.asarray(d, dtype=float)
    x = x[~np.isnan(x)]
    zeros = int(np.sum(x == 0))
    x = x[x != 0]
    n = len(x)
    if n == 0:
        return TestResult(math.nan, math.nan, 0, "exact (conditional on mid-ranks)", 1.0, 0, zeros)
    ranks = sps.rankdata(np.abs(x))
    ties = int(n - len(np.unique(ranks)))
    w_obs = float(ranks[x > 0].sum())
    support, counts = signed_rank_null(ranks)
    p = _tail(support, counts, w_obs, alternative)
    p_min = 2.0**-n * (1 if alternative != "two-sided" else 2)
    return TestResult(w_obs, p, n, "exact (conditional on mid-ranks)", min(1.0, p_min), ties, zeros)


def signed_rank_power(delta: float, sd: float, n: int, level: float, sims: int = 4000, seed: int = 0) -> float:
    """Power of the one-sided exact signed-rank test at ``level`` when the ``n`` differences are independent
    ``N(delta, sd^2)`` (simulated, ``sims`` draws; continuous differences have no ties)."""
    if n < 1 or not sd > 0:
        return math.nan
    support, counts = signed_rank_null(np.arange(1, n + 1))
    upper = np.cumsum(counts[::-1])[::-1] / counts.sum()  # P(W+ >= support[k])
    d = np.random.default_rng(seed).normal(delta, sd, (sims, n))
    ranks = np.argsort(np.argsort(np.abs(d), axis=1), axis=1) + 1
    w = (ranks * (d > 0)).sum(axis=1)
    p = upper[np.searchsorted(support, w)]
    return float(np.mean(p <= level))


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (module docstring), in the input order."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


def family(p: Sequence[float] | np.ndarray, p_min: Sequence[float] | np.ndarray,
           alpha: float) -> tuple[np.ndarray, np.ndarray, int]:
    """A family of tests decided together: ``(p_holm, excluded, m)``.

    A test whose smallest attainable p-value exceeds ``alpha / m`` cannot pass Holm's first step; it is
    excluded before testing (``excluded`` is True, ``p_holm`` NaN) and ``m`` counts the tests left, repeated
    until no further test drops out. A NaN p is no test (neither counted nor excluded). The ``p_min`` are a
    property of the design (number of targets, seeds), not of the observed p-values."""
    p, pm = np.asarray(p, dtype=float), np.asarray(p_min, dtype=float)
    tested = ~np.isnan(p)
    excluded = np.zeros(len(p), dtype=bool)
    while True:
        m = int(np.sum(tested & ~excluded))
        new = tested & ~excluded & (np.nan_to_num(pm) > alpha / max(m, 1))
        if not new.any():
            break
        excluded |= new
    adj = holm(np.where(excluded, np.nan, p))
    return adj, excluded, m


# --- rank agreement -------------------------------------------------------------------------------------------


def _rho(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``rx`` (n,) with each row of ``ry`` (..., n)."""
    a = rx - rx.mean()
    b = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum() * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((b @ a) / den)


def _merge(values: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal values (to 1e-10) merged, probabilities summed; values sorted."""
    key = np.round(values, 10)
    u, inv = np.unique(key, return_inverse=True)
    return u, np.bincount(inv.ravel(), weights=probs.ravel())


def stratum_null(rx: np.ndarray, ry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact null of Spearman's rho of one stratum: every pairing of ``ry`` with ``rx``, equally likely."""
    return _stratum_null(*_key(rx, ry))


def _key(rx: np.ndarray, ry: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A stratum's null depends only on the two multisets of ranks (every pairing is enumerated)."""
    return tuple(np.sort(np.asarray(rx, dtype=float))), tuple(np.sort(np.asarray(ry, dtype=float)))


@functools.lru_cache(maxsize=256)
def _stratum_null(rx: tuple[float, ...], ry: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(ry)
    vals = _rho(np.asarray(rx), y[np.array(list(itertools.permutations(range(len(y)))))])
    return _merge(vals, np.full(len(vals), 1.0 / len(vals)))


def rank_null(strata: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Exact null of the mean over strata of the within-stratum rho, by convolving the strata's exact nulls
    (values, probabilities). Raises ``ValueError`` when the support would exceed :data:`MAX_SUPPORT`."""
    return _rank_null(tuple(sorted(_key(rx, ry) for rx, ry in strata)))


@functools.lru_cache(maxsize=64)
def _rank_null(strata: tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]) -> tuple[np.ndarray, np.ndarray]:
    vals, probs = np.array([0.0]), np.array([1.0])
    for rx, ry in strata:
        v, p = _stratum_null(rx, ry)
        if len(vals) * len(v) > MAX_SUPPORT:
            raise ValueError("support too large for an exact convolution")
        vals, probs = _merge(vals[:, None] + v[None, :], probs[:, None] * p[None, :])
    return vals / max(len(strata), 1), probs


def spearman_test(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, alternative: str = "two-sided", seed: int = 0
) -> TestResult:
    """Spearman's rho with an exact (``n <= 8``) or Monte-Carlo permutation p-value (module docstring)."""
    return stratified_rank_test(x, y, np.zeros(len(np.asarray(x))), alternative, seed)


def _strata(x: np.ndarray, y: np.ndarray, s: np.ndarray) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Mid-ranks per stratum (strata with < 3 points or a constant side left out) and the number of ties."""
    blocks, ties = [], 0
    for k in dict.fromkeys(s.tolist()):
        m = (s == k) & ~np.isnan(x) & ~np.isnan(y)
        rx, ry = sps.rankdata(x[m]), sps.rankdata(y[m])
        if m.sum() < 3 or np.all(rx == rx[0]) or np.all(ry == ry[0]):
            continue
        ties += int(2 * m.sum() - len(np.unique(rx)) - len(np.unique(ry)))
        blocks.append((rx, ry))
    return blocks, ties


def stratified_rank_test(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    strata: Sequence[object] | np.ndarray,
    alternative: str = "two-sided",
    seed: int = 0,
) -> TestResult:
    """Mean within-stratum Spearman rho of ``x`` and ``y`` and its within-stratum permutation p-value.

    Strata with fewer than 3 points or a constant ``x`` or ``y`` are left out (they carry no rank
    information); ``n`` is the number of strata used. ``ties`` counts tied values within strata. ``p_min`` is
    the probability of the null's extreme value (``prod 1/n_i!`` without ties).
    """
    _check(alternative)
    x, y, s = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(strata)
    blocks, ties = _strata(x, y, s)
    if not blocks:
        return TestResult(math.nan, math.nan, 0, "no stratum with 3 distinct ranks", ties=ties)
    obs = float(np.mean([_rho(rx, ry[None])[0] for rx, ry in blocks]))
    try:
        if max(len(rx) for rx, _ in blocks) > 8:
            raise ValueError("a stratum too large to enumerate")
        null, w = rank_null(blocks)
    except ValueError:
        rng = np.random.default_rng(seed)
        draws = np.mean([_rho(rx, ry[np.argsort(rng.random((N_PERM, len(rx))), axis=1)]) for rx, ry in blocks],
                        axis=0)
        k = np.round(_tail(draws, None, obs, alternative) * len(draws))
        p = float(min(1.0, (1 + k) / (1 + len(draws))))
        return TestResult(obs, p, len(blocks), f"Monte-Carlo permutation within strata ({N_PERM:,} draws)",
                          1.0 / (1 + N_PERM), ties)
    p = _tail(null, w, obs, alternative)
    p_min = float(min(w[-1], w[0]) * (2 if alternative == "two-sided" else 1))
    total = math.prod(math.factorial(len(rx)) for rx, _ in blocks)
    return TestResult(obs, p, len(blocks), f"exact permutation within strata (convolution of {len(blocks)} "
                      f"strata, {total:,} permutations)", min(1.0, p_min), ties)


def rank_critical(n_strata: int, level: float, n: int = 5) -> float:
    """The smallest mean within-stratum rho that the one-sided exact test rejects at ``level`` (``n_strata``
    strata of ``n`` untied points); NaN when even perfect agreement cannot reach it."""
    r = np.arange(1.0, n + 1)
    vals, probs = rank_null([(r, r)] * n_strata)
    upper = np.cumsum(probs[::-1])[::-1]  # P(T >= vals[k])
    ok = np.flatnonzero(upper <= level * (1 + 1e-9))
    return float(vals[ok[0]]) if len(ok) else math.nan


def expected_spearman(r: float | np.ndarray, n: int = 5) -> np.ndarray:
    """E[Spearman rho] of ``n`` bivariate-normal points with correlation ``r`` (Moran's closed form):
    ``6 / (pi (n + 1)) (arcsin r + (n - 2) arcsin(r / 2))``."""
    r = np.asarray(r, dtype=float)
    return np.asarray(6 / (math.pi * (n + 1)) * (np.arcsin(r) + (n - 2) * np.arcsin(r / 2)))


def _latent(effect: float, n: int) -> float:
    """The bivariate-normal correlation whose expected Spearman rho over ``n`` points is ``effect``."""
    lo, hi = -1.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if float(expected_spearman(mid, n)) < effect else (lo, mid)
    return (lo + hi) / 2


def rank_power(effect: float, n_strata: int, level: float, n: int = 5, sims: int = 4000, seed: int = 0) -> float:
    """Power of the one-sided exact test of the mean within-stratum rho at ``level``, simulated: in each of
    ``n_strata`` strata the predictor and the measured accuracies of ``n`` components are bivariate normal with
    the correlation whose expected Spearman rho is ``effect`` (measurement noise of the accuracies and
    target-to-target variation are both inside that correlation)."""
    crit = rank_critical(n_strata, level, n)
    if n_strata < 1 or math.isnan(crit):
        return 0.0
    r = _latent(effect, n)
    z = np.random.default_rng(seed).standard_normal((2, sims, n_strata, n))
    y = r * z[0] + math.sqrt(max(0.0, 1 - r * r)) * z[1]
    rank = lambda a: np.argsort(np.argsort(a, axis=-1), axis=-1).astype(float)  # noqa: E731
    rx, ry = rank(z[0]), rank(y)
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean(axis=-1, keepdims=True)
    rho = (rx * ry).sum(axis=-1) / (n * (n * n - 1) / 12)
    return float(np.mean(rho.mean(axis=-1) >= crit - 1e-9))


def rank_mde(n_strata: int, level: float, power: float = 0.8, n: int = 5, sims: int = 4000) -> float:
    """The smallest expected mean rho that :func:`rank_power` detects with ``power`` (bisection; NaN when
    even rho -> 1 is not enough)."""
    if rank_power(0.999, n_strata, level, n, sims) < power:
        return math.nan
    lo, hi = 0.0, 0.999
    for _ in range(14):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rank_power(mid, n_strata, level, n, sims) < power else (lo, mid)
    return hi


# --- group differences: seeds within groups, then test images ---------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """A difference of accuracies (mean over targets) with its two-stage standard error ``se``, the
    Welch-Satterthwaite degrees of freedom ``df``, the t interval at ``level`` and the p-value."""

    effect: float
    se: float
    df: float
    ci_low: float
    ci_high: float
    p: float
    n_targets: int


def _target_terms(hits: Mapping[str, np.ndarray], weights: Mapping[str, float],
                  clusters: np.ndarray | None) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """One target's weighted accuracy difference and its variance components ``(v, c)``: the estimate ``v`` and
    ``c``, an estimate of half its sampling variance (Satterthwaite's ``sigma^4 / df``).

    ``hits[g]``: bool ``[..., seeds, images]`` (leading axes: independent studies); ``N`` images in ``K``
    clusters (source images; each image its own cluster by default). For a group with ``S > 1`` seeds,
    ``w^2 s^2 / S`` (``s``: sample SD over seeds of the seed accuracies) with ``S - 1`` df: the seed effect plus
    the seed-by-image noise. The image term: ``K / (K - 1) sum_k T_k^2 / N^2`` with ``T_k`` the cluster sums of
    the centred, seed-averaged, weighted per-image difference, less the seed-by-image noise the seed term
    already counts, ``sum_g w^2 K / ((S - 1)(K - 1)) sum_{s,k} R_sk^2 / (S N^2)`` (``R_sk``: cluster sums of
    the two-way residuals ``h - row mean - column mean + grand mean``). The image term is an unbiased difference
    and may be negative (only the total variance is floored at 0); as a sum of ``K`` per-cluster parts ``q_k``,
    its ``c`` is ``K / (K - 1) sum_k (q_k - mean q)^2 / 2``, which holds for the skewed per-image data too. A
    seed term's ``c`` is ``v^2 / (S + 1)`` (``v^2 / (df + 2)``, unbiased for ``sigma^4 / df``).
    """
    n_img = next(iter(hits.values())).shape[-1]
    if clusters is None:
        k = n_img
        agg = lambda x: x  # noqa: E731
    else:
        ids, inv = np.unique(np.asarray(clusters), return_inverse=True)
        k = len(ids)
        onehot = np.zeros((n_img, k))
        onehot[np.arange(n_img), inv] = 1.0
        agg = lambda x: x @ onehot  # noqa: E731
    effect: np.ndarray = np.zeros(())
    delta: np.ndarray = np.zeros(())
    overlap: np.ndarray = np.zeros(())
    terms: list[tuple[np.ndarray, np.ndarray]] = []
    for g, w in weights.items():
        h = np.asarray(hits[g], dtype=float)
        s = h.shape[-2]
        rows, cols = h.mean(axis=-1), h.mean(axis=-2)
        effect = effect + w * rows.mean(axis=-1)
        delta = delta + w * cols
        if s > 1:
            v = w * w * rows.var(axis=-1, ddof=1) / s
            terms.append((v, v * v / (s + 1)))  # v^2 / (df + 2): unbiased for sigma^4 / df
            resid = agg(h - rows[..., :, None] - cols[..., None, :] + rows.mean(axis=-1)[..., None, None])
            overlap = overlap + w * w * k / ((s - 1) * max(k - 1, 1)) * (resid * resid).sum(axis=-2) / (s * n_img**2)
    tot = agg(delta - delta.mean(axis=-1, keepdims=True))
    q = k / max(k - 1, 1) * tot * tot / n_img**2 - overlap  # per-cluster parts of the image term
    spread = q - q.mean(axis=-1, keepdims=True)
    terms.append((q.sum(axis=-1), k / max(k - 1, 1) * (spread * spread).sum(axis=-1) / 2))
    return effect, terms


def difference_test(
    targets: Sequence[Mapping[str, np.ndarray]], a: Sequence[str], b: Sequence[str], alternative: str = "greater",
    clusters: Sequence[np.ndarray | None] | None = None, level: float = 0.95,
) -> Difference:
    """Mean over targets of ``mean_{g in a} acc_g - mean_{g in b} acc_g`` with a seed-level t test.

    ``targets[d][g]``: bool ``[seeds, images]`` per group on target ``d`` (a group with one row, e.g. the
    probe, has no seed term). The per-target variances (:func:`_target_terms`) are added over targets and
    divided by ``D^2``; ``df`` is Welch-Satterthwaite's ``(sum v)^2 / sum c`` with ``(sum v)^2`` estimated
    without bias (``var^2 - 2 sum c``), kept between the smallest seed df and the sum of all; the interval is
    ``effect -+ t_{df, (1 + level) / 2} se`` and the p-value that of ``t = effect / se`` (``greater``:
    ``P(T >= t)``, two-sided: twice the smaller tail). Leading axes of the hit arrays are independent studies
    (the design simulation) and give arrays of the same shape in every field but ``n_targets``.
    """
    _check(alternative)
    weights = {**{g: 1 / len(a) for g in a}}
    for g in b:
        weights[g] = weights.get(g, 0.0) - 1 / len(b)
    n = len(targets)
    effects, terms = [], []
    for i, t in enumerate(targets):
        e, tm = _target_terms(t, weights, None if clusters is None else clusters[i])
        effects.append(e)
        terms += tm
    seeds = [t[g].shape[-2] - 1 for t in targets for g in weights if t[g].shape[-2] > 1]
    lo_df, hi_df = min(seeds, default=1), sum(seeds) + sum(next(iter(t.values())).shape[-1] - 1 for t in targets)
    effect = np.mean(effects, axis=0)
    var = np.maximum(sum(v for v, _ in terms) / n**2, 0.0)
    num = sum(c for _, c in terms) / n**4
    with np.errstate(invalid="ignore", divide="ignore"):
        # Welch-Satterthwaite with (sum v)^2 estimated without bias: E[var^2] = (sum sigma)^2 + 2 num
        df = np.clip(np.where(num > 0, (var**2 - 2 * num) / np.where(num > 0, num, 1.0), hi_df), lo_df, hi_df)
        se = np.sqrt(var)
        t = np.where(se > 0, effect / np.where(se > 0, se, 1.0), np.sign(effect) * np.where(effect == 0, 0.0, np.inf))
    q = sps.t.ppf((1 + level) / 2, df)
    hi, lo = sps.t.sf(t, df), sps.t.cdf(t, df)
    p = {"greater": hi, "less": lo, "two-sided": np.minimum(1.0, 2 * np.minimum(hi, lo))}[alternative]
    return Difference(_out(effect), _out(se), _out(df), _out(effect - q * se), _out(effect + q * se), _out(p), n)


def _out(v: Any) -> Any:
    """A float for one study, an array for a batch of simulated studies."""
    return float(v) if np.ndim(v) == 0 else np.asarray(v)


def t_power(delta: float, se: float, df: float, level: float, two_sided: bool = False) -> float:
    """Power of the t test of :func:`difference_test` for a true difference ``delta`` when its standard error
    is ``se`` with ``df`` degrees of freedom: ``P(T'_{df, delta/se} > t_{df, 1 - level})`` (noncentral t;
    ``level / 2`` when two-sided, the far tail ignored)."""
    if not (se > 0 and df > 0):
        return math.nan
    crit = sps.t.ppf(1 - (level / 2 if two_sided else level), df)
    return float(sps.nct.sf(crit, df, delta / se))
