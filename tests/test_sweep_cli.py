"""``vitplast reproduce --dry-run`` and the command-line checks of ``vitplast sweep`` (nothing is trained)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vitplast.cli import main
from vitplast.sweep import build_plan, load_sweep


def _run(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_paper_dry_run_writes_the_full_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "paper"
    assert _run(["reproduce", "--suite", "paper", "--dry-run", "--out", str(out), "--data-root", "/data"]) == 0
    captured = capsys.readouterr()
    assert "1176 runs" in captured.out and "GPU" in captured.out
    assert "924 runs" in captured.err  # the base grid, with its own estimate
    spec = load_sweep(out / "sweep.yaml")
    plan = build_plan(spec)
    assert len(plan.of_kind("finetune")) == 1176 and sorted(p.name for p in out.iterdir()) == ["sweep.yaml"]
    assert any(t.config["data"] == "cifar10c:/data/CIFAR-10-C:snow:5" for t in plan.tasks)
    assert spec.plasticity is not None and spec.plasticity.source == "imagenet-val:/data/imagenet/val"


def test_mini_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["reproduce", "--suite", "mini", "--dry-run", "--out", str(tmp_path / "m")]) == 0
    captured = capsys.readouterr()
    assert "270 runs" in captured.out  # the whole staged design, projected
    err = " ".join(captured.err.split())
    assert "9 targets of 1200/1200/1200/1200/1200/1248/1152/1250/1200 test images, 3 seeds" in err
    assert "80 % power" in err
    detect = dict(re.findall(r"(MHA/FFN - LN|LN - ln-control|mean within-target rho) ([0-9.]+)", err))
    # the simulated design's detectable effects are plausible and ordered: the LayerNorm-vs-control contrast
    # (2 groups against 1) needs a larger difference than MHA/FFN against LN (3 against 2)
    assert 1.0 < float(detect["MHA/FFN - LN"]) < float(detect["LN - ln-control"]) < 15.0
    assert 0.3 < float(detect["mean within-target rho"]) <= 0.6  # nine targets: rho 0.6 is detectable
    assert "ln1+ln2+ln-control pilot lrs [0.001, 0.003, 0.01]" in err and "head probe" in err
    assert "grid pilot-ln-control: 27 runs" in err and "grid seeds-ln-control: 18 runs" in err
    plan = build_plan(load_sweep(tmp_path / "m" / "sweep.yaml"))
    assert {t.config["model"] for t in plan.tasks} == {"micro"}
    assert _run(["reproduce", "--suite", "mini", "--quick", "--dry-run", "--out", str(tmp_path / "q")]) == 0
    assert len(build_plan(load_sweep(tmp_path / "q" / "sweep.yaml")).of_kind("finetune")) == 2 * 6 * 2


def test_a_new_suite_is_one_entry_of_the_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``reproduce`` knows a suite only through the :class:`~vitplast.suites.Suite` interface: one entry of
    ``SUITES`` is planned, costed (its sizes and throughputs) and written with its module's docstring."""
    import types

    from vitplast.suites import SUITES, Sizes, Suite, SuiteOptions
    from vitplast.sweep import parse_sweep
    from vitplast.sweep.spec import SweepSpec

    def build(o: SuiteOptions, dry_run: bool, root: Path | None) -> SweepSpec:
        assert dry_run and o.model == "micro" and o.steps == 3000
        return parse_sweep({"name": "toy", "models": [o.model], "datasets": ["random:16"], "groups": ["mha"],
                            "lrs": [0.1, 0.2], "train": {"steps": o.steps, "batch_size": 4, "eval_every": 3000},
                            "probe": False, "plasticity": False})

    doc = types.ModuleType("toy", "A toy suite.\n\nTwo runs.")
    monkeypatch.setitem(SUITES, "toy", Suite("toy", build, lambda spec: Sizes(10, 5, 20),
                                             lambda model, group: (2.0, 10.0), "toy device", doc, overhead=1.0))
    out = tmp_path / "t"
    assert _run(["reproduce", "--suite", "toy", "--dry-run", "--steps", "3000", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    # per run: 3000 steps * 4 images / 2 per s + (1 validation * 5 + 20 test images) / 10 per s + 1 s = 6003.5 s
    hours = 2 * 6003.5 / 3600
    assert captured.out.strip() == f"2 runs, 6000 steps, {hours:.1f} toy device hours -> {out / 'sweep.yaml'}"
    err = " ".join(captured.err.split())
    assert "suite toy: 2 finetuning runs (6,000 steps, 24,000 training images), 0 probes, 0 plasticity analyses" in err
    assert f"grid toy: 2 runs, {hours:,.1f} toy device hours" in err
    text = (out / "sweep.yaml").read_text()
    assert text.startswith("# A toy suite.\n#\n# Two runs.\n\n")
    assert len(build_plan(load_sweep(out / "sweep.yaml")).tasks) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reproduce", "--suite", "nope", "--dry-run"], "--suite must be one of"),
        (["reproduce", "--suite", "paper", "--quick", "--dry-run"], "apply to the mini suite"),
        (["reproduce", "--suite", "mini", "--dry-run", "--steps", "0"], "--steps must be >= 1"),
        (["sweep", "--datasets", "random:8"], "--out DIR is required"),
        (["sweep", "--out", "X"], "at least --datasets"),
        (["sweep", "--out", "X", "--datasets", "random:8", "--executor", "slurm"], "--executor must be one of"),
        (["sweep", "--out", "X", "--datasets", "random:8", "--lrs", "a,b"], "--lrs takes a comma list"),
        (["sweep", "--out", "X", "--datasets", "random:8", "--max-concurrent", "0"], "--max-concurrent must be >= 1"),
        (["sweep", "--out", "X", "--datasets", "random:8", "--bundle", "0"], "--bundle must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _run(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "X").exists(), "nothing is written for bad input"


def test_file_and_flags_are_exclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("models: [micro]\ndatasets: [random:8]\n")
    assert _run(["sweep", str(f), "--out", str(tmp_path / "o"), "--lrs", "0.1"]) == 2
    assert "either as a sweep file or as flags" in capsys.readouterr().err


def test_ray_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name: str, *a: object, **k: object) -> object:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_ray)
    args = ["sweep", "--out", str(tmp_path / "o"), "--datasets", "random:8", "--no-probe"]
    assert _run([*args, "--executor", "ray"]) == 2
    assert "pip install 'vitplast[sweep]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_without_ray_the_default_falls_back_to_local_with_a_notice(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    import vitplast.sweep.runner as runner

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    seen: list[str] = []
    monkeypatch.setattr(runner, "prepare", lambda spec, out, executor, res: seen.append(executor) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["sweep", "--out", str(tmp_path / "o"), "--datasets", "random:8", "--no-probe"])
    assert seen == ["local"] and "Ray Tune is not installed" in capsys.readouterr().err


def test_ray_client_address_needs_the_client(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "ray" else None if name == "grpc" else real(name, *a))
    assert _run(["sweep", "--out", str(tmp_path / "o"), "--datasets", "random:8", "--address", "ray://h:10001"]) == 2
    assert "pip install 'ray[client]'" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--groups", ""], "'groups' must list at least one group"),
        (["--datasets", "mini:nosuch"], "unknown mini set"),
        (["--batch-size", "500"], "batch_size 500 is larger than the train split"),
        (["--augment", "zoom"], "augment must be one of"),
    ],
)
def test_sweeps_are_checked_against_their_data_before_any_task(
        extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sweep", "--out", str(tmp_path / "o"), "--executor", "local", "--models", "timm:vit_micro_patch4_32",
            "--random-weights", "--datasets", "random:16", "--groups", "ln1", "--steps", "1", "--no-probe"]
    flag, value = extra
    i = args.index(flag) if flag in args else None
    args = [*args[:i + 1], value, *args[i + 2:]] if i is not None else [*args, flag, value]
    assert _run(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("error:")]) == 1 and message in err[-1], err
    assert not (tmp_path / "o").exists(), "no sweep folder is left"


def test_reproduce_help_states_the_mini_suite_it_builds() -> None:
    """The numbers in ``reproduce --help`` (steps, seeds, the quick grid) are those of the runs the suite plans."""
    import typer

    from vitplast.cli import app, load_command
    from vitplast.suites import mini_suite

    load_command("reproduce")
    helps = {p.name: str(getattr(p, "help", "")) for p in typer.main.get_group(app).commands["reproduce"].params}

    def planned(quick: bool) -> tuple[set[int], list[int], int]:
        runs = build_plan(mini_suite(quick=quick, project=True)).of_kind("finetune")
        return ({t.config["steps"] for t in runs}, sorted({t.config["seed"] for t in runs}),
                len({t.config["data"] for t in runs}))

    steps, seeds, _ = planned(False)
    assert {int(re.findall(r"default (\d+)\)", helps["steps"])[0])} == steps
    assert [int(s) for s in re.findall(r"default ([\d,]+)\)", helps["seeds"])[0].split(",")] == seeds
    q_steps, q_seeds, q_data = planned(True)
    n, k, s = re.findall(r"\((\d+) data sets, (\d+) steps, seeds ([\d,]+)\)", helps["quick"])[0]
    assert (int(n), {int(k)}, [int(x) for x in s.split(",")]) == (q_data, q_steps, q_seeds)


@pytest.mark.parametrize(
    ("groups", "runs"),
    [("ln1@0,2,4,mha", [["ln1@0,2,4"], ["mha"]]), ("ln1@0, 2, 4 mha", [["ln1@0,2,4"], ["mha"]]),
     ("mha@8-11+ln2,fc1@11,9-10", [["mha@8-11", "ln2"], ["fc1@9-11"]]), ("mha,mha@2", [["mha"], ["mha@2"]]),
     ("ln1@0,2,4+mha", [["ln1@0,2,4", "mha"]]), ("full,ln-control,ln1+ln2", [["full"], ["ln-control"], ["ln1", "ln2"]])],
)
def test_groups_flag_splits_runs_at_a_comma_before_a_name(groups: str, runs: list[list[str]]) -> None:
    """``--groups``: a comma before a block index continues the unit set, ``+`` joins one run's set
    (docs/selectors.md); the planned runs train exactly those sets."""
    from vitplast.cli.sweep import grid_from_flags
    from vitplast.sweep.spec import parse_sweep

    grid = grid_from_flags("micro", "random:8", groups, None, None, None, {}, False, None, {})
    plan = build_plan(parse_sweep(grid))
    assert [t.config["train"] for t in plan.of_kind("finetune")] == runs


@pytest.mark.parametrize(
    ("groups", "message"),
    [("ln1,mha@3-1", "--groups: 'mha': the block range 3-1 runs backwards"),
     ("mha@,ln1", "--groups: 'mha@' names no block"), ("@3", "--groups: '@3' names no component"),
     ("mha@1-3,2", "--groups: 'mha@1-3,2' names block 2 of 'mha' twice"),
     ("mha+mha@2", "--groups: 'mha,mha@2' names 'mha' twice"), ("mha,mha", "'groups' lists the same value twice"),
     ("full@2", "'full' trains every parameter, it takes no block list"),
     ("ln-control@1", "'ln-control' is a control group drawn from every block"),
     ("2,mha", "--groups: '2': block '2' follows no COMPONENT@BLOCKS unit"),
     ("ln1@0,2,4,mha@6", "mha@6: timm:vit_micro_patch4_32 has 6 blocks, numbered 0-5")],
)
def test_bad_unit_sets_in_groups_are_one_line_exit_2_and_write_nothing(
        groups: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sweep", "--out", str(tmp_path / "o"), "--executor", "local", "--models", "timm:vit_micro_patch4_32",
            "--random-weights", "--datasets", "random:16", "--groups", groups, "--steps", "1", "--batch-size", "4",
            "--no-probe"]
    assert _run(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("error:")]) == 1 and message in err[-1], err
    assert not (tmp_path / "o").exists(), "no sweep folder is left"
