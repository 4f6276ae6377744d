"""Exact and resampling inference of the report (definitions in ``docs/statistics.md``).

* :func:`signed_rank_test`: Wilcoxon signed-rank test of paired differences ``d``. Zero differences are
  dropped (Wilcoxon's convention); tied absolute differences get mid-ranks. The statistic is
  ``W+ = sum of the ranks of the positive differences``; its null distribution is the exact distribution
  of ``W+`` under independent random signs *given these ranks* (all ``2^n`` sign patterns, counted by
  dynamic programming on doubled ranks, so ties are exact too). ``p_min`` is the smallest p-value the test
  can give with ``n`` non-zero differences (``2^-n`` one-sided).
* :func:`holm`: Holm's step-down adjustment ``p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j))`` over the
  ``m`` non-NaN p-values (NaN stays NaN and does not count in ``m``).
* :func:`spearman_test`: Spearman's rho (Pearson correlation of mid-ranks) with an exact permutation
  p-value (all ``n!`` pairings for ``n <= 8``, else :data:`N_PERM` random ones, ``p = (1 + k) / (1 + B)``).
* :func:`stratified_rank_test`: the mean over strata (targets) of the within-stratum Spearman rho, with
  a permutation p-value that permutes only within strata (exact enumeration while the product of the
  ``n_i!`` is at most :data:`MAX_EXACT`): raw values from different targets are never compared.
* :func:`bootstrap_accuracy`: paired bootstrap replicates of accuracies over test images and seeds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

ALTERNATIVES = ("greater", "less", "two-sided")
N_PERM = 20_000
MAX_EXACT = 200_000


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
    #: standard deviation of the statistic's null distribution (permutation tests)
    null_sd: float = math.nan


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


def signed_rank_test(d: Sequence[float] | np.ndarray, alternative: str = "greater") -> TestResult:
    """Exact Wilcoxon signed-rank test of ``d`` (module docstring); NaN differences are dropped."""
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
    twice = np.rint(2 * ranks).astype(int)  # mid-ranks are multiples of 1/2
    counts = np.zeros(int(twice.sum()) + 1)
    counts[0] = 1.0
    for r in twice:  # distribution of 2 W+ over all sign patterns
        shifted = np.zeros_like(counts)
        shifted[r:] = counts[:-r] if r else counts
        counts = counts + shifted
    support = np.arange(len(counts)) / 2.0
    keep = counts > 0
    p = _tail(support[keep], counts[keep], w_obs, alternative)
    p_min = 2.0**-n * (1 if alternative != "two-sided" else 2)
    return TestResult(w_obs, p, n, "exact (conditional on mid-ranks)", min(1.0, p_min), ties, zeros)


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


def _rho(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson correlation of ``rx`` (n,) with each row of ``ry`` (B, n)."""
    a = rx - rx.mean()
    b = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum() * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((b @ a) / den)


def _perms(n: int, exact: bool, rng: np.random.Generator) -> np.ndarray:
    if exact:
        return np.array(list(itertools.permutations(range(n))))
    return np.argsort(rng.random((N_PERM, n)), axis=1)


def spearman_test(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, alternative: str = "two-sided", seed: int = 0
) -> TestResult:
    """Spearman's rho with an exact (``n <= 8``) or Monte-Carlo permutation p-value (module docstring)."""
    return stratified_rank_test(x, y, np.zeros(len(np.asarray(x))), alternative, seed)


def stratified_rank_test(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    strata: Sequence[object] | np.ndarray,
    alternative: str = "two-sided",
    seed: int = 0,
) -> TestResult:
    """Mean within-stratum Spearman rho of ``x`` and ``y`` and its within-stratum permutation p-value.

    Strata with fewer than 3 points or a constant ``x`` or ``y`` are left out (they carry no rank
    information); ``n`` is the number of strata used. ``ties`` counts tied values within strata.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}")
    x, y, s = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(strata)
    rng = np.random.default_rng(seed)
    blocks = []
    ties = 0
    for k in dict.fromkeys(s.tolist()):
        m = (s == k) & ~np.isnan(x) & ~np.isnan(y)
        rx, ry = sps.rankdata(x[m]), sps.rankdata(y[m])
        if m.sum() < 3 or np.all(rx == rx[0]) or np.all(ry == ry[0]):
            continue
        ties += int(2 * m.sum() - len(np.unique(rx)) - len(np.unique(ry)))
        blocks.append((rx, ry))
    if not blocks:
        return TestResult(math.nan, math.nan, 0, "no stratum with 3 distinct ranks", ties=ties)
    obs = float(np.mean([_rho(rx, ry[None])[0] for rx, ry in blocks]))
    total = math.prod(math.factorial(len(rx)) for rx, _ in blocks)
    exact = total <= MAX_EXACT
    if exact:
        per = [_rho(rx, ry[_perms(len(rx), True, rng)]) for rx, ry in blocks]
        null = per[0]
        for r in per[1:]:  # every combination of the strata's permutations
            null = (null[:, None] + r[None, :]).ravel()
        null = null / len(blocks)
        p = _tail(null, None, obs, alternative)
        method = f"exact permutation within strata ({total:,} permutations)"
        p_min = 1.0 / total
    else:
        null = np.mean([_rho(rx, ry[_perms(len(rx), False, rng)]) for rx, ry in blocks], axis=0)
        k = np.round(_tail(null, None, obs, alternative) * len(null))
        p = float(min(1.0, (1 + k) / (1 + len(null))))
        method = f"Monte-Carlo permutation within strata ({N_PERM:,} draws)"
        p_min = 1.0 / (1 + len(null))
    return TestResult(obs, p, len(blocks), method, p_min, ties, null_sd=float(np.std(null)))


def bootstrap_accuracy(
    hits: Mapping[str, np.ndarray], n_boot: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Paired bootstrap replicates of each key's accuracy on one target.

    ``hits[k]`` is a boolean ``[seeds, images]`` array (1 = correct) over the same test images for every
    key; seeds are paired by position (a key with one row, e.g. the probe, ignores the seed draw). Each
    replicate draws ``images`` image indices and ``seeds`` seed indices with replacement, the same draw for
    every key, and returns the mean correctness over the drawn seeds and images: ``{k: [n_boot]}``.
    """
    if not hits:
        return {}
    n_img = {h.shape[1] for h in hits.values()}
    if len(n_img) != 1:
        raise ValueError("every key needs the same test images")
    n = n_img.pop()
    n_seed = max(h.shape[0] for h in hits.values())
    w_img = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float) / n  # [B, N]
    w_seed = rng.multinomial(n_seed, np.full(n_seed, 1.0 / n_seed), size=n_boot).astype(float) / n_seed  # [B, S]
    out = {}
    for k, h in hits.items():
        per_seed = w_img @ h.astype(float).T  # [B, s]
        if h.shape[0] == 1:
            out[k] = per_seed[:, 0]
        elif h.shape[0] == n_seed:
            out[k] = (per_seed * w_seed).sum(axis=1)
        else:
            raise ValueError(f"{k}: {h.shape[0]} seeds, expected 1 or {n_seed}")
    return out


def percentile_interval(reps: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaN replicates ignored)."""
    r = np.asarray(reps, dtype=float)
    r = r[~np.isnan(r)]
    if len(r) == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    return float(np.quantile(r, a)), float(np.quantile(r, 1 - a))


def bootstrap_p(reps: np.ndarray, alternative: str = "greater") -> float:
    """Bootstrap p-value of H0 "effect <= 0" (``greater``): ``(1 + #{rep <= 0}) / (1 + B)``; ``two-sided``
    doubles the smaller tail."""
    r = np.asarray(reps, dtype=float)
    r = r[~np.isnan(r)]
    if len(r) == 0:
        return math.nan
    lo = (1 + np.sum(r <= 0)) / (1 + len(r))
    hi = (1 + np.sum(r >= 0)) / (1 + len(r))
    if alternative == "greater":
        return float(lo)
    if alternative == "less":
        return float(hi)
    return float(min(1.0, 2 * min(lo, hi)))


def detectable_effect(se: float, alpha: float, power: float = 0.8) -> float:
    """Minimum detectable effect of a one-sided z-test at level ``alpha`` and the given power:
    ``(z_{1-alpha} + z_{power}) * se``."""
    return float((sps.norm.ppf(1 - alpha) + sps.norm.ppf(power)) * se)


def design_mde(acc: float, n_test: int, seeds: int, targets: int, alpha: float, power: float = 0.8) -> float:
    """Design-stage minimum detectable difference between two groups' accuracies averaged over ``targets``
    targets of ``n_test`` test images and ``seeds`` seeds each, treating the two groups' errors as
    independent (a conservative bound: paired errors on shared images only shrink it):
    ``se = sqrt(2 acc (1 - acc) / (n_test * seeds * targets))``."""
    se = math.sqrt(2 * acc * (1 - acc) / (n_test * seeds * targets))
    return detectable_effect(se, alpha, power)
