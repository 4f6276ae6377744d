"""Sweeps survive SIGKILL (no finished run repeated or lost) and record failing runs without stopping.

Tiny runs: the micro-ViT architecture with random weights on ``random`` images, 2 steps of batch 8.
The in-process executor is used for the kill test; one ``heavy`` test does the same through Ray Tune
(in CI without the kill).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import heavy_scale
from vitplast.sweep import Resources, build_plan, parse_sweep, run_sweep, sweep_status
from vitplast.sweep.execute import log_event, read_events, reconcile_events, task_lock

MODEL = "timm:vit_micro_patch4_32"
#: The sweep of :data:`FLAGS` as a mapping.
SPEC = {"models": [MODEL], "datasets": ["random:16"], "groups": ["mha", "ln1"], "lrs": [0.01, 0.03],
        "train": {"steps": 2, "batch_size": 8, "eval_every": 2, "random_weights": True}, "probe": False,
        "plasticity": False, "run": {"device": "cpu"}}
FLAGS = ["--models", MODEL, "--random-weights", "--datasets", "random:16", "--groups", "mha,ln1",
         "--lrs", "0.01,0.03", "--steps", "2", "--batch-size", "8", "--eval-every", "2", "--no-probe",
         "--device", "cpu", "--cpus-per-trial", "1"]


def _sweep_cmd(out: Path, executor: str) -> list[str]:
    return [sys.executable, "-m", "vitplast.cli", "sweep", "--out", str(out), "--executor", executor, *FLAGS]


def _finished(out: Path) -> dict[str, tuple[int, bytes]]:
    """run id -> (mtime_ns, content) of every result.json."""
    return {p.parent.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "runs").glob("*/result.json")}


def _kill_after_first_result(out: Path, executor: str, timeout: float = 300) -> dict[str, tuple[int, bytes]]:
    proc = subprocess.Popen(_sweep_cmd(out, executor), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    t0 = time.time()
    try:
        while not _finished(out):
            if proc.poll() is not None:
                raise AssertionError(f"the sweep ended before the kill: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            if time.time() - t0 > timeout:
                raise AssertionError("no run finished in time")
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return _finished(out)


def _check_resumed(out: Path, before: dict[str, tuple[int, bytes]], executor: str) -> None:
    """Run the sweep again (the command, in a new process) and check it repeats and loses nothing."""
    assert before, "at least one run had finished at the kill"
    res = subprocess.run(_sweep_cmd(out, executor), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    _check_complete(out, before)


def _check_complete(out: Path, before: dict[str, tuple[int, bytes]]) -> None:
    """Every planned run is finished once; those finished in ``before`` are unchanged; the table holds them all."""
    after = _finished(out)
    assert len(after) == 4, "every planned run is finished after the re-run"
    for run_id, stamp in before.items():
        assert after[run_id] == stamp, f"finished run {run_id} was redone or changed"
    done = collections.Counter(e["id"] for e in read_events(out) if e["event"] == "done")
    # a SIGKILL between a run's result.json and its "done" event leaves that event out; the re-run appends it
    assert set(done) == set(after) and max(done.values()) == 1, done
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 and set(table["status"]) == {"done"}
    for _, row in table.iterrows():
        result = json.loads((out / row["run_dir"] / "result.json").read_text())
        assert row["test_acc"] == pytest.approx(result["test_acc"])
        assert row["trainable_params"] == result["trainable_params"]


def test_killed_local_sweep_resumes_without_repeating_or_losing_runs(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    before = _kill_after_first_result(out, "local")
    st = sweep_status(out)
    assert st.counts("finetune")["done"] == len(before)
    _check_resumed(out, before, "local")


@pytest.mark.heavy
def test_killed_ray_sweep_resumes_without_repeating_or_losing_runs(tmp_path: Path) -> None:
    """Full: the Ray sweep (the command, in a new process) killed after its first result resumes. Reduced (CI; in
    this process, without two interpreters starting torch): the Ray sweep runs to its end (4 runs, more than the
    concurrent trials), and run again it repeats and loses nothing, without starting Ray (nothing is left to run)."""
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    if heavy_scale() == "full":
        before = _kill_after_first_result(out, "ray", timeout=600)
        time.sleep(2)  # workers of the killed driver may finish their run; locks keep them out of each other's way
        _check_resumed(out, _finished(out) | before, "ray")
    else:
        import ray

        spec = parse_sweep(SPEC)
        first = run_sweep(spec, out, executor="ray", resources=Resources(cpus_per_trial=1))
        assert (first.ran, first.failed, first.pending) == (4, [], 0) and not ray.is_initialized()
        before = _finished(out)
        again = run_sweep(spec, out, executor="ray", resources=Resources(cpus_per_trial=1))
        assert (again.ran, again.skipped, again.failed, again.pending) == (0, 4, [], 0)
        _check_complete(out, before)
    assert (out / ".ray").is_dir(), "Tune's own files go to DIR/.ray"
    assert not list(out.rglob("events.out.tfevents*")), "no TensorBoard files"


def test_reconcile_appends_the_done_event_a_kill_left_out(tmp_path: Path) -> None:
    spec = parse_sweep({"models": [MODEL], "datasets": ["random:16"], "groups": ["ln1", "mha", "fc1", "fc2"],
                        "lrs": [0.01], "seeds": [0], "probe": False, "plasticity": False})
    cut, unfinished, clean, busy = build_plan(spec).tasks
    for t in (cut, unfinished, clean, busy):
        log_event(tmp_path, t, "start")
    for t in (cut, clean, busy):  # their result files were written
        t.result_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
        t.result_path(tmp_path).write_text("{}")
    log_event(tmp_path, clean, "done")
    tasks = [cut, unfinished, clean, busy]
    with task_lock(tmp_path, busy.id):  # someone is still finishing it (flock: per open file): not ours to mark
        assert reconcile_events(tmp_path, tasks) == [cut.id]
    assert reconcile_events(tmp_path, tasks) == [busy.id]  # lock released
    assert reconcile_events(tmp_path, tasks) == []
    done = [e for e in read_events(tmp_path) if e["event"] == "done"]
    assert [(e["id"], e.get("recovered", False)) for e in done] == [(clean.id, False), (cut.id, True), (busy.id, True)]


def test_failing_run_is_recorded_and_does_not_stop_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vitplast.sweep.preflight as pf

    monkeypatch.setattr(pf, "preflight", lambda plan, progress=None: {})  # let the bad run reach the executor
    missing = tmp_path / "no-such-folder"
    spec = parse_sweep({
        "models": [MODEL], "datasets": ["random:16", f"folder:{missing}"], "groups": ["ln1"], "lrs": [0.01],
        "seeds": [0], "train": {"steps": 2, "batch_size": 8, "eval_every": 2, "random_weights": True},
        "probe": False, "plasticity": False, "run": {"device": "cpu"},
    })
    out = tmp_path / "sweep"
    outcome = run_sweep(spec, out, executor="local")
    assert len(outcome.failed) == 1 and outcome.ran == 1
    bad = outcome.failed[0]
    assert bad.config["data"] == f"folder:{missing}"
    first = bad.error_path(out).read_text().splitlines()[0]
    assert first.startswith("VitplastError") and "no-such-folder" in first
    table = pd.read_csv(out / "results.csv")
    by_status = table.set_index("status")
    assert set(table["status"]) == {"done", "failed"}
    assert "no-such-folder" in by_status.loc["failed", "error"]
    assert by_status.loc["done", "test_acc"] >= 0
    assert sweep_status(out).counts("finetune") == {"done": 1, "running": 0, "failed": 1, "interrupted": 0, "pending": 0}

    starts = lambda: sum(e["event"] == "start" for e in read_events(out))  # noqa: E731
    n = starts()
    again = run_sweep(spec, out, executor="local", retry_failed=False)
    assert starts() == n and again.ran == 0 and again.skipped == 1 and len(again.failed) == 1
    run_sweep(spec, out, executor="local")  # retried: fails again, the finished run is not touched
    assert starts() == n + 1


def test_status_and_exit_code_of_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import vitplast.sweep.preflight as pf
    from vitplast.cli import main

    monkeypatch.setattr(pf, "preflight", lambda plan, progress=None: {})  # a task that fails at run time

    out = tmp_path / "sweep"
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--out", str(out), "--executor", "local", "--models", MODEL, "--random-weights",
              "--datasets", f"folder:{tmp_path / 'missing'}", "--groups", "ln1", "--steps", "1", "--batch-size", "4",
              "--no-probe", "--device", "cpu"])
    assert exc.value.code == 1
    main(["sweep", "--status", str(out)])
    text = capsys.readouterr().out
    assert "failed" in text and "missing" in text
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--status", str(tmp_path / "nothing")])
    assert exc.value.code == 2
