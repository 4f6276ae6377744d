"""Running one task in the current process: the body of every trial, whatever the executor.

Contract of :func:`execute_task`:

* it holds an exclusive lock ``DIR/.locks/<id>.lock`` (``fcntl.flock``, released by the OS when the
  process dies, even by SIGKILL) while it works, so two processes never write one run directory;
* a finished task (its result file exists) is not run again: the outcome says ``skipped``;
* a finetuning run is started with ``resume=True``: an interrupted run continues from its last
  checkpoint (the engine guarantees the same result as an uninterrupted run);
* any exception is caught and recorded in ``<task dir>/error.txt`` (type, message, traceback, written
  atomically) and the outcome says ``failed``; the error file of an earlier attempt is removed when the
  task starts again. Nothing is raised, so a failing task never stops the others;
* start / done / failed events are appended to ``DIR/events.jsonl`` (one JSON object per line). A kill
  between a task's result file and its ``done`` event leaves that event out; :func:`reconcile_events`
  (called when a sweep starts) appends it, marked ``recovered``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vitplast.io import write_text_atomic
from vitplast.reading import read_jsonl
from vitplast.sweep.kinds import kind_of  # registers the built-in kinds
from vitplast.sweep.task import Task

EVENTS_FILE = "events.jsonl"
LOCK_DIR = ".locks"
#: Environment variables a trial on another machine or process needs from the driver.
FORWARDED_ENV = (
    "VITPLAST_CACHE",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TORCH_HOME",
    "MPLBACKEND",
)


def forwarded_env() -> dict[str, str]:
    """The driver's values of :data:`FORWARDED_ENV` that are set."""
    return {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


#: The event a task's execution begins with in ``events.jsonl`` (an event, not the task kind of that name).
STARTED = "start"


def log_event(root: Path, task: Task, event: str, **extra: Any) -> None:
    """Append one line to ``DIR/events.jsonl`` (a single ``write`` on an ``O_APPEND`` file)."""
    row = {"time": time.time(), "id": task.id, "kind": task.kind, "event": event, "pid": os.getpid(),
           "host": platform.node(), **extra}
    line = json.dumps(row, default=str) + "\n"
    fd = os.open(Path(root) / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_events(root: Path) -> list[dict[str, Any]]:
    """Rows of ``DIR/events.jsonl`` (:func:`vitplast.reading.read_jsonl`: a last line cut by a kill is dropped)."""
    return read_jsonl(Path(root) / EVENTS_FILE)


def reconcile_events(root: Path, tasks: Sequence[Task]) -> list[str]:
    """Append a ``done`` event (``recovered: true``) for each finished task (result file present) whose
    last event is ``start`` and that no process is running; returns their ids. Afterwards every finished
    task's last event is ``done``."""
    last = {row.get("id"): row.get("event") for row in read_events(root)}
    fixed = [t for t in tasks if last.get(t.id) == STARTED and t.is_done(root) and not is_running(root, t.id)]
    for t in fixed:
        log_event(root, t, "done", recovered=True)
    return [t.id for t in fixed]


def lock_path(root: Path, task_id: str) -> Path:
    return Path(root) / LOCK_DIR / f"{task_id}.lock"


@contextlib.contextmanager
def task_lock(root: Path, task_id: str, blocking: bool = True) -> Iterator[bool]:
    """Hold the task's lock; yields whether it was acquired (always True when ``blocking``).

    On systems without ``fcntl`` (Windows) no lock is taken and True is yielded.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield True
        return
    path = lock_path(root, task_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_running(root: Path, task_id: str) -> bool:
    """Whether another process holds the task's lock right now."""
    if not lock_path(root, task_id).is_file():
        return False
    with task_lock(root, task_id, blocking=False) as got:
        return not got


def _setup(env: dict[str, str] | None, threads: int | None) -> None:
    """The driver's environment (values already set here win) and the torch thread count of this process."""
    for k, v in (env or {}).items():
        os.environ.setdefault(k, v)
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, int(threads)))


def execute_task(task: Task, root: str | Path, **options: Any) -> dict[str, Any]:
    """Run ``task`` with its outputs in ``task.dir(root)`` (module docstring); returns a flat outcome
    ``{"id", "status": done|failed, "skipped", "seconds", "error"}``. ``options``: those of :func:`execute_bundle`."""
    return execute_bundle([task], root, **options)[0]


def execute_bundle(
    tasks: Sequence[Task],
    root: str | Path,
    device: str = "auto",
    workers: int | None = None,
    eval_batch_size: int | None = None,
    threads: int | None = None,
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run ``tasks`` (one task, or finetuning tasks as one run bundle) with their outputs in ``task.dir(root)``;
    one outcome per task, in order (:func:`execute_task`).

    The module's contract holds per member of a bundle: each member's lock is held (taken in id order), a finished
    member is skipped, each unfinished one is resumed from its own checkpoint, and a failure of the bundle is
    recorded in the ``error.txt`` of every member it left unfinished (finished members stay done).
    """
    root = Path(root)
    _setup(env, threads)
    outcomes: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        for t in sorted(tasks, key=lambda t: t.id):
            stack.enter_context(task_lock(root, t.id))
        todo = [t for t in tasks if not t.is_done(root)]
        outcomes = {t.id: {"id": t.id, "status": "done", "skipped": True, "seconds": 0.0, "error": ""}
                    for t in tasks if t.is_done(root)}
        extra = {"bundle": len(todo)} if len(todo) > 1 else {}
        for t in todo:
            t.error_path(root).unlink(missing_ok=True)
            log_event(root, t, STARTED, **extra)
        t0 = time.perf_counter()
        message, details = "", ""
        try:
            if len(todo) == 1:
                kind_of(todo[0].kind).run(todo[0], todo[0].dir(root), device, workers, eval_batch_size)
            elif todo:
                kind_of(todo[0].kind).run_bundle(todo, [t.dir(root) for t in todo], device, workers, eval_batch_size)
        except Exception as exc:
            message, details = f"{type(exc).__name__}: {exc}", traceback.format_exc()
        seconds = time.perf_counter() - t0
        for t in todo:
            if (t.is_done(root) if len(todo) > 1 else not message):
                log_event(root, t, "done", seconds=seconds, **extra)
                outcomes[t.id] = {"id": t.id, "status": "done", "skipped": False, "seconds": seconds, "error": ""}
            else:
                error = message or "the bundle ended without this run's result"
                record_error(root, t, error, details)
                log_event(root, t, "failed", seconds=seconds, error=error)
                outcomes[t.id] = {"id": t.id, "status": "failed", "skipped": False, "seconds": seconds, "error": error}
    return [outcomes[t.id] for t in tasks]


def record_error(root: Path, task: Task, message: str, details: str = "") -> None:
    """Write ``error.txt``: first line the error, then the task and the traceback."""
    text = f"{message}\n\ntask {task.id} ({task.kind}): {task.describe()}\nhost {platform.node()}, pid {os.getpid()}\n"
    if details:
        text += "\n" + details
    write_text_atomic(task.error_path(root), text)

