"""The tidy tables of a sweep, rebuilt from its task directories (never from a cache).

Every registered task kind (:mod:`vitplast.sweep.kinds`) gives one row per planned task in its table: ``id``,
``status``, ``grid``, labels (``model_label``, ``dataset``) and ``error``, then the kind's own columns
(:meth:`~vitplast.sweep.task.TaskKind.row`), and may add further tables from its tasks' folders. The built-in
kinds write:

* ``results.csv``: one row per planned finetuning run: ``group`` (``mha``, ``ln1+ln2``, ``full``), every
  :class:`~vitplast.train.TrainConfig` field, and every field of the run's ``result.json``
  (``steps`` done is ``steps_done``; per-group trainable counts become ``trainable_params_<group>``;
  each extra evaluation becomes ``eval_<data>_<split>_acc`` / ``_loss``) and ``run_dir``;
* ``probes.csv``: one row per linear probe (config, result, status);
* ``starts.csv``: one row per LP-FT start (the finetuning runs' fitted head before any step; config, result with
  ``val_acc`` and ``test_acc``, status);
* ``plasticity.csv``: the per-layer tables of all finished analyses with their model and dataset labels;
* ``bounds.csv``: the bounds tables written by the analyses (when bounds were computed);
* ``analyses.csv``: one row per analysis: pairs used, measured ranking and its Spearman with the theory,
  and (with bounds) the per-pair check (comparisons, violations) and the bounds' ranking.

Because every task's result file is written atomically as its last step, the tables are exact after any
interruption: a run is either in them with all its results or listed as not done.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from vitplast.errors import VitplastError
from vitplast.io import write_text_atomic
from vitplast.reading import read_json
from vitplast.sweep.kinds import FINETUNE
from vitplast.sweep.plan import Plan
from vitplast.sweep.status import first_error_line, task_state
from vitplast.sweep.task import Task, kinds

#: File names of the tables whose :class:`SweepTables` field is named otherwise.
_FIELDS = {"results": "runs"}


@dataclass
class SweepTables:
    """The sweep's tables, each written as ``DIR/<name>.csv`` (``runs`` as ``results.csv``); ``extra``: the
    tables of further task kinds, by name."""

    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    probes: pd.DataFrame = field(default_factory=pd.DataFrame)
    starts: pd.DataFrame = field(default_factory=pd.DataFrame)
    plasticity: pd.DataFrame = field(default_factory=pd.DataFrame)
    bounds: pd.DataFrame = field(default_factory=pd.DataFrame)
    analyses: pd.DataFrame = field(default_factory=pd.DataFrame)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    @staticmethod
    def from_frames(frames: dict[str, pd.DataFrame]) -> SweepTables:
        """The tables from ``{file name: table}``."""
        known = {f.name for f in fields(SweepTables)} - {"extra"}
        named = {_FIELDS.get(k, k): v for k, v in frames.items()}
        return SweepTables(**{k: v for k, v in named.items() if k in known},
                           extra={k: v for k, v in frames.items() if _FIELDS.get(k, k) not in known})

    def files(self) -> dict[str, pd.DataFrame]:
        """``{file name: table}`` of every table."""
        names = {v: k for k, v in _FIELDS.items()}
        return {names.get(f.name, f.name): getattr(self, f.name) for f in fields(self) if f.name != "extra"} | self.extra


def task_row(task: Task, root: Path) -> dict[str, Any]:
    """One row of the task's table (module docstring); its result file is read with its kind's
    ``result_numbers`` (:func:`~vitplast.reading.read_json`)."""
    state = task_state(task, root)
    row = {"id": task.id, "status": state, "grid": task.grid, "model_label": task.model, "dataset": task.dataset,
           "error": first_error_line(task, root) if state == "failed" else ""}
    kind = task.spec
    result = read_json(task.result_path(root), kind.result_numbers) if state == "done" else {}
    return row | kind.row(task, root, result)


def _rows(tasks: list[Task], root: Path) -> pd.DataFrame:
    """:func:`task_row` of every task; a result file whose values have the wrong types is a one-line error naming it."""
    out = []
    for t in tasks:
        try:
            out.append(task_row(t, root))
        except (AttributeError, TypeError, ValueError) as exc:
            raise VitplastError(f"{t.result_path(root)} is not a vitplast result ({' '.join(str(exc).split())})") from None
    return pd.DataFrame(out)


def collect(root: str | Path, plan: Plan | None = None) -> SweepTables:
    """Build the tables of the sweep in ``root`` (from ``plan`` or ``DIR/plan.json``; module docstring)."""
    root = Path(root)
    plan = plan or Plan.load(root)
    frames: dict[str, pd.DataFrame] = {}
    for kind in kinds():
        tasks = plan.of_kind(kind)
        frames[kind.table] = _rows(tasks, root)
        frames.update(kind.tables(tasks, root))
    return SweepTables.from_frames(frames)


def write_tables(root: str | Path, plan: Plan | None = None, tables: SweepTables | None = None) -> SweepTables:
    """:func:`collect` (unless ``tables`` were collected already) and write every table as ``DIR/<name>.csv``
    atomically."""
    root = Path(root)
    tables = tables if tables is not None else collect(root, plan)
    for name, df in tables.files().items():
        write_text_atomic(root / f"{name}.csv", df.to_csv(index=False))
    return tables


def read_metrics(root: Path, run_id: str) -> list[dict[str, Any]]:
    """The ``metrics.jsonl`` rows of run ``run_id`` (:meth:`RunDir.read_metrics`)."""
    from vitplast.train.rundir import RunDir

    return RunDir(Path(root) / FINETUNE.subdir / run_id).read_metrics()
