"""A sweep expanded into tasks, and where each task lives in the sweep directory.

Each registered task kind (:mod:`vitplast.sweep.kinds`: ``finetune`` runs in ``DIR/runs/<id>/``, linear probes
in ``DIR/probes/<id>/``, plasticity analyses in ``DIR/plasticity/<id>/``) plans its tasks from the spec; the plan
puts them in the kinds' ``order`` and keeps each id once. Ids (:func:`vitplast.sweep.task.task_id`) hash a task's
kind and identity config, never how it executes, so the same run shared by two sweeps (or two grids) has one
directory and re-running a sweep finds its finished tasks again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vitplast.sweep.kinds  # noqa: F401  (registers the built-in kinds)
from vitplast.io import write_json_atomic, write_text_atomic
from vitplast.sweep.spec import SweepSpec
from vitplast.sweep.task import Task, TaskKind, kinds

PLAN_FILE = "plan.json"
SPEC_FILE = "sweep.yaml"

@dataclass
class Plan:
    """The tasks of a sweep, in execution order: kind by kind in their ``order`` (probes and analyses first: short,
    and they build the data caches the runs then share), each kind's tasks in the order it planned them."""

    name: str
    tasks: list[Task]

    def of_kind(self, kind: str | TaskKind) -> list[Task]:
        name = kind if isinstance(kind, str) else kind.name
        return [t for t in self.tasks if t.kind == name]

    def counts(self) -> dict[str, int]:
        """Tasks per registered kind."""
        return {k.name: len(self.of_kind(k)) for k in kinds()}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tasks": [t.to_dict() for t in self.tasks]}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Plan:
        return Plan(d["name"], [Task.from_dict(t) for t in d["tasks"]])

    def save(self, root: Path, spec: SweepSpec) -> None:
        write_text_atomic(Path(root) / SPEC_FILE, spec.to_yaml())
        write_json_atomic(Path(root) / PLAN_FILE, self.to_dict())

    def resolved(self, depths: Mapping[tuple[str, bool], int]) -> Plan:
        """The plan with each task resolved by its kind against its model's depth (:meth:`TaskKind.resolve`,
        ``depths`` from :func:`~vitplast.sweep.preflight.preflight`; a finetuning run's unit set naming every
        block becomes its group, so the run gets that group's id), each id kept once."""
        tasks: dict[str, Task] = {}
        for t in self.tasks:
            t = t.spec.resolve(t, depths)
            tasks.setdefault(t.id, t)
        return Plan(self.name, list(tasks.values()))

    @staticmethod
    def load(root: Path) -> Plan:
        """The plan in ``root/plan.json``, checked: each task of a known kind, a 12-hex-digit id (its folder
        name) and a config its kind accepts; anything else is a one-line error naming the file."""
        from vitplast.errors import VitplastError
        from vitplast.reading import read_json

        path = Path(root) / PLAN_FILE
        if not path.is_file():
            raise VitplastError(f"{root} is not a sweep directory (no {PLAN_FILE}); run `vitplast sweep` first")
        data = read_json(path)
        try:
            plan = Plan.from_dict(data)
            for t in plan.tasks:
                if t.kind not in {k.name for k in kinds()} or not re.fullmatch(r"[0-9a-f]{12}", t.id):
                    raise ValueError(f"task {t.id!r} of kind {t.kind!r}")
                if not all(isinstance(v, str) for v in (t.model, t.dataset, t.grid)) or not isinstance(t.options, dict):
                    raise ValueError(f"task {t.id}: model, dataset and grid must be text, options a mapping")
                t.spec.config(t)  # builds the kind's typed config: refuses missing, unknown or mistyped keys
        except (KeyError, TypeError, ValueError, AttributeError, VitplastError) as exc:
            detail = " ".join(str(exc).split())[:160]
            raise VitplastError(f"{path} is not a vitplast sweep plan ({type(exc).__name__}: {detail})") from None
        return plan


def build_plan(spec: SweepSpec) -> Plan:
    """Every registered kind's tasks of ``spec`` (:meth:`TaskKind.plan`), kinds in their ``order``; a task
    planned twice (the same id from two grids) is kept once, with the first grid's labels."""
    tasks: dict[str, Task] = {}
    for kind in sorted(kinds(), key=lambda k: k.order):
        for t in kind.plan(spec):
            tasks.setdefault(t.id, t)
    return Plan(spec.name, list(tasks.values()))
