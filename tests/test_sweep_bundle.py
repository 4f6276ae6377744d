"""Sweeps pack finetuning runs into run bundles (docs/mini-protocol.md, "Run bundles") without changing any run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.test_train_bundle import kill_after_first_evaluation
from vitplast.sweep import Resources, build_plan, parse_sweep, run_sweep
from vitplast.sweep.execute import read_events
from vitplast.sweep.packing import bundle_size, pack
from vitplast.train.rundir import RunDir

MODEL = "timm:vit_micro_patch4_32"


def spec(**train: Any) -> Any:
    return parse_sweep({
        "models": [MODEL], "datasets": ["random:16"], "groups": ["mha", "ln1", "ln-control"], "lrs": [0.01, 0.03],
        "seeds": [0], "train": {"steps": 4, "batch_size": 8, "eval_every": 2, "random_weights": True, **train},
        "probe": False, "plasticity": False, "run": {"device": "cpu"},
    })


def files(out: Path) -> dict[str, list[str]]:
    return {d.name: sorted(f.name for f in d.iterdir()) for d in sorted((out / "runs").iterdir())}


def test_pack_groups_compatible_runs_in_plan_order() -> None:
    plan = build_plan(parse_sweep({
        "models": [MODEL], "datasets": ["random:16", "random:32"], "groups": ["mha", "ln1"], "lrs": [0.01, 0.03],
        "seeds": [0, 1], "train": {"steps": 2, "random_weights": True}, "probe": False, "plasticity": False}))
    runs = plan.of_kind("finetune")
    packs = pack(runs, 2)
    assert sorted(t.id for p in packs for t in p) == sorted(t.id for t in runs)
    for p in packs:
        assert len(p) <= 2
        keys = {(t.config["data"], t.config["seed"]) for t in p}  # random weights: the seed is shared too
        assert len(keys) == 1
        assert [runs.index(t) for t in p] == sorted(runs.index(t) for t in p)  # one group: plan order
        assert len({tuple(t.config["train"]) for t in p}) == 1  # each (data, seed) has 2 lrs of each group
    assert sorted(len(p) for p in packs) == [2] * 8
    assert [len(p) for p in pack(runs, 1)] == [1] * len(runs)
    assert sorted(len(p) for p in pack(runs, 3)) == [1] * 4 + [3] * 4  # per (data, seed): [mha, mha, ln1], [ln1]
    mixed = pack(runs, 3)
    assert all(len({tuple(t.config["train"]) for t in p}) <= 2 for p in mixed)
    assert bundle_size(None, "auto", cuda=False) != bundle_size(None, "cuda", cuda=False)
    assert bundle_size(5, "cpu", cuda=False) == 5


def test_bundled_sweep_equals_unbundled_and_resumes_after_a_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    single = run_sweep(spec(), tmp_path / "single", executor="local", resources=Resources(bundle=1))
    ref = run_sweep(spec(), tmp_path / "ref", executor="local", resources=Resources(bundle=6))
    assert single.ran == ref.ran == 6
    # same ids, folders and files as one run per trial; same numbers within the bundle tolerance
    assert files(tmp_path / "single") == files(tmp_path / "ref")
    for run_id in files(tmp_path / "ref"):
        a = RunDir(tmp_path / "single" / "runs" / run_id).read_result()
        b = RunDir(tmp_path / "ref" / "runs" / run_id).read_result()
        assert b["test_acc"] == a["test_acc"] and b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-5)
    # results.csv carries each run's share of its bundle's training time, the bundle's total and its size
    for name, k in (("single", 1), ("ref", 6)):
        table = pd.read_csv(tmp_path / name / "results.csv")
        assert list(table["bundle_size"]) == [k] * 6
        bundles = table.groupby("bundle_train_seconds")["train_seconds"]
        assert sorted(bundles.size()) == ([1] * 6 if k == 1 else [6])
        for total, shares in bundles:
            assert shares.sum() == pytest.approx(total, rel=1e-9)

    out = tmp_path / "killed"
    validate = kill_after_first_evaluation(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec(), out, executor="local", resources=Resources(bundle=6))
    assert all(RunDir(d).has_resume_state() for d in (out / "runs").iterdir())
    monkeypatch.setattr("vitplast.train.bundle._Session._validate", validate)
    again = run_sweep(spec(), out, executor="local", resources=Resources(bundle=6))
    assert again.ran == 6 and not again.failed
    for run_id in files(tmp_path / "ref"):
        a, b = RunDir(tmp_path / "ref" / "runs" / run_id), RunDir(out / "runs" / run_id)
        assert b.read_metrics() == a.read_metrics()  # every member resumed exactly
        assert b.read_result()["test_loss"] == a.read_result()["test_loss"]
    stamps = {d.name: (d / "result.json").read_bytes() for d in (out / "runs").iterdir()}
    last = run_sweep(spec(), out, executor="local", resources=Resources(bundle=6))
    assert last.ran == 0 and last.skipped == 6  # finished members are skipped
    assert stamps == {d.name: (d / "result.json").read_bytes() for d in (out / "runs").iterdir()}
    starts = [e["id"] for e in read_events(out) if e["event"] == "start"]
    assert sorted(starts) == sorted(2 * list(files(out)))


def test_ray_runs_one_trial_per_bundle(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    outcome = run_sweep(spec(), out, executor="ray", resources=Resources(cpus_per_trial=1, max_concurrent=1, bundle=3))
    assert outcome.ran == 6 and not outcome.failed
    starts = [e for e in read_events(out) if e["event"] == "start"]
    assert len(starts) == 6 and all(e["bundle"] == 3 for e in starts)
    assert len({e["pid"] for e in starts}) <= 2  # two trials (a reused actor may run both)
    trials = sorted(p.name for p in (out / ".ray").rglob("*+2") if p.is_dir())
    assert len(trials) == 2 and all(t.split("+")[0] in files(out) for t in trials)
