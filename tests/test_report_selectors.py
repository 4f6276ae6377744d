"""Selector benchmark on a small synthetic results table, against a naive computation."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from vitplast.report.html import Page
from vitplast.report.selectors import (
    RANDOM,
    ScoreTarget,
    add_section,
    benchmark,
    distinct_resamples,
    markdown,
    per_target,
    score_sweep,
    sweep_scores,
    write,
)
from vitplast.selectors import DEFAULT_SELECTORS

GROUPS = ["embed", "ln1", "mha", "ln2", "fc1", "fc2"]
GAINS = {  # dataset -> gain per group
    "a": [0.01, -0.10, 0.08, -0.12, 0.05, 0.02],
    "b": [0.03, -0.05, 0.02, -0.06, 0.06, 0.01],
    "c": [-0.02, -0.20, 0.10, -0.15, 0.04, 0.07],
    "d": [0.00, 0.01, 0.03, 0.01, 0.02, 0.03],
    "e": [0.02, -0.03, 0.01, -0.02, 0.04, 0.00],
    "f": [0.05, -0.08, 0.06, -0.09, 0.03, 0.04],
}
PARAMS = [22, 2, 889, 2, 889, 886]


def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    gains = pd.DataFrame([{"model": "m", "optimizer": "adamw", "dataset": d, "group": g, "gain": v}
                          for d, vs in GAINS.items() for g, v in zip(GROUPS, vs, strict=True)]
                         + [{"model": "m", "optimizer": "adamw", "dataset": "a", "group": "full", "gain": 0.5}])
    rng = np.random.default_rng(3)
    rows = []
    for d, vs in GAINS.items():
        noisy = np.asarray(vs) + rng.normal(0, 0.03, len(vs))
        for i, g in enumerate(GROUPS):
            rows.append({"model": "m", "dataset": d, "selector": "oracle-ish", "group": g, "score": noisy[i]})
            rows.append({"model": "m", "dataset": d, "selector": "params", "group": g, "score": PARAMS[i]})
            if g != "embed":
                rows.append({"model": "m", "dataset": d, "selector": "plasticity", "group": g, "score": -vs[i]})
    return pd.DataFrame(rows), gains


def test_per_target_matches_naive() -> None:
    scores, gains = tables()
    pt = per_target(scores, gains)
    for d, vs in GAINS.items():
        gain = dict(zip(GROUPS, vs, strict=True))
        for sel in ("oracle-ish", "params", "plasticity"):
            s = scores[(scores["dataset"] == d) & (scores["selector"] == sel)]
            sc = dict(zip(s["group"], s["score"], strict=True))
            common = [g for g in GROUPS if g in sc]
            tops = [g for g in common if sc[g] == max(sc.values())]  # a tie: each picked with equal chance
            best = max(gain[g] for g in common)
            row = pt[(pt["dataset"] == d) & (pt["selector"] == sel)].iloc[0]
            assert row["top"] == "/".join(tops)
            assert row["regret"] == pytest.approx(np.mean([best - gain[t] for t in tops]))
            assert row["hit"] == pytest.approx(np.mean([gain[t] == best for t in tops]))
            rho = sps.spearmanr([sc[g] for g in common], [gain[g] for g in common]).statistic
            assert row["rho"] == pytest.approx(rho)
        # random (expected): average over all 720 rankings of the top choice = uniform over groups
        rnd = pt[(pt["dataset"] == d) & (pt["selector"] == RANDOM)].iloc[0]
        tops = [perm[0] for perm in itertools.permutations(range(6))]
        assert rnd["regret"] == pytest.approx(np.mean([max(vs) - vs[t] for t in tops]))
        assert rnd["hit"] == pytest.approx(np.mean([vs[t] == max(vs) for t in tops]))
    assert "full" not in set(pt["top"])  # only the selectable groups compete
    # params ties MHA and FC1 (889 each): on target a the expected regret averages the two, not argmax's first
    row = pt[(pt["dataset"] == "a") & (pt["selector"] == "params")].iloc[0]
    assert row["top"] == "mha/fc1" and row["regret"] == pytest.approx(0.08 - (0.08 + 0.05) / 2)
    assert row["hit"] == pytest.approx(0.5)
    assert np.allclose(pt[pt["selector"] == "plasticity"]["rho"], -1)  # scores = -gain on the 5 components


def test_summary_bootstrap_and_verdict() -> None:
    scores, gains = tables()
    b = benchmark(scores, gains, n_boot=500, seed=1)
    s = b.summary.set_index("selector")
    pt = b.per_target
    for sel in ("oracle-ish", "params", "plasticity", RANDOM):
        t = pt[pt["selector"] == sel]
        for m in ("rho", "hit", "regret"):
            assert s.loc[sel, m] == pytest.approx(t[m].mean())
            assert s.loc[sel, f"{m}_lo"] <= s.loc[sel, m] + 1e-12 <= s.loc[sel, f"{m}_hi"] + 2e-12
        # the interval lies within the range of the per-target values
        assert t["regret"].min() - 1e-12 <= s.loc[sel, "regret_lo"] and s.loc[sel, "regret_hi"] <= t["regret"].max() + 1e-12
    assert b.summary["regret"].is_monotonic_increasing
    winner = b.summary.iloc[0]["selector"]
    assert winner == "oracle-ish" and b.text.startswith("Over 6 targets, oracle-ish chose best")
    runner = b.summary.iloc[1]["selector"]
    diff = (pt[pt["selector"] == runner]["regret"].to_numpy() - pt[pt["selector"] == winner]["regret"].to_numpy()).mean()
    assert f"lost {100 * diff:.2f} points more" in b.text
    assert "Baseline params" in b.text and f"Baseline {RANDOM}" in b.text
    assert math.isclose(s.loc[RANDOM, "rho"], 0.0)


def test_three_targets_get_no_interval_and_say_why() -> None:
    scores, gains = tables()
    keep = ["a", "b", "c"]
    b = benchmark(scores[scores["dataset"].isin(keep)], gains[gains["dataset"].isin(keep)], n_boot=200)
    assert b.summary[["rho_lo", "rho_hi", "regret_lo", "regret_hi", "hit_lo", "hit_hi"]].isna().all().all()
    assert distinct_resamples(3) == 10 == len({tuple(sorted(c)) for c in itertools.product(range(3), repeat=3)})
    assert "only 10 distinct resamples" in b.text and "no interval" in b.text


def test_report_section_and_files(tmp_path: Path) -> None:
    scores, gains = tables()
    b = benchmark(scores, gains, n_boot=100)
    figs = write(b, tmp_path / "figures", tmp_path / "tables")
    assert [p.name for p, _ in figs] == ["selector_benchmark.png"]
    assert not (tmp_path / "figures" / "selector_benchmark.pdf").is_file()  # PDF only with --pdf
    assert pd.read_csv(tmp_path / "tables" / "selector_benchmark.csv")["selector"].tolist() == b.summary["selector"].tolist()
    page = Page("t")
    add_section(page, b)
    assert page.sections[0].title == "Selector benchmark" and b.text[:40] in page.sections[0].html
    assert markdown(b).startswith("\n## Selector benchmark\n")
    empty = benchmark(scores.iloc[:0], gains.iloc[:0])
    assert empty.summary.empty and "Too few" in empty.text and write(empty, tmp_path / "f2", tmp_path / "t2") == []


def test_score_sweep_feeds_the_benchmark(tmp_path: Path) -> None:
    score_sweep(tmp_path, [ScoreTarget("m", "timm:vit_micro_patch4_32", "r6", "random:6", random_weights=True)],
                images=4, source="random:6")
    comp = pd.DataFrame({"model": "m", "dataset": "r6", "component": ["ln1", "mha", "ln2", "fc1", "fc2"],
                         "plasticity": [1.0, 2.0, 3.0, 4.0, 5.0]})
    s = sweep_scores(tmp_path, comp)
    assert set(s["selector"]) == set(DEFAULT_SELECTORS)
    assert s[s["selector"] == "plasticity"]["score"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    params = s[s["selector"] == "params"].set_index("group")["score"]
    assert params["mha"] == params["fc1"] > params["embed"] > params["ln1"] == params["ln2"]


def test_scores_of_a_sweeps_targets_reach_its_report(tmp_path: Path) -> None:
    """plan_targets reads the sweep's (model, target) cells with their table labels; the scores written for
    them are the ones the report's selector benchmark uses."""
    from dataclasses import replace

    from tests.test_report_build import DATASETS, fabricate
    from vitplast.report import make_report
    from vitplast.report.selectors import plan_targets

    root = tmp_path / "sweep"
    fabricate(root, n_datasets=2)
    targets, source = plan_targets(root)
    assert source == "random:9"
    assert [(t.model, t.model_spec, t.data_spec) for t in targets] == [
        ("micro", "timm:vit_micro_patch4_32", d) for d in DATASETS[:2]]
    score_sweep(root, [replace(t, random_weights=True) for t in targets], images=4, source="random:6")
    make_report(root, figures=False)
    summary = pd.read_csv(root / "report" / "tables" / "selector_benchmark.csv").set_index("selector")
    assert set(DEFAULT_SELECTORS) <= set(summary.index)
    assert (summary.loc[list(DEFAULT_SELECTORS), "targets"] == 2).all()
