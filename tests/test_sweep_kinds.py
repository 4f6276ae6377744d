"""Task kinds: one class each; ids of probes and analyses are hashed from their typed configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitplast.sweep import build_plan, parse_sweep
from vitplast.sweep.kinds import AnalysisTask, ProbeTask, TaskKind, kind_of, register
from vitplast.sweep.plan import Task, task_id


def test_each_kind_owns_its_folder_result_file_and_config(tmp_path: Path) -> None:
    plan = build_plan(parse_sweep({"models": ["micro"], "datasets": ["random:16"], "groups": ["mha"],
                                   "plasticity": {"source": "random:9", "pairs": 8}}))
    seen = {t.kind: t for t in plan.tasks}
    assert set(seen) == {"probe", "plasticity", "finetune"}
    assert seen["probe"].dir(tmp_path) == tmp_path / "probes" / seen["probe"].id
    assert seen["plasticity"].result_path(tmp_path).name == "plasticity.json"
    assert seen["finetune"].dir(tmp_path).parent.name == "runs"
    probe = kind_of("probe").config(seen["probe"])
    assert isinstance(probe, ProbeTask) and probe.data == "random:16"
    analysis = kind_of("plasticity").config(seen["plasticity"])
    assert isinstance(analysis, AnalysisTask) and analysis.pairs == 8
    # ids hash the typed config's fields (the same keys as before: existing sweep folders are found again)
    assert seen["probe"].id == task_id("probe", {"model": "micro", "data": "random:16", "C": None,
                                                 "random_weights": False})


def test_a_new_kind_can_be_registered_and_is_dispatched(tmp_path: Path) -> None:
    ran: list[str] = []

    class Echo(TaskKind):
        name = "echo-test"
        subdir = "echo"
        config_cls = dict

        def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
            out.mkdir(parents=True)
            (out / self.result_file).write_text("{}")
            ran.append(task.id)

    register(Echo())
    with pytest.raises(ValueError, match="already registered"):
        register(Echo())
    from vitplast.sweep.execute import execute_task

    t = Task.make("echo-test", {"x": 1}, "m", "d", "g")
    assert execute_task(t, tmp_path)["status"] == "done" and ran == [t.id] and t.is_done(tmp_path)
    assert t.describe() == "echo-test m / d"
    with pytest.raises(ValueError, match="unknown task kind"):
        kind_of("nope")
