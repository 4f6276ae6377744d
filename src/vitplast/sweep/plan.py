"""A sweep expanded into tasks, and where each task lives in the sweep directory.

Three kinds of task: ``finetune`` (one :class:`~vitplast.train.TrainConfig`, in ``DIR/runs/<id>/``),
``probe`` (linear probe once per (model, dataset), in ``DIR/probes/<id>/``) and ``plasticity`` (the
analysis once per (model, dataset), in ``DIR/plasticity/<id>/``). A task's ``id`` is the first 12 hex
digits of the SHA-256 of its kind and identity config (canonical JSON); execution options (device,
loader workers, batch size of inference-only passes) are not part of it. Re-running a sweep therefore
finds its finished tasks again, and the same run shared by two sweeps (or two grids) has one directory.
A task is finished when its result file exists (written atomically as its last step).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitplast.io import write_json_atomic, write_text_atomic
from vitplast.sweep.kinds import AnalysisTask, ProbeTask, TaskKind, identity, kind_of
from vitplast.sweep.spec import SweepSpec

KINDS: tuple[str, ...] = ("probe", "plasticity", "finetune")
ERROR_FILE = "error.txt"
PLAN_FILE = "plan.json"
SPEC_FILE = "sweep.yaml"


def task_id(kind: str, config: dict[str, Any]) -> str:
    """Stable id of a task: sha256 of ``{"kind": kind, "config": config}`` as sorted-key JSON, 12 hex digits."""
    blob = json.dumps({"kind": kind, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Task:
    """One unit of work. ``config``: its identity; ``options``: how to execute it (not hashed)."""

    kind: str
    id: str
    config: dict[str, Any]
    model: str
    dataset: str
    grid: str
    options: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def make(kind: str, config: dict[str, Any], model: str, dataset: str, grid: str, **options: Any) -> Task:
        return Task(kind, task_id(kind, config), config, model, dataset, grid, dict(options))

    @property
    def spec(self) -> TaskKind:
        """The task's kind (:mod:`vitplast.sweep.kinds`): its folder, result file and ``run()``."""
        return kind_of(self.kind)

    def dir(self, root: Path) -> Path:
        return Path(root) / self.spec.subdir / self.id

    def result_path(self, root: Path) -> Path:
        return self.dir(root) / self.spec.result_file

    def error_path(self, root: Path) -> Path:
        return self.dir(root) / ERROR_FILE

    def is_done(self, root: Path) -> bool:
        return self.result_path(root).is_file()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "model": self.model,
            "dataset": self.dataset,
            "grid": self.grid,
            "config": self.config,
            "options": self.options,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Task:
        return Task(d["kind"], d["id"], d["config"], d["model"], d["dataset"], d["grid"], d.get("options", {}))

    def describe(self) -> str:
        return self.spec.describe(self)


@dataclass
class Plan:
    """The tasks of a sweep, in execution order: analyses and probes first (short, and they build the data
    caches the runs then share), then the finetuning runs in the order of :meth:`Grid.runs`."""

    name: str
    tasks: list[Task]

    def of_kind(self, kind: str) -> list[Task]:
        return [t for t in self.tasks if t.kind == kind]

    def counts(self) -> dict[str, int]:
        return {k: len(self.of_kind(k)) for k in KINDS}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tasks": [t.to_dict() for t in self.tasks]}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Plan:
        return Plan(d["name"], [Task.from_dict(t) for t in d["tasks"]])

    def save(self, root: Path, spec: SweepSpec) -> None:
        write_text_atomic(Path(root) / SPEC_FILE, spec.to_yaml())
        write_json_atomic(Path(root) / PLAN_FILE, self.to_dict())

    def resolved(self, depths: Mapping[tuple[str, bool], int]) -> Plan:
        """The plan with each finetuning run's unit sets resolved against its model's depth
        (:func:`vitplast.units.resolve`, ``depths`` from :func:`~vitplast.sweep.preflight.preflight`): a unit set
        naming every block becomes its group, so the run gets that group's id (and is kept once)."""
        from vitplast.units import resolve

        tasks: dict[str, Task] = {}
        for t in self.tasks:
            if t.kind == "finetune" and any("@" in g for g in t.config["train"]):
                key = (str(t.config["model"]), bool(t.config.get("random_weights", False)))
                config = {**t.config, "train": list(resolve(t.config["train"], depths[key]))}
                t = Task.make(t.kind, config, t.model, t.dataset, t.grid, **t.options)
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
                if t.kind not in KINDS or not re.fullmatch(r"[0-9a-f]{12}", t.id):
                    raise ValueError(f"task {t.id!r} of kind {t.kind!r}")
                if not all(isinstance(v, str) for v in (t.model, t.dataset, t.grid)) or not isinstance(t.options, dict):
                    raise ValueError(f"task {t.id}: model, dataset and grid must be text, options a mapping")
                t.spec.config(t)  # builds the kind's typed config: refuses missing, unknown or mistyped keys
        except (KeyError, TypeError, ValueError, AttributeError, VitplastError) as exc:
            detail = " ".join(str(exc).split())[:160]
            raise VitplastError(f"{path} is not a vitplast sweep plan ({type(exc).__name__}: {detail})") from None
        return plan


def build_plan(spec: SweepSpec) -> Plan:
    """Expand every grid of ``spec`` (duplicates across grids kept once, with the first grid's labels)."""
    pre: dict[str, Task] = {}
    runs: dict[str, Task] = {}
    for grid in spec.grids:
        for model in grid.models:
            for ds in grid.datasets:
                random_weights = bool(grid.settings(ds).get("random_weights", False))
                if spec.probe is not None:
                    pcfg = identity(ProbeTask(model.spec, ds.spec, spec.probe.C, random_weights))
                    t = Task.make("probe", pcfg, model.label, ds.label, grid.name, batch_size=spec.probe.batch_size)
                    pre.setdefault(t.id, t)
                if spec.plasticity is not None:
                    p = spec.plasticity
                    acfg = identity(AnalysisTask(model.spec, p.source, ds.spec, p.pairs, p.mode, p.seed, random_weights,
                                                 p.bounds))
                    t = Task.make("plasticity", acfg, model.label, ds.label, grid.name, batch_size=p.batch_size)
                    pre.setdefault(t.id, t)
        for model, ds, cfg in grid.runs():
            t = Task.make("finetune", cfg.to_dict(), model.label, ds.label, grid.name)
            runs.setdefault(t.id, t)
    pre_sorted = sorted(pre.values(), key=lambda t: KINDS.index(t.kind))
    return Plan(spec.name, [*pre_sorted, *runs.values()])
