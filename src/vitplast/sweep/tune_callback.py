"""The driver-side Tune callback of the Ray executor (imported only when Ray is installed and used)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from vitplast.sweep.execute import record_error
from vitplast.sweep.task import Task


class TrialEnd(tune.Callback):
    """Forward each trial's end to ``on_done(task, outcome)`` for every task of its pack; a task a trial ended
    without an outcome for, or whose worker died, is recorded as failed.

    Tune pickles its callbacks into ``tuner.pkl`` (for ``Tuner.restore``, which sweeps never use: their state
    is the task directories); the driver-side hooks are not picklable and are left out of the pickle.
    """

    def __init__(self, by_id: dict[str, list[Task]], root: Path,
                 on_done: Callable[[Task, dict[str, Any]], None]) -> None:
        self.by_id, self.root, self.on_done = by_id, root, on_done

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        got = {o.get("id"): o for o in (trial.last_result or {}).get("outcomes") or []}
        for task in self.by_id[trial.config["id"]]:
            outcome = got.get(task.id)
            if outcome is None or "status" not in outcome:  # the trainable returned nothing: a worker failure
                outcome = {"id": task.id, "status": "failed", "skipped": False, "seconds": 0.0,
                           "error": "the trial ended without a result"}
                record_error(self.root, task, outcome["error"])
            self.on_done(task, outcome)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        details = ""
        path = getattr(trial, "error_file", None)
        if path and Path(path).is_file():
            details = Path(path).read_text()
        lines = [ln for ln in details.splitlines() if ln.strip()]
        message = lines[-1] if lines else "the Ray worker running this task died"
        for task in self.by_id[trial.config["id"]]:
            if task.is_done(self.root):  # a member the bundle finished before the worker died
                self.on_done(task, {"id": task.id, "status": "done", "skipped": False, "seconds": 0.0, "error": ""})
                continue
            record_error(self.root, task, f"RayTrialError: {message}", details)
            self.on_done(task, {"id": task.id, "status": "failed", "skipped": False, "seconds": 0.0, "error": message})
