"""The ``start`` kind: one LP-FT start per target of the mini suite, planned beside tasks whose ids it leaves
alone, run by the sweep into ``starts.csv``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

import vitplast.sweep.task as task_module
from vitplast.suites import mini
from vitplast.sweep import build_plan, parse_sweep, run_sweep
from vitplast.sweep.kinds import START, StartTask


def _digest(tasks: list[dict[str, object]], name: str) -> str:
    return hashlib.sha256(json.dumps({"name": name, "tasks": tasks}, sort_keys=True).encode()).hexdigest()


def test_the_mini_suite_plans_one_start_per_target_and_leaves_every_other_task_as_it_was(
        monkeypatch: pytest.MonkeyPatch) -> None:
    plan = build_plan(mini.mini_suite("micro-long", project=True))
    starts = plan.of_kind(START)
    assert sorted(t.config["data"] for t in starts) == sorted(mini.TARGETS)  # pretrained: not one per seed
    assert all(t.config == {"model": "micro-long", "data": t.config["data"], "random_weights": False, "seed": None,
                            "precision": "auto"} for t in starts)
    rest = [t for t in plan.tasks if t.kind != START.name]
    # the digest of plan.json of this design computed before the start kind existed (every id, config, order)
    assert _digest([t.to_dict() for t in rest], plan.name) == (
        "8db7dd611cae4a32d67d95a97fc145eca79fa2475ec28c1c218b8fb30e0da517")
    monkeypatch.delitem(task_module._KINDS, START.name)  # the plan without the kind
    assert build_plan(mini.mini_suite("micro-long", project=True)).tasks == rest


def test_starts_follow_the_head_init_and_the_seed_only_with_random_weights() -> None:
    base = {"models": ["micro"], "datasets": ["random:16", "random:9"], "groups": ["mha", "ln1"], "lrs": [0.1, 0.3],
            "seeds": [0, 1], "probe": False, "plasticity": False}
    assert not build_plan(parse_sweep(base | {"train": {"head_init": "random"}})).of_kind(START)
    pretrained = build_plan(parse_sweep(base | {"train": {"head_init": "probe"}})).of_kind(START)
    assert [(t.config["data"], t.config["seed"]) for t in pretrained] == [("random:16", None), ("random:9", None)]
    random = build_plan(parse_sweep(base | {"train": {"head_init": "probe", "random_weights": True}})).of_kind(START)
    assert sorted((t.config["data"], t.config["seed"]) for t in random) == [
        ("random:16", 0), ("random:16", 1), ("random:9", 0), ("random:9", 1)]
    # the id depends on the settings only: the same start from another grid, label or lr is one task
    again = build_plan(parse_sweep(base | {"lrs": [0.5], "groups": ["fc1"], "name": "other",
                                           "train": {"head_init": "probe"}})).of_kind(START)
    assert [t.id for t in again] == [t.id for t in pretrained]
    assert START.config(pretrained[0]) == StartTask("micro", "random:16", False, None, "auto")


def test_a_sweep_writes_each_start_folder_and_starts_csv(tmp_path: Path) -> None:
    spec = parse_sweep({"models": ["micro"], "datasets": ["random:96"], "groups": ["mha"], "lrs": [0.01],
                        "seeds": [0, 1], "train": {"steps": 2, "batch_size": 32, "eval_every": 1,
                                                   "head_init": "probe"},
                        "probe": False, "plasticity": False, "run": {"device": "cpu"}})
    out = tmp_path / "sweep"
    result = run_sweep(spec, out, executor="local")
    assert result.ran == 3 and not result.failed
    table = pd.read_csv(out / "starts.csv")
    assert len(table) == 1 and table["status"].tolist() == ["done"]
    folder = out / "starts" / table["id"].iloc[0]
    assert {p.name for p in folder.iterdir()} >= {"config.json", "result.json", "test_hits.npz"}
    saved = json.loads((folder / "result.json").read_text())
    assert table["test_acc"].iloc[0] == pytest.approx(saved["test_acc"]) and saved["n_test"] > 0
    assert 0 <= table["val_acc"].iloc[0] <= 1 and "wall_seconds" in table
