"""Executing tasks as Ray Tune trials (the default executor).

Each pack (one task, or a run bundle of finetuning tasks: :mod:`vitplast.sweep.packing`) is one trial of a
function trainable that calls :func:`~vitplast.sweep.execute.execute_bundle` with the tasks' directories inside
the sweep directory, so the state that matters (run directories,
``result.json``) is ours, not Tune's: Tune's own experiment directory goes to ``DIR/.ray/`` and is thrown
away at the next sweep, Tune's loggers (TensorBoard, CSV, JSON) are disabled, its console output is off,
and the trial keeps the driver's working directory.

Ray starts small: no dashboard, ``num_cpus`` of this machine, a 96 MiB object store (the tasks exchange
only small dicts), usage stats off, and the workers' output is not copied to the console unless
``VITPLAST_RAY_VERBOSE=1``. A local Ray started here is watched by a :class:`~vitplast.reaper.Reaper`: if the
driver is killed (``kill -9``) before it shuts Ray down, the Ray processes it started end within seconds. With
``address`` the trials run on an existing cluster (``ray.init(address=...)``);
the sweep directory must then be on storage that every node sees at the same path.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vitplast.errors import VitplastError
from vitplast.reaper import Reaper
from vitplast.sweep.execute import execute_bundle, forwarded_env
from vitplast.sweep.task import Task

OBJECT_STORE_BYTES = 96 * 1024 * 1024
QUIET_ENV = {
    "RAY_DEDUP_LOGS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "100000",
}

OnDone = Callable[[Task, dict[str, Any]], None]


def require_ray() -> None:
    """Raise a clear :class:`VitplastError` when Ray Tune is not installed."""
    try:
        import ray  # noqa: F401
        from ray import tune  # noqa: F401
    except ImportError:
        raise VitplastError(
            "the Ray executor needs Ray Tune: pip install 'vitplast[sweep]' (or use --executor local)"
        ) from None


def _trial(config: dict[str, Any], packs: dict[str, list[dict[str, Any]]], root: str,
           run: dict[str, Any]) -> dict[str, Any]:
    """The function trainable: run one pack; the trial's final result holds each task's outcome."""
    tasks = [Task.from_dict(t) for t in packs[config["id"]]]
    return {"outcomes": execute_bundle(tasks, root, **run)}


def pack_id(tasks: list[Task]) -> str:
    """The trial name of a pack: its task's id, or ``<first id>+<N-1>`` for a bundle of N runs."""
    return tasks[0].id if len(tasks) == 1 else f"{tasks[0].id}+{len(tasks) - 1}"


def _dirname(trial: Any) -> str:
    return str(trial.config["id"])


def init_ray(address: str | None, verbose: bool = False) -> bool:
    """Start (or connect to) Ray quietly; returns whether this call started it (and should shut it down)."""
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    import ray

    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
        "configure_logging": True,
    }
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=OBJECT_STORE_BYTES, **kw)
    except ConnectionError as exc:
        raise VitplastError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    return True


def run_ray(
    packs: list[list[Task]],
    root: Path,
    on_done: OnDone,
    *,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    max_concurrent: int | None = None,
    run: dict[str, Any] | None = None,
) -> None:
    """Run ``packs`` as Tune trials; ``on_done(task, outcome)`` is called in this process for each task of a
    trial as the trial ends."""
    require_ray()
    verbose = os.environ.get("VITPLAST_RAY_VERBOSE") == "1"
    started = init_ray(address, verbose)
    reaper = Reaper.start() if started and not address else None  # ends the local Ray if this driver is killed
    import ray
    from ray import tune

    from vitplast.sweep.tune_callback import TrialEnd

    try:
        if not address:
            total = float(ray.cluster_resources().get("CPU", 1))
            if cpus_per_trial > total:
                raise VitplastError(f"--cpus-per-trial {cpus_per_trial:g} exceeds the {total:g} CPUs of this machine")
            gpus = float(ray.cluster_resources().get("GPU", 0))
            if gpus_per_trial > gpus:
                raise VitplastError(f"--gpus-per-trial {gpus_per_trial:g} but this machine has {gpus:g} GPUs")
        by_id = {pack_id(p): p for p in packs}
        run_kw = {**(run or {}), "threads": max(1, int(cpus_per_trial)), "env": forwarded_env()}
        trainable = tune.with_parameters(_trial, packs={k: [t.to_dict() for t in p] for k, p in by_id.items()},
                                         root=str(root), run=run_kw)
        trainable = tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        storage = (Path(root) / ".ray").resolve()
        shutil.rmtree(storage, ignore_errors=True)
        tuner = tune.Tuner(
            trainable,
            param_space={"id": tune.grid_search(list(by_id))},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent,
                reuse_actors=True,
                trial_dirname_creator=_dirname,
                trial_name_creator=_dirname,
            ),
            run_config=tune.RunConfig(
                name=time.strftime("sweep-%Y%m%d-%H%M%S"),
                storage_path=str(storage),
                verbose=0,
                callbacks=[TrialEnd(by_id, Path(root), on_done)],
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                log_to_file=False,
            ),
        )
        tuner.fit()
    finally:
        try:
            if started:
                ray.shutdown()
        finally:
            if reaper is not None:
                reaper.stop()
