"""The mini suite's staged design: a seed-0 lr pilot per (target, group), widened on an edge, then the other
seeds at the chosen lr, planned from the finished runs of a sweep folder (fake result files here)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from vitplast.suites import mini
from vitplast.suites.lr_pilot import pilot_state
from vitplast.sweep import build_plan


def _finish(root: Path, val_of, seed_offset: float = 0.0) -> int:
    """Write a result file with ``val_of(target, group, lr)`` for every planned, unfinished finetuning run (its
    test accuracy ``seed_offset * (seed - 1)`` away from it)."""
    n = 0
    for t in build_plan(mini.mini_suite("micro-long", root=root)).tasks:
        if t.kind == "finetune" and not t.is_done(root):
            t.result_path(root).parent.mkdir(parents=True, exist_ok=True)
            v = val_of(t.config["data"], t.config["train"][0], t.config["lr"])
            test = None if v is None else v + seed_offset * (t.config["seed"] - 1)
            t.result_path(root).write_text(json.dumps({"best_val_acc": v, "test_acc": test}))
            n += 1
    return n


def _peak(target: str, group: str) -> float:
    """Each (target, group) peaks somewhere on the ladder, some of them beyond the initial grid."""
    return {"mha": 3e-3, "fc1": 3e-4, "fc2": 1e-5, "ln1": 1e-2, "ln2": 1e-1, "ln-control": 1e-3}[group] * (
        1 if target != "mini:latin" else 1e-1)


def _curve(target: str, group: str, lr: float) -> float | None:
    if group == "ln2" and lr >= 1e-2 and target == "mini:count":
        return None  # diverged
    return 0.5 - abs(math.log10(lr) - math.log10(_peak(target, group))) / 10


def test_the_stages_run_until_every_pilot_has_chosen_and_every_seed_has_run(tmp_path: Path) -> None:
    stages = []
    while n := _finish(tmp_path, _curve):
        stages.append(n)
        assert len(stages) <= 1 + (mini.MAX_LRS - 3) + 1  # the pilot, its widenings, the seeds
    assert stages[0] == len(mini.TARGETS) * len(mini.GROUPS) * 3  # first stage: the initial grids on seed 0
    final = build_plan(mini.mini_suite("micro-long", root=tmp_path)).of_kind("finetune")
    for target in mini.TARGETS:
        for group in mini.GROUPS:
            runs = [t for t in final if t.config["data"] == target and t.config["train"] == [group]]
            pilot = {t.config["lr"]: _curve(target, group, t.config["lr"]) for t in runs if t.config["seed"] == 0}
            st = pilot_state(mini._group_lrs(group), pilot, mini.MAX_LRS)  # the rule, replayed by hand
            assert st.chosen is not None and set(pilot) == set(st.lrs)
            others = {(t.config["seed"], t.config["lr"]) for t in runs if t.config["seed"] != 0}
            assert others == {(s, st.chosen) for s in mini.SEEDS[1:]}
            if group == "ln2" and target == "mini:count":
                assert st.chosen < 1e-2  # a diverged lr is never chosen
    # a peak inside the ladder is found; one beyond the cap stays on the edge
    runs = [t for t in final if t.config["data"] == "mini:textures" and t.config["seed"] == 1]
    chosen = {t.config["train"][0]: t.config["lr"] for t in runs}
    assert chosen["mha"] == 3e-3 and chosen["ln2"] == 1e-1 and chosen["ln-control"] == 1e-3
    assert chosen["fc2"] == 1e-5  # two widenings (the cap: 5 lrs) reach the peak at 1e-5
    latin = {t.config["train"][0]: t.config["lr"] for t in final if t.config["data"] == "mini:latin"
             and t.config["seed"] == 1}
    assert latin["fc2"] == 1e-5 and latin["mha"] == 3e-4  # a peak at 1e-6 is beyond the cap: the edge is kept


def test_the_projected_plan_is_the_documented_size() -> None:
    plan = build_plan(mini.mini_suite("micro-long", project=True))
    assert plan.counts()["finetune"] == 9 * 6 * (3 + 2) == 270
    assert plan.counts()["probe"] == plan.counts()["plasticity"] == 9
    first = build_plan(mini.mini_suite("micro-long"))  # nothing has run: the first stage only
    assert {t.id for t in first.tasks} < {t.id for t in plan.tasks}
    assert {t.config["seed"] for t in first.of_kind("finetune")} == {0}
    assert all(t.config["head_init"] == "probe" and t.config["steps"] == mini.STEPS for t in plan.of_kind("finetune"))


def test_the_dry_run_states_the_power_from_the_noise_of_its_own_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vitplast.cli import app

    runner = CliRunner()
    args = ["reproduce", "--suite", "mini", "--model", "micro-long", "--dry-run", "--out", str(tmp_path)]
    before = " ".join(runner.invoke(app, args).output.split())
    assert "seed SD 3.5 pp" in before and "previous protocol" in before  # nothing has run: the fallback
    assert mini.observed_noise(mini.mini_suite("micro-long"), tmp_path) is None
    while _finish(tmp_path, _curve, seed_offset=0.01):  # seeds 0, 1, 2 at -1, 0, +1 point: SD 1 point
        pass
    spec = mini.mini_suite("micro-long", root=tmp_path)
    accuracy, seed_sd, cells = mini.observed_noise(spec, tmp_path)
    assert cells == len(mini.TARGETS) * len(mini.GROUPS)  # the pilot's one-seed lrs are not cells
    assert seed_sd == pytest.approx(0.01)
    after = " ".join(runner.invoke(app, args).output.split())
    n = len(build_plan(mini.mini_suite("micro-long", root=tmp_path, project=True)).of_kind("finetune"))
    left = re.search(rf"{n} of {n + 27} tasks already finished in \S+: ([0-9.]+) CPU", after)
    assert left and 0 < float(left.group(1)) < 0.5  # the 9 probes, 9 analyses and 9 starts (not faked) are left
    assert f"seed SD 1.0 pp at accuracy {100 * accuracy:.0f} % observed over the {cells} target x group" in after
    ours = dict(re.findall(r"(MHA/FFN - LN) ([0-9.]+) pp", after))
    theirs = dict(re.findall(r"(MHA/FFN - LN) ([0-9.]+) pp", before))
    assert float(ours["MHA/FFN - LN"]) < float(theirs["MHA/FFN - LN"])  # less seed noise, smaller effects seen
