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

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitplast.errors import VitplastError
from vitplast.sweep.execute import execute_bundle, reconcile_events
from vitplast.sweep.packing import bundle_size, pack
from vitplast.sweep.plan import Plan, Task, build_plan
from vitplast.sweep.results import SweepTables, write_tables
from vitplast.sweep.spec import SweepSpec
from vitplast.sweep.status import task_state

EXECUTORS = ("ray", "local")

OnDone = Callable[[Task, dict[str, Any]], None]


@dataclass
class Resources:
    """Per-trial resources and concurrency (Ray executor; the local executor only uses ``cpus_per_trial``
    as its torch thread count when given)."""

    address: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    max_concurrent: int | None = None
    #: finetuning runs per trial (a run bundle, :mod:`vitplast.sweep.packing`); None: the device's default
    bundle: int | None = None

    def resolved(self) -> tuple[float, float]:
        """``(cpus, gpus)`` per trial: explicit values, else 1 CPU and, on a local machine with CUDA GPUs,
        one GPU per trial with the CPUs shared among the concurrent trials."""
        gpus = self.gpus_per_trial
        if gpus is None:
            gpus = 1.0 if self.address is None and _cuda_count() > 0 else 0.0
        cpus = self.cpus_per_trial
        if cpus is None:
            cpus = 1.0
            if gpus > 0 and self.address is None:
                slots = max(1, int(_cuda_count() / gpus))
                cpus = float(max(1, (os.cpu_count() or 1) // slots))
        return cpus, gpus

    def validate(self) -> None:
        if self.cpus_per_trial is not None and self.cpus_per_trial <= 0:
            raise VitplastError(f"--cpus-per-trial must be > 0, got {self.cpus_per_trial:g}")
        if self.gpus_per_trial is not None and self.gpus_per_trial < 0:
            raise VitplastError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial:g}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise VitplastError(f"--max-concurrent must be >= 1, got {self.max_concurrent}")
        if self.bundle is not None and self.bundle < 1:
            raise VitplastError(f"--bundle must be >= 1, got {self.bundle}")


def _cuda_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - a broken CUDA install counts as none
        return 0


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
    if executor == "ray":
        from vitplast.sweep.ray_exec import require_ray

        require_ray()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VitplastError(f"--out {out} exists and is not a directory")
    plan = build_plan(spec)
    from vitplast.sweep.preflight import preflight

    preflight(plan)
    out.mkdir(parents=True, exist_ok=True)
    plan.save(out, spec)
    return plan


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
    packs = pack(todo, bundle_size(resources.bundle, spec.run.device, _cuda_count() > 0))
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
