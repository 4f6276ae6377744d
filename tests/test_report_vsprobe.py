"""Every (target, group) against the linear probe: the vs-probe table against a naive computation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from vitplast.report import claims as C
from vitplast.report import evidence as E
from vitplast.report import inference as I
from vitplast.report.vsprobe import FAMILY, START, summary, vs_probe, vs_start
from vitplast.train.scoring import HITS_FILE, save_hits


def synthetic() -> tuple[pd.DataFrame, list[E.Evidence]]:
    """t0 (400 images): MHA right on the probe's images and 60 more, the same in every seed; LN1 as good as the
    probe on other images. t1 (300 images): MHA's 3 seeds differ; LN1 diverged (no accuracy, no record).
    t2: no probe, no row."""
    rng = np.random.default_rng(3)
    probe0 = rng.random(400) < 0.5
    mha0 = np.tile(probe0 | (rng.random(400) < 0.3), (3, 1))
    ln0 = rng.random((3, 400)) < 0.5
    probe1 = rng.random(300) < 0.6
    mha1 = np.stack([probe1 | (rng.random(300) < x) for x in (0.05, 0.15, 0.25)])
    hits = {"t0": {"mha": mha0, "ln1": ln0, E.PROBE: probe0[None]}, "t1": {"mha": mha1, E.PROBE: probe1[None]}}
    acc = {d: {g: float(h.mean()) for g, h in hs.items()} for d, hs in hits.items()}
    acc["t1"]["ln1"] = math.nan
    acc["t2"] = {"mha": 0.9}
    ev = E.Evidence("m", "adamw", acc, hits)
    best = pd.DataFrame([{"model": "m", "optimizer": "adamw", "dataset": d, "group": g, "best_lr": 1e-3,
                          "n_seeds": 3, "acc_mean": a} for d, accs in acc.items() for g, a in accs.items()
                         if g != E.PROBE])
    return best, [ev]


def naive_holm(p: list[float]) -> list[float]:
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, run = [0.0] * len(p), 0.0
    for j, i in enumerate(order):
        run = max(run, min(1.0, (len(p) - j) * p[i]))
        out[i] = run
    return out


def test_vs_probe_against_a_naive_computation() -> None:
    best, evidence = synthetic()
    table = vs_probe(best, evidence).set_index(["dataset", "group"])
    assert list(table.index) == [("t0", "ln1"), ("t0", "mha"), ("t1", "ln1"), ("t1", "mha")]  # t2: no probe
    ev = evidence[0]
    for (d, g), r in table.iterrows():
        assert r["probe_acc"] == ev.acc[d][E.PROBE]
        if g not in ev.hits[d]:
            assert math.isnan(r["p"]) and r["status"] == C.INCONCLUSIVE and "no target" in r["evidence"]
            continue
        h, probe = ev.hits[d][g], ev.hits[d][E.PROBE][0]
        assert r["effect"] == pytest.approx(h.mean() - probe.mean()) == pytest.approx(r["acc_mean"] - r["probe_acc"])
        ref = I.difference_test([ev.hits[d]], [g], [E.PROBE], "two-sided")
        assert (r["se"], r["df"], r["ci_low"], r["ci_high"], r["p"]) == pytest.approx(
            (ref.se, ref.df, ref.ci_low, ref.ci_high, ref.p))
    # identical seeds: no seed variance, and the test is the paired t of the per-image differences
    mha = table.loc[("t0", "mha")]
    delta = evidence[0].hits["t0"]["mha"][0].astype(float) - evidence[0].hits["t0"][E.PROBE][0]
    se = float(np.std(delta, ddof=1) / np.sqrt(len(delta)))
    assert mha["se"] == pytest.approx(se)
    q = sps.t.ppf(0.975, mha["df"])
    assert (mha["ci_low"], mha["ci_high"]) == pytest.approx((mha["effect"] - q * se, mha["effect"] + q * se))
    assert mha["p"] == pytest.approx(2 * sps.t.sf(abs(mha["effect"]) / se, mha["df"]))
    # Holm over the tested cells of the family only; power at its corrected level; the claims' verdict rule
    tested = table[table["p"].notna()]
    assert list(tested["p_holm"]) == pytest.approx(naive_holm(list(tested["p"])))
    for _, r in tested.iterrows():
        assert r["power"] == pytest.approx(I.t_power(C.MIN_DIFFERENCE, r["se"], r["df"], 0.05 / len(tested), True))
        beats = r["p_holm"] < 0.05 and r["effect"] > 0
        assert (r["status"] == C.SUPPORTED) == beats
    assert table.loc[("t0", "mha"), "status"] == C.SUPPORTED and table.loc[("t0", "ln1"), "status"] != C.SUPPORTED


def test_the_summary_names_the_cells_that_do_not_beat_the_probe() -> None:
    table = vs_probe(*synthetic())
    k = int((table["status"] == C.SUPPORTED).sum())
    text = summary(table)
    assert text.startswith(f"{k} of 4 (target, group) cells beat the linear probe significantly")
    assert f"{FAMILY} family of 3 tests" in text
    assert "these do not: t0 LN1 (" in text and "t1 LN1 (no result)" in text and "t0 MHA" not in text
    assert summary(table.iloc[:0]).startswith("No finetuned")


def test_vs_start_is_the_same_test_against_the_start_in_a_family_of_its_own() -> None:
    best, evidence = synthetic()
    before = vs_probe(best, evidence)
    ev = evidence[0]
    rng = np.random.default_rng(7)
    # t0: one start (pretrained weights); t1: one start per seed (random weights), a group with a seed term
    ev.hits["t0"][E.START] = (rng.random(400) < 0.55)[None]
    ev.hits["t1"][E.START] = rng.random((3, 300)) < 0.6
    for d in ("t0", "t1"):
        ev.acc[d][E.START] = float(ev.hits[d][E.START].mean())
    table = vs_start(best, evidence).set_index(["dataset", "group"])
    assert list(vs_start(best, evidence).columns) == START.columns and "start_acc" in START.columns
    for (d, g), r in table.iterrows():
        assert r["start_acc"] == ev.acc[d][E.START]
        if g not in ev.hits[d]:
            assert math.isnan(r["p"])
            continue
        ref = I.difference_test([ev.hits[d]], [g], [E.START], "two-sided")
        assert (r["effect"], r["se"], r["df"], r["p"]) == pytest.approx((ref.effect, ref.se, ref.df, ref.p))
        assert "one seed" not in r["evidence"]  # the start is a reference, not a group short of seeds
    tested = table[table["p"].notna()]
    assert list(tested["p_holm"]) == pytest.approx(naive_holm(list(tested["p"])))
    assert table["evidence"].str.len().gt(0).all()
    pd.testing.assert_frame_equal(vs_probe(best, evidence), before)  # the probe's family is untouched
    text = summary(vs_start(best, evidence), START)
    assert "beat the LP-FT start significantly" in text and "vs-start family of 3 tests" in text
    assert summary(table.iloc[:0], START) == "No finetuned (target, group) cell has an LP-FT start to compare with."


def test_collect_evidence_stacks_one_record_per_seed_of_a_reference(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    recs = {name: rng.random(50) < 0.5 for name in ("run", "s0", "s1", "probe")}
    for name, h in recs.items():
        (tmp_path / name).mkdir()
        save_hits(tmp_path / name / HITS_FILE, h)
    (tmp_path / "runs").mkdir()
    (tmp_path / "run").rename(tmp_path / "runs" / "r0")
    runs = pd.DataFrame([{"model": "m", "optimizer": "adamw", "dataset": "t", "group": "mha", "lr": 0.1, "seed": 0,
                          "acc": 0.5, "id": "r0"}])
    best = pd.DataFrame([{"model": "m", "optimizer": "adamw", "dataset": "t", "group": "mha", "best_lr": 0.1,
                          "acc_mean": 0.5}])
    refs = {E.PROBE: E.Reference({("m", "t"): 0.4}, {("m", "t"): [tmp_path / "probe"]}),
            E.START: E.Reference({("m", "t"): 0.45}, {("m", "t"): [tmp_path / "s0", tmp_path / "s1"]})}
    (ev,) = E.collect_evidence(tmp_path, runs, best, refs)
    assert ev.acc["t"] == {"mha": 0.5, E.PROBE: 0.4, E.START: 0.45}
    assert np.array_equal(ev.hits["t"][E.START], np.stack([recs["s0"], recs["s1"]]))
    assert np.array_equal(ev.hits["t"][E.PROBE], recs["probe"][None])
    assert np.array_equal(ev.hits["t"]["mha"], recs["run"][None])
    (tmp_path / "s1" / HITS_FILE).unlink()  # one seed's record missing: the reference has no records
    (ev,) = E.collect_evidence(tmp_path, runs, best, refs)
    assert E.START not in ev.hits["t"] and E.PROBE in ev.hits["t"]
