"""Grids of finetuning runs (plus probes and plasticity analyses) on Ray Tune or in process, resumable.

``spec`` (the YAML schema), ``task`` (a task, its id and the registry of task kinds), ``kinds`` (the built-in
kinds), ``plan`` (a sweep's tasks), ``execute`` (one task), ``runner`` and
``ray_exec`` (executors), ``status`` and ``results`` (reading a sweep directory back). The public names are
imported on first use, so that parsing a sweep file (``vitplast.sweep.spec``) does not load torch or pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vitplast.lazy import lazy_getattr

if TYPE_CHECKING:
    from vitplast.sweep.plan import Plan, build_plan
    from vitplast.sweep.resources import Resources
    from vitplast.sweep.results import SweepTables, collect, write_tables
    from vitplast.sweep.runner import SweepOutcome, run_sweep
    from vitplast.sweep.spec import SweepSpec, load_sweep, parse_sweep
    from vitplast.sweep.status import SweepStatus, sweep_status
    from vitplast.sweep.task import Task, TaskKind

_LAZY = {
    **dict.fromkeys(("Plan", "build_plan"), "vitplast.sweep.plan"),
    **dict.fromkeys(("Task", "TaskKind"), "vitplast.sweep.task"),
    **dict.fromkeys(("SweepTables", "collect", "write_tables"), "vitplast.sweep.results"),
    **dict.fromkeys(("SweepOutcome", "run_sweep"), "vitplast.sweep.runner"),
    "Resources": "vitplast.sweep.resources",
    **dict.fromkeys(("SweepSpec", "load_sweep", "parse_sweep"), "vitplast.sweep.spec"),
    **dict.fromkeys(("SweepStatus", "sweep_status"), "vitplast.sweep.status"),
}

__all__ = [
    "Plan",
    "Resources",
    "SweepOutcome",
    "SweepSpec",
    "SweepStatus",
    "SweepTables",
    "Task",
    "TaskKind",
    "build_plan",
    "collect",
    "load_sweep",
    "parse_sweep",
    "run_sweep",
    "sweep_status",
    "write_tables",
]
__getattr__ = lazy_getattr(__name__, _LAZY, globals())
