"""Report statistics against a hand-made results table with known answers (and scipy's own tests)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from vitplast.report import claims as C
from vitplast.report import stats as S

DATASETS = ["d1", "d2", "d3", "d4", "d5"]
GROUPS = ["full", "mha", "ln1", "ln2", "fc1", "fc2"]
LRS = [0.01, 0.1]
# Per (group, lr): seed accuracies on dataset d1; dataset k adds offset[k] to every value, and MHA gets an
# extra bonus[k] (distinct values) so that MHA beats every other group on every dataset.
BASE = {
    ("full", 0.01): [0.70, 0.72, 0.74], ("full", 0.1): [0.60, 0.62, 0.64],
    ("mha", 0.01): [0.80, 0.82, 0.84], ("mha", 0.1): [0.70, 0.75, 0.80],
    ("ln1", 0.01): [0.50, 0.50, 0.50], ("ln1", 0.1): [0.55, 0.56, 0.57],
    ("ln2", 0.01): [0.52, 0.54, 0.56], ("ln2", 0.1): [0.52, 0.54, 0.56],  # a tie: the smaller lr wins
    ("fc1", 0.01): [0.66, 0.68, 0.70], ("fc1", 0.1): [0.65, math.nan, 0.99],  # a diverged seed at lr 0.1
    ("fc2", 0.01): [0.61, 0.63, 0.65], ("fc2", 0.1): [0.58, 0.59, 0.60],
}
OFFSET = [0.0, -0.05, 0.03, -0.10, 0.01]
BONUS = [0.001, 0.004, 0.002, 0.005, 0.003]
PROBE = [0.50, 0.40, 0.45, 0.30, 0.60]


def results_table() -> pd.DataFrame:
    """What results.csv holds (only the columns the statistics use), plus a failed and a pending row."""
    rows = []
    for k, ds in enumerate(DATASETS):
        for (g, lr), accs in BASE.items():
            for seed, a in zip((0, 1, 2), accs, strict=True):
                acc = a + OFFSET[k] + (BONUS[k] if g == "mha" else 0.0)
                rows.append({"status": "done", "model_label": "m", "model": "spec", "optimizer": "sgd",
                             "dataset": ds, "group": g, "lr": lr, "seed": seed, "test_acc": acc})
    rows.append({"status": "failed", "model_label": "m", "model": "spec", "optimizer": "sgd", "dataset": "d1",
                 "group": "mha", "lr": 1.0, "seed": 0, "test_acc": math.nan})
    rows.append({"status": "pending", "model_label": "m", "model": "spec", "optimizer": "sgd", "dataset": "d1",
                 "group": "mha", "lr": 1.0, "seed": 1, "test_acc": math.nan})
    return pd.DataFrame(rows)


def probes_table() -> pd.DataFrame:
    return pd.DataFrame({"status": "done", "model_label": "m", "dataset": DATASETS, "test_acc": PROBE})


@pytest.fixture
def best() -> pd.DataFrame:
    return S.best_lr(S.runs_frame(results_table()))


def test_only_finished_runs_count() -> None:
    runs = S.runs_frame(results_table())
    assert len(runs) == len(DATASETS) * len(BASE) * 3
    assert set(runs["lr"]) == set(LRS)


def test_best_lr_mean_std_and_sensitivity(best: pd.DataFrame) -> None:
    b = best[best["dataset"] == "d1"].set_index("group")
    assert b.loc["mha", "best_lr"] == 0.01
    assert b.loc["mha", "acc_mean"] == pytest.approx(0.821)  # 0.82 + bonus 0.001
    assert b.loc["mha", "acc_std"] == pytest.approx(0.02)  # sample std of (.80, .82, .84)
    assert b.loc["mha", "lr_sensitivity"] == pytest.approx(0.82 - 0.75)
    assert b.loc["ln1", "best_lr"] == 0.1 and b.loc["ln1", "acc_mean"] == pytest.approx(0.56)
    assert b.loc["ln2", "best_lr"] == 0.01 and b.loc["ln2", "lr_sensitivity"] == pytest.approx(0.0)
    # the diverged seed makes lr 0.1 ineligible even though its other seeds average 0.82
    assert b.loc["fc1", "best_lr"] == 0.01 and b.loc["fc1", "acc_mean"] == pytest.approx(0.68)
    assert math.isnan(b.loc["fc1", "lr_sensitivity"])  # NaN means are left out: one lr remains, no spread
    assert set(b["n_seeds"]) == {3} and set(b["n_lrs"]) == {2}
    d4 = best[best["dataset"] == "d4"].set_index("group")
    assert d4.loc["full", "acc_mean"] == pytest.approx(0.72 - 0.10)


def test_a_single_lr_has_no_sensitivity_and_no_lr_figure(tmp_path) -> None:
    from vitplast.report import figures as F

    one = results_table()
    one = one[one["lr"] == 0.01]
    b = S.best_lr(S.runs_frame(one))
    assert set(b["n_lrs"]) == {1} and b["lr_sensitivity"].isna().all()  # max - min over one lr is not a spread
    assert F.lr_figure(S.seed_means(S.runs_frame(one)), tmp_path / "lr.png", "t") is None
    assert F.lr_figure(S.seed_means(S.runs_frame(results_table())), tmp_path / "lr.png", "t") is not None


def test_best_lr_against_a_naive_loop(best: pd.DataFrame) -> None:
    runs = S.runs_frame(results_table())
    for _, row in best.iterrows():
        sel = runs[(runs["dataset"] == row["dataset"]) & (runs["group"] == row["group"])]
        means = {lr: sel[sel["lr"] == lr]["acc"].to_numpy() for lr in LRS}
        means = {lr: float(np.mean(v)) for lr, v in means.items() if not np.isnan(v).any()}
        top = max(means.values())
        assert row["best_lr"] == min(lr for lr, m in means.items() if m == top)
        assert row["acc_mean"] == pytest.approx(top)


def test_relative_gain(best: pd.DataFrame) -> None:
    gains = S.relative_gain(best, S.probes_frame(probes_table()))
    for k, ds in enumerate(DATASETS):
        g = gains[(gains["dataset"] == ds) & (gains["group"] == "mha")].iloc[0]
        acc = 0.82 + OFFSET[k] + BONUS[k]
        assert g["probe_acc"] == PROBE[k]
        assert g["gain"] == pytest.approx((acc - PROBE[k]) / PROBE[k])


def test_paired_tests_equal_scipy_and_the_closed_form(best: pd.DataFrame) -> None:
    tests = S.paired_tests(best, "mha").set_index("other")
    assert set(tests.index) == {"full", "ln1", "ln2", "fc1", "fc2"}
    for other in tests.index:
        a = [best[(best["dataset"] == d) & (best["group"] == "mha")]["acc_mean"].iloc[0] for d in DATASETS]
        b = [best[(best["dataset"] == d) & (best["group"] == other)]["acc_mean"].iloc[0] for d in DATASETS]
        row = tests.loc[other]
        assert row["n"] == 5 and row["wins"] == 5
        assert row["w_p"] == pytest.approx(sps.wilcoxon(a, b, alternative="greater", method="exact").pvalue)
        assert row["mean_diff"] == pytest.approx(np.mean(np.subtract(a, b)))
        # MHA ahead on all 5 datasets with distinct differences: the exact one-sided p-value is 1 / 2^5
        assert row["w_p"] == pytest.approx(1 / 32)


def test_spearman_per_dataset_and_pooled_equal_scipy(best: pd.DataFrame) -> None:
    gains = S.relative_gain(best, S.probes_frame(probes_table()))
    rng = np.random.default_rng(0)
    rows = []
    for ds in DATASETS:
        for layer in range(3):
            for comp in ("ln1", "mha", "ln2", "fc1", "fc2"):
                rows.append({"model_label": "m", "dataset": ds, "layer": layer, "component": comp,
                             "mean": float(rng.uniform(0.1, 5.0))})
    plast = pd.DataFrame(rows)
    comp = S.component_plasticity(plast)
    corr = S.plasticity_gain_correlation(comp, gains).set_index("scope")
    xs = []
    for ds in DATASETS:
        p = plast[plast["dataset"] == ds].groupby("component")["mean"].mean()
        g = gains[gains["dataset"] == ds].set_index("group")["gain"]
        x = [p[c] for c in ("ln1", "mha", "ln2", "fc1", "fc2")]
        y = [g[c] for c in ("ln1", "mha", "ln2", "fc1", "fc2")]
        r = sps.spearmanr(x, y).statistic
        null = np.array([sps.spearmanr(x, [y[i] for i in p]).statistic for p in itertools.permutations(range(5))])
        exact = min(1.0, 2 * min(np.mean(null >= r - 1e-9), np.mean(null <= r + 1e-9)))
        assert corr.loc[ds, "rho"] == pytest.approx(r)
        assert corr.loc[ds, "p"] == pytest.approx(exact)  # exact, not scipy's t approximation
        assert corr.loc[ds, "n"] == 5
        xs.append(r)
    # pooled: the mean of the within-data-set rhos (raw gains of different data sets are never ranked together)
    assert corr.loc["pooled", "rho"] == pytest.approx(np.mean(xs))
    assert corr.loc["pooled", "n"] == 25 and corr.loc["pooled", "n_datasets"] == 5


def test_plasticity_ranking_against_the_theory() -> None:
    theory_order = {"mha": 5.0, "fc1": 4.0, "fc2": 3.0, "ln2": 2.0, "ln1": 1.0}
    swapped = theory_order | {"ln2": 0.5}  # LN1 > LN2: one adjacent swap, rho = 0.9
    rows = [{"model_label": "m", "dataset": ds, "layer": 0, "component": c, "mean": v}
            for ds, vals in (("a", theory_order), ("b", swapped)) for c, v in vals.items()]
    rk = S.plasticity_ranking(S.component_plasticity(pd.DataFrame(rows))).set_index("dataset")
    assert bool(rk.loc["a", "matches_theory"]) and rk.loc["a", "spearman_theory"] == pytest.approx(1.0)
    assert not bool(rk.loc["b", "matches_theory"]) and rk.loc["b", "spearman_theory"] == pytest.approx(0.9)
    claim = C.ranking_claim(rk.reset_index())
    assert claim.status == C.NOT_SUPPORTED and "1/2" in claim.evidence


def test_a_staged_design_chooses_the_lr_on_the_seed_every_lr_has() -> None:
    """One pilot seed over the lr grid, the other seeds only at the chosen lr: lrs are compared on the pilot
    seed (comparing 1-seed and 3-seed means would favour whichever lr got the lucky extra seeds), and the
    accuracy reported at the chosen lr is the mean over all of its seeds."""
    rows = [("a", 1e-3, 0, 0.50, 0.60), ("a", 3e-3, 0, 0.55, 0.70), ("a", 3e-3, 1, 0.45, 0.80),
            ("a", 3e-3, 2, 0.40, 0.90), ("a", 1e-2, 0, 0.54, 0.99)]
    # a naive design that averaged every seed would choose 1e-2 (0.54 against 0.467)
    table = pd.DataFrame([{"model_label": "m", "optimizer": "adamw", "dataset": "d", "group": g, "lr": lr,
                           "seed": s, "status": "done", "best_val_acc": v, "test_acc": t}
                          for g, lr, s, v, t in rows])
    b = S.best_lr(S.runs_frame(table)).set_index("group").loc["a"]
    assert b["best_lr"] == 3e-3
    assert b["acc_mean"] == pytest.approx(0.80) and b["n_seeds"] == 3
    full = table[table["seed"] == 0]  # every lr with the same seeds: the plain rule
    assert S.best_lr(S.runs_frame(full)).set_index("group").loc["a", "best_lr"] == 3e-3


def staged_table() -> pd.DataFrame:
    """Cell ``a``: pilot seed 0 over 3 lrs, the middle one chosen, seeds 1 and 2 there; cell ``b``: 2 lrs, the
    largest chosen; cell ``c``: one lr."""
    rows = [("a", 1e-3, 0, 0.50, 0.60), ("a", 3e-3, 0, 0.55, 0.70), ("a", 3e-3, 1, 0.45, 0.80),
            ("a", 3e-3, 2, 0.40, 0.90), ("a", 1e-2, 0, 0.54, 0.65),
            ("b", 1e-3, 0, 0.30, 0.40), ("b", 3e-3, 0, 0.35, 0.45), ("b", 3e-3, 1, 0.35, 0.47),
            ("c", 1e-2, 0, 0.30, 0.40)]
    return pd.DataFrame([{"model_label": "m", "optimizer": "adamw", "dataset": "d", "group": g, "lr": lr,
                          "seed": s, "status": "done", "best_val_acc": v, "test_acc": t} for g, lr, s, v, t in rows])


def test_staged_sensitivity_compares_lrs_on_the_pilot_seed_and_flags_edges() -> None:
    b = S.best_lr(S.runs_frame(staged_table())).set_index("group")
    # seed 0 alone: 0.70 - 0.60 (the 3-seed mean 0.80 at the chosen lr would give 0.20)
    assert b.loc["a", "lr_sensitivity"] == pytest.approx(0.10) and b.loc["a", "lr_seeds"] == 1
    assert b.loc["a", "acc_std"] == pytest.approx(0.10) and b.loc["a", "n_seeds"] == 3
    assert b.loc["b", "lr_sensitivity"] == pytest.approx(0.05) and b.loc["b", "best_lr"] == 3e-3
    assert b["lr_on_edge"].to_dict() == {"a": False, "b": True, "c": False}  # one lr tried: no edge
    means = S.seed_means(S.runs_frame(staged_table())).set_index(["group", "lr"])
    assert means.loc[("a", 3e-3), "acc_shared"] == pytest.approx(0.70) and means.loc[("a", 3e-3), "n_shared"] == 1
    assert means.loc[("a", 3e-3), "acc_mean"] == pytest.approx(0.80)


def test_lr_on_edge_against_a_naive_loop(best: pd.DataFrame) -> None:
    table = pd.concat([results_table(), staged_table()], ignore_index=True)
    runs = S.runs_frame(table)
    got = S.best_lr(runs)
    assert got["lr_on_edge"].any() and not got["lr_on_edge"].all()
    for _, row in got.iterrows():
        sel = runs[(runs["model"] == row["model"]) & (runs["dataset"] == row["dataset"])
                   & (runs["group"] == row["group"])]
        lrs = sorted(set(sel["lr"]))
        assert row["lr_on_edge"] == (len(lrs) >= 2 and row["best_lr"] in (lrs[0], lrs[-1]))
    # a full grid compares its lrs on every seed: the sensitivity is that of the seed means
    assert (best["lr_seeds"] == best["n_seeds"]).all()


def test_staged_pivots_label_pilot_values_and_edges() -> None:
    from vitplast.report import tables as T

    means = S.seed_means(S.runs_frame(staged_table()))
    b = S.best_lr(S.runs_frame(staged_table()))
    assert T.staged(b) and not T.staged(S.best_lr(S.runs_frame(results_table())))
    sens, lrs = T.sensitivity_pivot(b), T.best_lr_pivot(b)
    assert sens.loc["d", "A"] == "10.00 (pilot seed)" and sens.loc["d", "C"] == ""
    assert lrs.loc["d", "A"] == "0.003" and lrs.loc["d", "B"] == "0.003 (edge)"
    text = T.edge_text(b, means)
    assert "1 of 3 cells" in text and "d B 0.003 (largest of 0.001, 0.003)" in text
