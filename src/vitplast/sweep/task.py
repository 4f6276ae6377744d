"""One sweep task, its id, and the registry of task kinds (a leaf module: it imports nothing else of the sweep).

A task's ``id`` is the first 12 hex digits of the SHA-256 of its kind's name and its identity config
(:func:`task_id`); execution options (device, loader workers, batch size of inference-only passes) are not part
of it. Re-running a sweep therefore finds its finished tasks again. A task is finished when its kind's result
file exists in its folder ``DIR/<kind subdir>/<id>/`` (written atomically as the task's last step).

A kind (:class:`TaskKind`) is the only place that knows what its tasks are: how they are planned from a sweep
spec, checked, run, packed, costed and turned into table rows. :func:`register` adds one; every other module
of the sweep iterates :func:`kinds` or asks :func:`kind_of` (the built-in kinds are in
:mod:`vitplast.sweep.kinds`; ``docs/contributing.md``, "A new sweep task kind").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pandas as pd

    from vitplast.sweep.spec import SweepSpec

ERROR_FILE = "error.txt"
#: ``(model spec, group) -> (train images/s, eval images/s)``, and ``data spec -> (train, val, test) sizes``
#: (:mod:`vitplast.suites.estimate`).
Throughput = Callable[[str, str], tuple[float, float]]
SplitSizes = Callable[[str], Any]


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
        """The task's kind: its folder, result file and ``run()``."""
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
        """The task's entry of ``plan.json`` (keys in this order)."""
        return {key: getattr(self, key) for key in ("kind", "id", "model", "dataset", "grid", "config", "options")}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Task:
        return Task(d["kind"], d["id"], d["config"], d["model"], d["dataset"], d["grid"], d.get("options", {}))

    def describe(self) -> str:
        return self.spec.describe(self)


class TaskKind:
    """A kind of sweep task. A subclass sets the class attributes and implements :meth:`plan` and :meth:`run`;
    every other method has a default that suits a task which trains nothing.

    ``name``: stored in ``plan.json`` and hashed into ids; ``subdir``: its folder in the sweep directory;
    ``result_file``: written atomically as the task's last step (its existence means done); ``config_cls``: the
    typed identity config (its fields are the keys hashed into the id); ``order``: where its tasks stand in a plan
    (smaller first; equal orders keep registration order); ``table``: the sweep table (``DIR/<table>.csv``) of its
    rows; ``result_numbers``: keys of the result file that the tables read as numbers (:func:`vitplast.reading.read_json`).
    """

    name: ClassVar[str]
    subdir: ClassVar[str]
    result_file: ClassVar[str] = "result.json"
    config_cls: ClassVar[type]
    order: ClassVar[int] = 0
    table: ClassVar[str]
    result_numbers: ClassVar[Mapping[str, type | tuple[type, ...]] | None] = None

    def config(self, task: Task) -> Any:
        """The task's typed config (refuses missing, unknown or mistyped keys)."""
        return self.config_cls(**task.config)

    def make(self, config: dict[str, Any], model: str, dataset: str, grid: str, **options: Any) -> Task:
        """A task of this kind."""
        return Task.make(self.name, config, model, dataset, grid, **options)

    def plan(self, spec: SweepSpec) -> Iterable[Task]:
        """The tasks of this kind in ``spec``, in plan order (duplicates are dropped by the plan)."""
        raise NotImplementedError

    def describe(self, task: Task) -> str:
        return f"{self.name} {task.model} / {task.dataset}"

    def resolve(self, task: Task, depths: Mapping[tuple[str, bool], int]) -> Task:
        """The task with its config resolved against its model's depth (``depths`` keyed by ``(model spec,
        random_weights)``); by default the task itself."""
        return task

    def check(self, task: Task, train_sizes: Mapping[str, int], depth: int) -> None:
        """Refuse (:class:`~vitplast.errors.VitplastError`) a task its model (``depth`` blocks) or data
        (``train_sizes``: images in the train split per data spec of the task) cannot run; by default nothing."""

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        raise NotImplementedError

    def run_bundle(self, tasks: list[Task], outs: list[Path], device: str, workers: int | None,
                   eval_batch_size: int | None) -> None:
        """Run several tasks of this kind together (packed by :meth:`bundle_key`); by default one after the other."""
        for t, out in zip(tasks, outs, strict=True):
            self.run(t, out, device, workers, eval_batch_size)

    def bundle_key(self, task: Task) -> tuple[Hashable, str] | None:
        """``(key, group)``: tasks of equal key may run as one bundle, those of one group packed together first;
        None (the default): the task runs alone."""
        return None

    def interrupted(self, task: Task, root: Path) -> bool:
        """Whether an unfinished task left a state its next run continues from (default: never)."""
        return False

    def row(self, task: Task, root: Path, result: dict[str, Any]) -> dict[str, Any]:
        """The task's own columns of its table row (``result``: its result file, empty when not done)."""
        return {k: v for k, v in result.items() if not isinstance(v, dict | list)}

    def tables(self, tasks: list[Task], root: Path) -> dict[str, pd.DataFrame]:
        """Further sweep tables built from the folders of ``tasks`` (name -> frame); by default none."""
        return {}

    def cost(self, task: Task, sizes: SplitSizes, throughput: Throughput) -> tuple[float, int, int]:
        """``(device seconds, training steps, training images)`` of the task (:mod:`vitplast.suites.estimate`)."""
        raise NotImplementedError


_KINDS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    """Add a task kind (its ``name`` must be new)."""
    if kind.name in _KINDS:
        raise ValueError(f"task kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> TaskKind:
    """The registered kind called ``name``."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown task kind {name!r} (known: {', '.join(_KINDS)})") from None


def kinds() -> list[TaskKind]:
    """The registered kinds in registration order."""
    return list(_KINDS.values())
