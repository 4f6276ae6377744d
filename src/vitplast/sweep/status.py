"""Where a sweep stands: the state of each planned task, read from the sweep directory only.

States: ``done`` (result file present), ``running`` (another process holds the task's lock),
``failed`` (``error.txt`` present, no result), ``interrupted`` (no result, but a state the next sweep
continues from, e.g. a finetuning run's resume checkpoint: :meth:`~vitplast.sweep.task.TaskKind.interrupted`),
``pending`` (nothing yet).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vitplast.sweep.execute import is_running
from vitplast.sweep.plan import Plan
from vitplast.sweep.task import Task, TaskKind, kinds

STATES: tuple[str, ...] = ("done", "running", "failed", "interrupted", "pending")


def task_state(task: Task, root: Path) -> str:
    """The state of ``task`` in sweep directory ``root`` (module docstring)."""
    if task.is_done(root):
        return "done"
    if is_running(root, task.id):
        return "running"
    if task.error_path(root).is_file():
        return "failed"
    if task.spec.interrupted(task, root):
        return "interrupted"
    return "pending"


def first_error_line(task: Task, root: Path) -> str:
    path = task.error_path(root)
    if not path.is_file():
        return ""
    lines = path.read_text(errors="replace").splitlines()
    return lines[0] if lines else ""


@dataclass
class SweepStatus:
    root: Path
    plan: Plan
    states: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    extra_dirs: list[Path] = field(default_factory=list)

    def counts(self, kind: str | TaskKind | None = None) -> dict[str, int]:
        """Number of tasks per state (all kinds, or one)."""
        c = Counter(self.states[t.id] for t in (self.plan.tasks if kind is None else self.plan.of_kind(kind)))
        return {s: c.get(s, 0) for s in STATES}

    @property
    def complete(self) -> bool:
        return all(s == "done" for s in self.states.values())

    def failed(self) -> list[Task]:
        return [t for t in self.plan.tasks if self.states[t.id] == "failed"]


def sweep_status(root: str | Path) -> SweepStatus:
    """Read the plan of sweep directory ``root`` and the state of every task."""
    root = Path(root)
    plan = Plan.load(root)
    states = {t.id: task_state(t, root) for t in plan.tasks}
    errors = {t.id: first_error_line(t, root) for t in plan.tasks if states[t.id] == "failed"}
    planned = {t.id for t in plan.tasks}
    extra = []
    for kind in kinds():
        d = root / kind.subdir
        if d.is_dir():
            extra += [p for p in sorted(d.iterdir()) if p.is_dir() and p.name not in planned]
    return SweepStatus(root, plan, states, errors, extra)
