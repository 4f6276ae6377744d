"""Running a sweep: plan, skip what is finished, execute the rest, rebuild the tables.

``run_sweep(spec, out)``:

1. expands ``spec`` into a :class:`~vitplast.sweep.plan.Plan` (every run validated before anything is
   written) and checks the executor is available;
2. writes ``DIR/sweep.yaml`` (the normalised spec) and ``DIR/plan.json``;
3. packs the unfinished finetuning runs into run bundles (:mod:`vitplast.sweep.packing`) and hands the packs to
   the executor: ``ray`` (one Ray Tune trial per pack, the default) or ``local`` (one after the other in this
   process; also the fallback when Ray is not wanted). Finished tasks are
   skipped, interrupted finetuning runs resume from their checkpoint, failed ones are tried again
   (``retry_failed=False`` leaves them failed);
4. rebuilds ``results.csv``, ``probes.csv``, ``plasticity.csv`` and ``bounds.csv`` from the task
   directories (also after an interruption by Ctrl-C).

Killing the sweep at any point loses at most the unfinished work of the running tasks: results are
only ever read from the task directories, whose result files are written atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitplast.errors import VitplastError
from vitplast.sweep.execute import execute_bundle, reconcile_events
from vitplast.sweep.packing import bundle_size, pack
from vitplast.sweep.plan import PLAN_FILE, SPEC_FILE, Plan, build_plan
from vitplast.sweep.resources import EXECUTORS, Resources, cuda_count
from vitplast.sweep.results import SweepTables, write_tables
from vitplast.sweep.spec import SweepSpec
from vitplast.sweep.status import task_state
from vitplast.sweep.task import Task

OnDone = Callable[[Task, dict[str, Any]], None]


@dataclass
class SweepOutcome:
    plan: Plan
    skipped: int
    ran: int
    failed: list[Task] = field(default_factory=list)
    pending: int = 0
    tables: SweepTables | None = None


def prepare(spec: SweepSpec, out: Path, executor: str, resources: Resources) -> Plan:
    """Validate everything and write ``sweep.yaml`` / ``plan.json``; nothing is written if this raises."""
    if executor not in EXECUTORS:
        raise VitplastError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    resources.validate()
    if resources.address is None:  # a cluster's nodes may have devices this driver lacks
        from vitplast.runtime import resolve_device

        resolve_device(spec.run.device)
    if executor == "ray":
        from vitplast.sweep.ray_exec import require_ray

        require_ray()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VitplastError(f"--out {out} exists and is not a directory")
    check_sweep_dir(out)
    plan = build_plan(spec)
    from vitplast.sweep.preflight import preflight

    plan = plan.resolved(preflight(plan))
    out.mkdir(parents=True, exist_ok=True)
    plan.save(out, spec)
    return plan


def check_sweep_dir(out: Path) -> None:
    """A sweep starts in a new folder, an empty one, or one that holds a sweep (its ``plan.json`` or
    ``sweep.yaml``: it is continued); a folder with anything else is refused."""
    if not out.is_dir() or (out / PLAN_FILE).is_file() or (out / SPEC_FILE).is_file():
        return
    other = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if other:
        raise VitplastError(f"--out {out} is not empty and holds no sweep (e.g. {other[0]}): choose a new or "
                            "empty folder")


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    executor: str = "ray",
    resources: Resources | None = None,
    retry_failed: bool = True,
    on_start: Callable[[Plan, list[Task], int], None] | None = None,
    on_done: OnDone | None = None,
) -> SweepOutcome:
    """Run the sweep into ``out`` (module docstring). ``on_start(plan, todo, n_skipped)`` is called once
    before execution and ``on_done(task, outcome)`` after each executed task."""
    out = Path(out).resolve()
    resources = resources or Resources()
    plan = prepare(spec, out, executor, resources)
    states = {t.id: task_state(t, out) for t in plan.tasks}
    if "running" in states.values():
        busy = [t.id for t in plan.tasks if states[t.id] == "running"]
        raise VitplastError(
            f"{len(busy)} task(s) of {out} are being run by another process (e.g. {busy[0]}): "
            "wait for it or stop it before running this sweep again"
        )
    reconcile_events(out, plan.tasks)
    todo = [t for t in plan.tasks if states[t.id] != "done" and (retry_failed or states[t.id] != "failed")]
    skipped = sum(s == "done" for s in states.values())
    if on_start is not None:
        on_start(plan, todo, skipped)
    ran = 0

    def done(task: Task, outcome: dict[str, Any]) -> None:
        nonlocal ran
        if outcome.get("status") == "done" and not outcome.get("skipped"):
            ran += 1
        if on_done is not None:
            on_done(task, outcome)

    run_opts = {"device": spec.run.device, "workers": spec.run.workers, "eval_batch_size": spec.run.eval_batch_size}
    packs = pack(todo, bundle_size(resources.bundle, spec.run.device, cuda_count() > 0))
    try:
        if todo:
            if executor == "local":
                run_local(packs, out, done, run_opts, resources.cpus_per_trial)
            else:
                from vitplast.sweep.ray_exec import run_ray

                cpus, gpus = resources.resolved()
                run_ray(packs, out, done, address=resources.address, cpus_per_trial=cpus, gpus_per_trial=gpus,
                        max_concurrent=resources.max_concurrent, run=run_opts)
    finally:
        tables = write_tables(out, plan)
    final = {t.id: task_state(t, out) for t in plan.tasks}
    failed = [t for t in plan.tasks if final[t.id] == "failed"]
    pending = sum(s in ("pending", "interrupted", "running") for s in final.values())
    return SweepOutcome(plan, skipped, ran, failed, pending, tables)


def run_local(
    packs: list[list[Task]], root: Path, on_done: OnDone, run: dict[str, Any], threads: float | None = None
) -> None:
    """The in-process executor: packs (a task, or a run bundle) one after the other; a failing task is recorded
    and skipped over."""
    for tasks in packs:
        outcomes = execute_bundle(tasks, root, threads=None if threads is None else int(threads), **run)
        for task, outcome in zip(tasks, outcomes, strict=True):
            on_done(task, outcome)
