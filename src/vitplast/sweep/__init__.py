"""Grids of finetuning runs (plus probes and plasticity analyses) on Ray Tune or in process, resumable.

``spec`` (the YAML schema), ``plan`` (tasks and their ids), ``execute`` (one task), ``runner`` and
``ray_exec`` (executors), ``status`` and ``results`` (reading a sweep directory back).
"""

from vitplast.sweep.plan import Plan, Task, build_plan
from vitplast.sweep.results import SweepTables, collect, write_tables
from vitplast.sweep.runner import Resources, SweepOutcome, run_sweep
from vitplast.sweep.spec import SweepSpec, load_sweep, parse_sweep
from vitplast.sweep.status import SweepStatus, sweep_status

__all__ = [
    "Plan",
    "Resources",
    "SweepOutcome",
    "SweepSpec",
    "SweepStatus",
    "SweepTables",
    "Task",
    "build_plan",
    "collect",
    "load_sweep",
    "parse_sweep",
    "run_sweep",
    "sweep_status",
    "write_tables",
]
