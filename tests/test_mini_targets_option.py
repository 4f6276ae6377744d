"""``--targets`` of the mini suite: a reduced reproduction is the full one's tasks of those targets, same ids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_train_cli import cli
from vitplast.errors import VitplastError
from vitplast.suites import SuiteOptions, mini, suite_of
from vitplast.sweep import build_plan


def ids(**kw: object) -> list[str]:
    return [t.id for t in build_plan(mini.mini_suite("micro-long", **kw)).tasks]  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [{"project": True}, {}, {"lrs": (1e-3,)}, {"quick": True}])
def test_default_targets_give_the_default_plan(kw: dict[str, object]) -> None:
    default = mini.QUICK_TARGETS if kw.get("quick") else mini.TARGETS
    assert ids(targets=default, **kw) == ids(**kw)


@pytest.mark.parametrize("kw", [{"project": True}, {}, {"lrs": (1e-3,)}])
def test_a_subset_is_the_default_plan_restricted_to_its_targets(kw: dict[str, object]) -> None:
    plan = build_plan(mini.mini_suite("micro-long", **kw))  # type: ignore[arg-type]
    sub = build_plan(mini.mini_suite("micro-long", targets=("latin", "count"), **kw))  # type: ignore[arg-type]
    wanted = [t.id for t in plan.tasks if t.dataset in ("latin", "count")]
    assert [t.id for t in sub.tasks] == wanted
    assert 0 < len(wanted) < len(plan.tasks) and set(wanted) < {t.id for t in plan.tasks}
    assert {t.dataset for t in sub.tasks} == {"latin", "count"}


def test_staged_subset_replays_the_pilot_from_the_runs_on_disk(tmp_path: Path) -> None:
    """A finished pilot of the full suite, resumed with two targets: the seeds stage of those two is the full
    suite's, by id."""
    for t in build_plan(mini.mini_suite("micro-long", root=tmp_path)).of_kind("finetune"):
        t.result_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
        lr, group = t.config["lr"], t.config["train"][0]
        val = 0.5 + 0.01 * (lr == mini._group_lrs(group)[1])  # every pilot chooses its middle lr
        t.result_path(tmp_path).write_text(json.dumps({"best_val_acc": val, "test_acc": val}))
    full = build_plan(mini.mini_suite("micro-long", root=tmp_path)).tasks
    sub = build_plan(mini.mini_suite("micro-long", root=tmp_path, targets=("count", "mini:latin"))).tasks
    assert [t.id for t in sub] == [t.id for t in full if t.dataset in ("latin", "count")]
    assert any(t.config.get("seed") == 2 for t in sub if t.kind == "finetune")


def test_target_names_short_long_and_labels() -> None:
    assert mini.target_specs(["count", "mini:latin"]) == ("mini:latin", "mini:count")  # the suite's order
    assert mini.target_specs(["textures-c contrast 5", "textures-c:contrast:5"]) == ("mini:textures-c:contrast:5",)
    for bad in (["nosuch"], [], ["latin", "cyrillic"]):
        with pytest.raises(VitplastError, match="--targets must be mini targets"):
            mini.target_specs(bad)
    with pytest.raises(VitplastError, match="digits"):  # not a units target
        suite_of("units").spec(SuiteOptions(model="micro-long", targets=("digits",)), True)
    with pytest.raises(VitplastError, match="apply to the mini and units suites"):
        suite_of("paper").spec(SuiteOptions(targets=("latin",)), True)


def test_the_cli_runs_a_reduced_reproduction_and_refuses_an_unknown_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from typer.testing import CliRunner

    from vitplast.cli import app

    res = CliRunner().invoke(app, ["reproduce", "--suite", "mini", "--model", "micro-long", "--targets", "latin,count",
                                   "--dry-run", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    n = len(build_plan(mini.mini_suite("micro-long", targets=("latin", "count"), project=True)).of_kind("finetune"))
    assert n == 2 * 6 * (3 + 2) and re.search(rf"suite mini: {n} finetuning runs .*, 2 probes, 2 plasticity", out)
    assert "grid: latin, count;" in out
    for dry in ([], ["--dry-run"]):
        code, _, err = cli(["reproduce", "--suite", "mini", "--targets", "latin,nosuch", *dry, "--out",
                            str(tmp_path / "x")], capsys)
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: --targets must be"), err
        assert "got nosuch" in err and "Traceback" not in err
        assert not (tmp_path / "x").exists()
