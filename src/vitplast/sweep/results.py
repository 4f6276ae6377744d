"""The tidy tables of a sweep, rebuilt from its task directories (never from a cache).

* ``results.csv``: one row per planned finetuning run: ``id``, ``status``, ``grid``, labels
  (``model_label``, ``dataset``), ``group`` (``mha``, ``ln1+ln2``, ``full``), every
  :class:`~vitplast.train.TrainConfig` field, and every field of the run's ``result.json``
  (``steps`` done is ``steps_done``; per-group trainable counts become ``trainable_params_<group>``;
  each extra evaluation becomes ``eval_<data>_<split>_acc`` / ``_loss``), ``error`` and ``run_dir``;
* ``probes.csv``: one row per linear probe (config, result, status);
* ``plasticity.csv``: the per-layer tables of all finished analyses with their model and dataset labels;
* ``bounds.csv``: the bounds tables written by the analyses (when bounds were computed);
* ``analyses.csv``: one row per analysis: pairs used, measured ranking and its Spearman with the theory,
  and (with bounds) the per-pair check (comparisons, violations) and the bounds' ranking.

Because every task's result file is written atomically as its last step, the tables are exact after any
interruption: a run is either in them with all its results or listed as not done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vitplast.errors import VitplastError
from vitplast.io import write_text_atomic
from vitplast.reading import BOUNDS_TABLE, NUMBER, NUMBER_OR_NULL, PLASTICITY_TABLE, read_json, read_table
from vitplast.sweep.plan import Plan, Task
from vitplast.sweep.status import first_error_line, task_state

#: result.json keys that repeat a config field (the config's value is kept) or are renamed.
_DUPLICATES = {"model", "data", "train", "lr", "optimizer", "seed"}


@dataclass
class SweepTables:
    runs: pd.DataFrame
    probes: pd.DataFrame
    plasticity: pd.DataFrame
    bounds: pd.DataFrame
    analyses: pd.DataFrame


#: Keys of a task's result file that the report reads as numbers, per task kind (``null``: not measured).
RESULT_NUMBERS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "finetune": {"test_acc": NUMBER_OR_NULL, "best_val_acc": NUMBER_OR_NULL}, "probe": {"test_acc": NUMBER}}


def _result(task: Task, root: Path) -> dict[str, Any]:
    """The result file of a finished task (:func:`~vitplast.reading.read_json` with :data:`RESULT_NUMBERS`)."""
    return read_json(task.result_path(root), RESULT_NUMBERS.get(task.kind))


def _base(task: Task, root: Path) -> dict[str, Any]:
    state = task_state(task, root)
    return {
        "id": task.id,
        "status": state,
        "grid": task.grid,
        "model_label": task.model,
        "dataset": task.dataset,
        "error": first_error_line(task, root) if state == "failed" else "",
    }


def run_row(task: Task, root: Path) -> dict[str, Any]:
    """One ``results.csv`` row (module docstring)."""
    row = _base(task, root)
    cfg = dict(task.config)
    row["group"] = "+".join(cfg["train"])
    row.update({k: (",".join(v) if k == "train" else v) for k, v in cfg.items()})
    res = _result(task, root) if row["status"] == "done" else {}
    for k, v in res.items():
        if k in _DUPLICATES:
            continue
        if k == "steps":
            row["steps_done"] = v
        elif k == "trainable_params_per_group" and isinstance(v, dict):
            row.update({f"trainable_params_{g}": n for g, n in v.items()})
        elif k == "evaluations" and isinstance(v, list):
            for e in v:
                key = f"eval_{e.get('data')}_{e.get('split')}"
                row[f"{key}_acc"], row[f"{key}_loss"] = e.get("acc"), e.get("loss")
        elif not isinstance(v, (dict, list)):
            row[k] = v
    row["run_dir"] = str(task.dir(root).relative_to(root))
    return row


def probe_row(task: Task, root: Path) -> dict[str, Any]:
    row = _base(task, root)
    row.update({"model": task.config["model"], "data": task.config["data"],
                "random_weights": task.config["random_weights"], "C_requested": task.config["C"]})
    res = _result(task, root) if row["status"] == "done" else {}
    row.update({k: v for k, v in res.items() if k not in ("model", "data", "train") and not isinstance(v, (dict, list))})
    return row


def analysis_row(task: Task, root: Path) -> dict[str, Any]:
    """One ``analyses.csv`` row from the analysis's ``plasticity.json``."""
    row = _base(task, root)
    row.update({"model": task.config["model"], "source": task.config["source"], "data": task.config["target"],
                "pairs_requested": task.config["pairs"], "mode": task.config["mode"]})
    rec = _result(task, root) if row["status"] == "done" else {}
    if not rec:
        return row
    row.update({"pairs_used": rec.get("pairs_used"), "pairs_skipped": rec.get("pairs_skipped"),
                "seconds": rec.get("seconds_total")})
    b = rec.get("bounds") or {}
    rk = b.get("ranking") or {}
    row.update({"measured_ranking": " > ".join(rk.get("measured", [])), "spearman_theory": rk.get("spearman"),
                "bound_ranking": " > ".join(rk.get("bound_ranking", [])),
                "spearman_bounds_theory": rk.get("spearman_bounds_theory")})
    check = b.get("check") or {}
    if check:
        row.update({"bound_comparisons": check.get("comparisons"), "bound_violations": check.get("violations"),
                    "bounds_all_hold": check.get("all_hold")})
    return row


def _analysis_tables(tasks: list[Task], root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    plast, bounds = [], []
    for t in tasks:
        if not t.is_done(root):
            continue
        labels = {"model_label": t.model, "dataset": t.dataset, "data": t.config["target"],
                  "source": t.config["source"], "analysis_id": t.id}
        p = t.dir(root) / "plasticity.csv"
        if p.is_file():
            plast.append(read_table(p, *PLASTICITY_TABLE).assign(**labels))
        b = t.dir(root) / "bounds.csv"
        if b.is_file():
            bounds.append(read_table(b, *BOUNDS_TABLE).assign(**labels))
    cat = lambda frames: pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()  # noqa: E731
    return cat(plast), cat(bounds)


def _rows(tasks: list[Task], root: Path, row: Callable[[Task, Path], dict[str, Any]]) -> pd.DataFrame:
    """``row(task, root)`` of every task; a result file (read with :func:`~vitplast.reading.read_json`) whose
    values have the wrong types is a one-line error naming it."""
    out = []
    for t in tasks:
        try:
            out.append(row(t, root))
        except (AttributeError, TypeError, ValueError) as exc:
            raise VitplastError(f"{t.result_path(root)} is not a vitplast result ({' '.join(str(exc).split())})") from None
    return pd.DataFrame(out)


def collect(root: str | Path, plan: Plan | None = None) -> SweepTables:
    """Build the four tables of the sweep in ``root`` (from ``plan`` or ``DIR/plan.json``)."""
    root = Path(root)
    plan = plan or Plan.load(root)
    runs = _rows(plan.of_kind("finetune"), root, run_row)
    probes = _rows(plan.of_kind("probe"), root, probe_row)
    plast, bounds = _analysis_tables(plan.of_kind("plasticity"), root)
    analyses = _rows(plan.of_kind("plasticity"), root, analysis_row)
    return SweepTables(runs, probes, plast, bounds, analyses)


def write_tables(root: str | Path, plan: Plan | None = None, tables: SweepTables | None = None) -> SweepTables:
    """:func:`collect` (unless ``tables`` were collected already) and write ``results.csv``, ``probes.csv``,
    ``plasticity.csv``, ``bounds.csv`` and ``analyses.csv`` atomically."""
    root = Path(root)
    tables = tables if tables is not None else collect(root, plan)
    for name, df in (("results", tables.runs), ("probes", tables.probes), ("plasticity", tables.plasticity),
                     ("bounds", tables.bounds), ("analyses", tables.analyses)):
        write_text_atomic(root / f"{name}.csv", df.to_csv(index=False))
    return tables


def read_metrics(root: Path, run_id: str) -> list[dict[str, Any]]:
    """The ``metrics.jsonl`` rows of run ``run_id`` (:meth:`RunDir.read_metrics`)."""
    from vitplast.train.rundir import RunDir

    return RunDir(Path(root) / "runs" / run_id).read_metrics()
