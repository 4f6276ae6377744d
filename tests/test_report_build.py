"""``vitplast report`` on a fabricated sweep directory (result files written by hand, no training)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitplast.components import COMPONENTS
from vitplast.sweep import build_plan, parse_sweep
from vitplast.sweep.plan import Plan
from vitplast.train.scoring import HITS_FILE, save_hits

DATASETS = ["random:10", "random:11", "random:12", "random:13", "random:14"]
GROUPS = ["full", "ln1", "mha", "ln2", "fc1", "fc2"]
PLASTICITY = {"mha": 4.0, "fc1": 3.0, "fc2": 2.0, "ln2": 1.0, "ln1": 0.5}  # the theory's order
QUALITY = {"full": 0.10, "mha": 0.08, "fc1": 0.06, "fc2": 0.04, "ln2": 0.02, "ln1": 0.0, "ln-control": 0.04}


def accuracy(k: int, group: str, lr: float, seed: int) -> float:
    """Finetuning quality follows plasticity; lr 0.1 is better for every group; seeds add +-0.01."""
    return 0.5 + 0.02 * k + QUALITY[group] + (0.03 if lr == 0.1 else 0.0) + 0.01 * (seed - 1) + 0.001 * k * (group == "mha")


N_TEST = 1000


def hits(k: int, acc: float) -> np.ndarray:
    """Per-image correctness with mean ``acc``: image i is right iff u_i < acc for a fixed u per data set, so
    a better group is right on a superset of the images (a paired design)."""
    u = (np.random.default_rng(k).permutation(N_TEST) + 0.5) / N_TEST
    return u < acc


def staged_grids(datasets: list[str], groups: list[str], pilot: dict[str, list[float]]) -> list[dict[str, object]]:
    """A staged design: seed 0 over ``pilot[group]`` lrs, then seeds 1 and 2 at lr 0.1 (the pilot's choice
    under :func:`accuracy`), as the mini suite plans it (``docs/mini-protocol.md``)."""
    def grid(name: str, g: str, seeds: list[int], lrs: list[float]) -> dict[str, object]:
        return {"name": name, "groups": [g], "seeds": seeds, "lrs": [],
                "datasets": [{"spec": d, "lrs": lrs} for d in datasets]}
    return ([grid(f"pilot-{g}", g, [0], pilot[g]) for g in groups]
            + [grid(f"seeds-{g}", g, [1, 2], [0.1]) for g in groups])


def start_accuracy(k: int) -> float:
    """The LP-FT start: above the probe, as good as LN1 at lr 0.1 (its mean over seeds), below the other groups."""
    return 0.53 + 0.02 * k


def fabricate(root: Path, n_datasets: int = 5, groups: list[str] = GROUPS,
              pilot: dict[str, list[float]] | None = None, head_init: str = "random") -> Plan:
    """A finished sweep of ``groups`` over the first ``n_datasets`` data sets (bounds for the first two analyses
    only: drawing them is the slowest part of a report): every lr x seed 0-2, or with ``pilot`` the staged design
    of :func:`staged_grids`. With ``head_init="probe"`` the runs have an LP-FT start per data set
    (:func:`start_accuracy`), and the runs of seed 2 peak at step 2 of 4."""
    grid: dict[str, object] = {"groups": groups, "lrs": [0.01, 0.1], "seeds": [0, 1, 2]}
    if pilot is not None:
        grid, *rest = staged_grids(DATASETS[:n_datasets], groups, pilot)
        grid |= {"ablations": rest}
    spec = parse_sweep({
        "models": [{"spec": "timm:vit_micro_patch4_32", "label": "micro"}], "datasets": DATASETS[:n_datasets],
        **grid, "train": {"steps": 4, "batch_size": 8, "eval_every": 2, "head_init": head_init},
        "plasticity": {"source": "random:9", "pairs": 8},
    })
    plan = build_plan(spec)
    root.mkdir(parents=True)
    plan.save(root, spec)
    for t in plan.tasks:
        d = t.dir(root)
        d.mkdir(parents=True)
        k = DATASETS.index(t.config.get("data", t.config.get("target")))
        if t.kind == "probe":
            save_hits(d / HITS_FILE, hits(k, 0.4 + 0.02 * k))
            (d / "result.json").write_text(json.dumps({"test_acc": 0.4 + 0.02 * k, "val_acc": 0.4, "C": 1.0}))
        elif t.kind == "start":
            save_hits(d / HITS_FILE, hits(k, start_accuracy(k)))
            (d / "result.json").write_text(json.dumps({"test_acc": start_accuracy(k), "val_acc": 0.5, "n_test": N_TEST}))
        elif t.kind == "plasticity":
            rows = [{"model": "m", "layer": layer, "component": c, "mean": v * (1 + 0.1 * layer), "std": 0.1,
                     "ci95": 0.05, "n_pairs": 8} for layer in range(2) for c, v in PLASTICITY.items()]
            pd.DataFrame(rows).to_csv(d / "plasticity.csv", index=False)
            bounds = [{"model": "m", "layer": r["layer"], "component": r["component"], "variant": v,
                       "bound": 10 * r["mean"], "rigorous": True, "r": math.nan, "n": math.nan, "sigma_min": math.nan}
                      for r in rows for v in [{"ln1": "sigma_min", "ln2": "sigma_min", "mha": "max_r_qbias",
                                               "fc1": "spectral", "fc2": "spectral_first_d"}[r["component"]]]]
            if k < 2:
                pd.DataFrame(bounds).to_csv(d / "bounds.csv", index=False)
            (d / "plasticity.json").write_text(json.dumps({"pairs_used": 8, "pairs_skipped": 0, "bounds": {
                "ranking": {"measured": list(PLASTICITY), "spearman": 1.0},
                "check": {"comparisons": 400, "violations": 0, "all_hold": True}}}))
        else:
            c = t.config
            group = c["train"][0]
            acc = accuracy(k, group, c["lr"], c["seed"])
            scale = {"full": 5.0, "mha": 3.0, "fc1": 2.0, "fc2": 1.5, "ln2": 0.2, "ln1": 0.1, "ln-control": 0.3}[group]
            metrics = [{"kind": "train", "step": s, "loss": 1.0, "lr": c["lr"], "grad_norm": scale + 1,
                        "grad_norm_groups": {group: scale, "head": 1.0}} for s in range(1, 5)]
            metrics += [{"kind": "eval", "step": s, "val_loss": 2.0 / s, "val_acc": acc} for s in (2, 4)]
            save_hits(d / HITS_FILE, hits(k, acc))
            (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
            (d / "result.json").write_text(json.dumps({
                "model": c["model"], "data": c["data"], "train": group, "lr": c["lr"], "optimizer": "sgd",
                "seed": c["seed"], "steps": 4, "best_step": 2 if c["seed"] == 2 and head_init == "probe" else 4,
                "best_val_acc": acc, "test_acc": acc,
                "trainable_params": 100, "trainable_params_per_group": {group: 90, "head": 10}, "wall_seconds": 1.0,
                "evaluations": [{"data": "random:3", "split": "test", "acc": 0.5, "loss": 1.0}]}))
    return plan


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vitplast.report import make_report

    root = tmp_path_factory.mktemp("rep") / "sweep"
    fabricate(root)
    make_report(root, figures=False)  # tests of numbers draw no figures
    return root


def test_results_table_holds_every_config_field_and_result(report_dir: Path) -> None:
    table = pd.read_csv(report_dir / "results.csv")
    assert len(table) == 5 * 6 * 2 * 3 and set(table["status"]) == {"done"}
    for col in ("lr", "momentum", "batch_size", "clip", "schedule", "augment", "seed", "steps", "test_acc",
                "best_step", "steps_done", "trainable_params_head", "eval_random:3_test_acc", "run_dir"):
        assert col in table.columns, col


def test_report_files_and_self_contained_html(tmp_path: Path) -> None:
    from vitplast.report import make_report

    fabricate(tmp_path / "sweep", n_datasets=2)
    seen: list[tuple[str, int]] = []

    def progress(label: str, total: int):  # type: ignore[no-untyped-def]
        seen.append((label, total))
        return lambda k: seen.append((label, -k))

    rep = make_report(tmp_path / "sweep", progress=progress).out
    assert seen[0] == ("report", 4) and sum(-k for _, k in seen[1:]) == 4
    html = (rep / "report.html").read_text()
    pngs = sorted((rep / "figures").glob("*.png"))
    names = {p.stem for p in pngs}
    assert {"plasticity", "accuracy", "gain", "lr_sensitivity", "curves", "plasticity_vs_gain"} <= names
    assert any(n.startswith("bounds_") for n in names)
    assert not list((rep / "figures").glob("*.pdf"))  # PNG only unless asked for PDF
    assert html.count("data:image/png;base64,") == len(pngs)
    assert not re.search(r"""(src|href)=['"](?!data:)""", html), "no external resources"
    for name in ("claims", "vs_probe", "accuracy", "paired_tests", "plasticity_gain_spearman", "accuracy_pivot",
                 "gain_pivot", "lr_sensitivity_pivot", "best_lr_pivot", "lr_means"):
        assert (rep / "tables" / f"{name}.csv").is_file() and (rep / "tables" / f"{name}.md").is_file()
    assert "| claim |" in (rep / "tables" / "claims.md").read_text()


def test_report_numbers_follow_the_fabricated_results(report_dir: Path) -> None:
    acc = pd.read_csv(report_dir / "report" / "tables" / "accuracy.csv")
    for k, ds in enumerate(DATASETS):
        for g in GROUPS:
            row = acc[(acc["dataset"] == ds) & (acc["group"] == g)].iloc[0]
            assert row["best_lr"] == 0.1
            assert row["acc_mean"] == pytest.approx(accuracy(k, g, 0.1, 1))
            assert row["acc_std"] == pytest.approx(0.01)
            assert row["lr_sensitivity"] == pytest.approx(0.03)
            assert row["gain"] == pytest.approx((row["acc_mean"] - (0.4 + 0.02 * k)) / (0.4 + 0.02 * k))
    claims = pd.read_csv(report_dir / "report" / "tables" / "claims.csv").set_index("claim")
    status = claims["status"]
    assert status["Plasticity ranking MHA > FC1 > FC2 > LN2 > LN1 (measured)"] == "supported"
    assert status["The rigorous upper bounds hold (every measured pair, layer and component)"] == "supported"
    order = claims.loc["The finetuning order MHA/FFN > LN holds (MHA, FC1, FC2 vs LN1, LN2; these targets)"]
    # mean(MHA, FC1, FC2) - mean(LN1, LN2) = (0.08 + 0.06 + 0.04) / 3 - 0.01 = 5 points (+ MHA's tiny bonus)
    assert order["effect"] == pytest.approx(0.05 + 0.002 / 3 * 1, abs=0.003)
    assert order["ci_low"] <= order["effect"] <= order["ci_high"] and order["ci_low"] > 0
    assert order["status"] == "supported" and order["p_holm"] >= order["p"]
    # 5 targets all in favour: exact p = 1/32, which cannot pass the secondary family's corrected level: excluded
    gen = claims.loc["The finetuning order MHA/FFN > LN generalises across targets"]
    assert gen["p"] == pytest.approx(1 / 32) and gen["status"] == "excluded" and math.isnan(gen["p_holm"])
    assert "excluded before testing" in gen["evidence"] and gen["family"] == "secondary"
    # the declared primary family: its tests are adjusted among themselves only (here 2: no control group was run)
    primary = claims[claims["family"] == "primary"]
    assert len(primary) == 3 and primary["p"].notna().sum() == 2
    tested = primary[primary["p"].notna()]
    assert tested["p_holm"].to_numpy() == pytest.approx(np.minimum(1, np.maximum.accumulate(
        np.sort(tested["p"].to_numpy()) * [2, 1]))[np.argsort(np.argsort(tested["p"].to_numpy()))])
    # accuracy follows plasticity exactly within each data set: mean within-target rho = 1
    predicts = claims.loc["Plasticity predicts the finetuning order"]
    assert predicts["effect"] == pytest.approx(1.0) and predicts["status"] == "supported"
    assert claims.loc["MHA finetunes better than FC1 (same parameter count)", "status"] == "supported"
    # every group has 90 parameters here: a constant predictor carries no rank information
    params = claims.loc["Baseline: the trainable parameter count predicts the finetuning order"]
    assert params["status"] == "inconclusive" and params["n_targets"] == 0
    random = claims.loc["Baseline: a random order predicts the finetuning order"]
    assert random["status"] == "reference" and random["ci_low"] < 0 < random["ci_high"]
    kept = claims["p_holm"].notna()
    assert (claims.loc[kept, "p_holm"] >= claims.loc[kept, "p"] - 1e-12).all()
    control = claims.loc["LN1+LN2 finetune better than a parameter-matched control"]  # no such group was run
    assert "not run" in control["test"] and math.isnan(control["p"])


def test_layernorms_are_compared_with_their_parameter_matched_control(tmp_path: Path) -> None:
    from vitplast.report import make_report

    root = tmp_path / "sweep"
    fabricate(root, n_datasets=3, groups=[*GROUPS, "ln-control"])
    make_report(root, figures=False)
    acc = pd.read_csv(root / "report" / "tables" / "accuracy.csv")
    control_acc = acc[acc["group"] == "ln-control"].set_index("dataset")["acc_mean"]
    assert control_acc.to_dict() == pytest.approx({ds: accuracy(k, "ln-control", 0.1, 1)
                                                   for k, ds in enumerate(DATASETS[:3])})
    claims = pd.read_csv(root / "report" / "tables" / "claims.csv").set_index("claim")
    row = claims.loc["LN1+LN2 finetune better than a parameter-matched control (ln-control)"]
    # mean(LN1, LN2) - control at the best lr = (0.0 + 0.02) / 2 - 0.04 on every target, on the paired images
    assert row["effect"] == pytest.approx(-0.03)
    assert row["ci_low"] <= row["effect"] <= row["ci_high"] < 0
    assert row["kind"] == "baseline" and "two-sided" in row["test"] and row["n_targets"] == 3
    assert row["status"] == "not supported" and "ahead on 0/3 targets" in row["evidence"]
    assert row["p_holm"] >= row["p"]


def test_partial_sweep_gives_a_partial_report(tmp_path: Path) -> None:
    from vitplast.report import make_report

    root = tmp_path / "sweep"
    plan = fabricate(root, n_datasets=2)
    for t in plan.of_kind("finetune")[:10]:
        (t.result_path(root)).unlink()
    (plan.of_kind("finetune")[0].error_path(root)).write_text("RuntimeError: boom\n")
    rep = make_report(root, figures=False)
    html = (rep.out / "report.html").read_text()
    assert "not complete" in html and "Failed runs" in html and "boom" in html
    table = pd.read_csv(root / "results.csv")
    assert (table["status"] == "done").sum() == len(plan.of_kind("finetune")) - 10


def test_report_command(report_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vitplast.cli import main

    main(["report", str(report_dir), "--no-figures"])
    out = capsys.readouterr().out
    assert "report.html" in out and "supported" in out
    assert set(COMPONENTS) <= set(pd.read_csv(report_dir / "plasticity.csv")["component"])


def test_pdf_only_when_asked(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    import vitplast.report.figures as F

    F.save(plt.figure(), tmp_path / "a.png")
    token = F.WITH_PDF.set(True)
    try:
        F.save(plt.figure(), tmp_path / "b.png")
    finally:
        F.WITH_PDF.reset(token)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.pdf", "b.png"]


@pytest.mark.parametrize("seeds", [1, 3])
def test_accuracy_figure_draws_error_bars_only_with_a_std(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeds: int) -> None:
    import vitplast.report.figures as F

    figs: list[object] = []
    monkeypatch.setattr(F, "save", lambda fig, path: figs.append(fig) or path)
    std = 0.01 if seeds > 1 else math.nan
    gains = pd.DataFrame({"dataset": "d", "group": ["mha", "ln1"], "acc_mean": [0.8, 0.6],
                          "acc_std": [std, std], "probe_acc": [0.7, 0.7]})
    F.accuracy_figure(gains, tmp_path / "a.png", "t")
    ax = figs[0].axes[0]  # type: ignore[attr-defined]
    bars = [c for c in ax.containers if c.__class__.__name__ == "BarContainer"]
    assert [round(r.get_height(), 6) for r in bars[0]] == [60.0, 80.0]  # GROUP_ORDER: ln1 before mha
    assert (bars[0].errorbar is not None) == (seeds > 1)
