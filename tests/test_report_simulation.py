"""The report's tests on simulated studies with a known truth (docs/statistics.md, "Checks by simulation").

Studies follow :mod:`vitplast.report.design`: per-image difficulty shared by every group, a seed effect per
(group, seed), binomial noise per image. Under a true null each test must reject at its level (0.05 and the
corrected 0.05/21) within Monte-Carlo error, and the 95 % interval must cover the true difference in 93-97 % of
studies. CI runs a reduced form (fewer studies, fewer test images); VITPLAST_HEAVY=full runs the full size.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit, logit

from tests.conftest import heavy_scale
from vitplast.report import design as D
from vitplast.report import inference as I

FULL = heavy_scale() == "full"
LEVELS = (0.05, 0.05 / 21)


def within_mc(rate: float, level: float, n: int) -> bool:
    """``rate`` of ``n`` studies is within 3 binomial standard errors (plus one study) of ``level``."""
    return abs(rate - level) <= 3 * math.sqrt(level * (1 - level) / n) + 1 / n


def _studies(design: D.Design, n: int, seed: int, shift: dict[str, float] | None = None) -> list[dict[str, np.ndarray]]:
    return D.simulate(design, [*D.HIGH, *D.LOW], n, np.random.default_rng(seed), shift)


@pytest.mark.heavy
@pytest.mark.parametrize("seed_sd", [0.03, 0.0])
def test_difference_test_under_a_true_null(seed_sd: float) -> None:
    """MHA/FFN vs LN with no difference: rejection rates at 0.05 and 0.05/21, and the interval's coverage of 0."""
    n_img, sims = (500, 20_000) if FULL else (150, 6000)
    design = D.Design((n_img,) * 3, 3, 0.8, seed_sd)
    p, cover = [], []
    for k in range(sims // 2000):
        r = I.difference_test(_studies(design, 2000, k), D.HIGH, D.LOW, "two-sided")
        p.append(np.asarray(r.p))
        cover.append((np.asarray(r.ci_low) <= 0) & (np.asarray(r.ci_high) >= 0))
    pv = np.concatenate(p)
    for level in LEVELS:
        assert within_mc(float(np.mean(pv < level)), level, len(pv)), (level, np.mean(pv < level))
    assert 0.93 <= np.mean(np.concatenate(cover)) <= 0.97


@pytest.mark.heavy
def test_difference_interval_covers_a_true_difference() -> None:
    """One group better by 0.3 on the logit scale: the interval covers the true accuracy difference (computed
    from the model by a large Monte-Carlo sum) in 93-97 % of studies."""
    n_img, sims = (1000, 8000) if FULL else (150, 3000)
    design = D.Design((n_img,) * 2, 3, 0.8, 0.02)
    rng = np.random.default_rng(99)
    lp = logit(np.clip(rng.beta(0.8, 0.2, 2_000_000), 1e-9, 1 - 1e-9))
    u = design.logit_sd(n_img) * rng.standard_normal(2_000_000)
    truth = float(np.mean(expit(lp + u + 0.3) - expit(lp + u)))
    cover = []
    for k in range(sims // 1000):
        st = D.simulate(design, ["mha", "ln1"], 1000, np.random.default_rng(k), {"mha": 0.3})
        r = I.difference_test(st, ["mha"], ["ln1"], "two-sided")
        cover.append((np.asarray(r.ci_low) <= truth) & (truth <= np.asarray(r.ci_high)))
    assert 0.93 <= np.mean(np.concatenate(cover)) <= 0.97


@pytest.mark.heavy
def test_rank_and_signed_rank_tests_under_a_true_null() -> None:
    """A predictor unrelated to the (noisy) accuracies: the exact rank test rejects at its attained size, which
    is at most the level; so does the signed-rank test of the per-target MHA/FFN - LN differences."""
    sims, n_img = (4000, 1000) if FULL else (800, 400)  # fewer images: tied accuracies, slower exact nulls
    design = D.Design((n_img,) * 5, 3, 0.8, 0.03)
    rng = np.random.default_rng(5)
    groups = ("ln1", "mha", "ln2", "fc1", "fc2")
    studies = D.simulate(design, groups, sims, rng)
    acc = np.stack([np.stack([t[g].mean(axis=(1, 2)) for g in groups], axis=1) for t in studies], axis=1)  # [sims, T, 5]
    strata = np.repeat(np.arange(5), 5)
    rank_p = np.array([I.stratified_rank_test(np.argsort(rng.random((5, 5)), axis=1).ravel(), a.ravel(), strata,
                                              "greater").p for a in acc])
    diff = acc[:, :, [1, 3, 4]].mean(axis=2) - acc[:, :, [0, 2]].mean(axis=2)
    sr_p = np.array([I.signed_rank_test(d, "greater").p for d in diff])
    r = np.arange(1.0, 6)
    vals, probs = I.rank_null([(r, r)] * 5)
    _, counts = I.signed_rank_null(np.arange(1, 6))
    for level in LEVELS:
        size = float(probs[vals >= I.rank_critical(5, level) - 1e-9].sum())
        assert size <= level and within_mc(float(np.mean(rank_p <= level)), size, sims)
        sr_size = float(counts[np.cumsum(counts[::-1])[::-1] / counts.sum() <= level].sum() / counts.sum())
        assert sr_size <= level and within_mc(float(np.mean(sr_p <= level)), sr_size, sims)


def test_design_noise_model_matches_its_stated_seed_sd() -> None:
    """The simulated SD over seeds of one group's accuracy is the design's seed_sd (binomial noise included)."""
    design = D.Design((800,), 3, 0.8, 0.03)
    h = D.simulate(design, ["g"], 2000, np.random.default_rng(1))[0]["g"]
    acc = h.mean(axis=2)  # [sims, seeds]
    assert float(np.sqrt(np.mean(acc.var(axis=1, ddof=1)))) == pytest.approx(0.03, rel=0.1)
    assert float(acc.mean()) == pytest.approx(0.8, abs=0.01)


def test_mde_is_where_the_simulated_power_reaches_80_percent() -> None:
    """Shifting the simulated studies' estimates by the MDE makes the test reject in 80 % of them; the seed SD
    drives it (a noisier design needs a larger difference)."""
    design = D.Design((400,) * 3, 3, 0.8, 0.02)
    mde = D.difference_mde(design, ["mha"], ["ln1"], 0.05, sims=600, seed=3)
    r = I.difference_test(D.simulate(design, ["mha", "ln1"], 600, np.random.default_rng(3)), ["mha"], ["ln1"])
    t = (mde + np.asarray(r.effect)) / np.asarray(r.se)
    from scipy import stats as sps

    assert float(np.mean(sps.t.sf(t, np.asarray(r.df)) < 0.05)) == pytest.approx(0.8, abs=0.01)
    noisy = D.difference_mde(D.Design((400,) * 3, 3, 0.8, 0.04), ["mha"], ["ln1"], 0.05, sims=600, seed=3)
    assert noisy > 1.5 * mde


def test_design_constants_come_from_the_committed_micro_long_tables() -> None:
    """The dry-run's noise (docs/statistics.md): accuracy and RMS seed SD of micro-long's textures target."""
    from pathlib import Path

    import pandas as pd

    from vitplast.suites import mini

    acc = pd.read_csv(Path(__file__).parents[1] / "docs" / "mini-reproduction-long" / "tables" / "accuracy.csv")
    t = acc[acc["dataset"] == "textures"]
    accuracy, seed_sd = t["acc_mean"].mean(), math.sqrt((t["acc_std"] ** 2).mean())
    stated = (mini.DESIGN_ACCURACY, mini.DESIGN_SEED_SD)
    assert stated == pytest.approx((accuracy, seed_sd), abs=0.0005)
