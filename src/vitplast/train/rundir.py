"""The files of a run directory and the rules for (re)using one.

Layout: ``config.json`` (identity and provenance), ``metrics.jsonl`` (one JSON row per train step and per
evaluation), ``best.safetensors`` (trainable weights at the best validation accuracy), ``last.pt``
(resume state at the last evaluation; removed when the run finishes), ``result.json`` and ``curves.png``
(written when the run finishes). Every file is replaced atomically; ``metrics.jsonl`` is appended row by
row and cut back to the checkpoint's step on resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitplast.errors import VitplastError
from vitplast.io import write_json_atomic, write_text_atomic
from vitplast.reading import NUMBER, NUMBER_OR_NULL, read_json, read_jsonl
from vitplast.train.config import TrainConfig

#: Keys of ``config.json`` and ``result.json`` that commands read, with their JSON types.
CONFIG_FIELDS: dict[str, type | tuple[type, ...]] = {"train": dict, "num_classes": int, "data_config": dict,
                                                     "fingerprint": str}
RESULT_FIELDS: dict[str, type | tuple[type, ...]] = {
    "test_acc": NUMBER_OR_NULL, "best_val_acc": NUMBER_OR_NULL, "best_step": (int, type(None)),
    "trainable_params": int, "wall_seconds": NUMBER, "diverged": bool, "diverged_at": (int, type(None)),
    "evaluations": list}


#: Keys of a ``metrics.jsonl`` row that hold a number or null (NaN and infinities are written as null).
METRIC_NUMBERS = ("loss", "lr", "grad_norm", "val_loss", "val_acc")


def _number_or_null(v: Any) -> bool:
    return isinstance(v, NUMBER_OR_NULL) and not isinstance(v, bool)


class _File:
    """A file of the run directory: ``RunDir(path).NAME`` is ``path / FILENAME``."""

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def __get__(self, rd: RunDir, owner: type | None = None) -> Path:
        return rd.path / self.filename


@dataclass(frozen=True)
class RunDir:
    path: Path

    config = _File("config.json")
    metrics = _File("metrics.jsonl")
    best = _File("best.safetensors")
    last = _File("last.pt")
    #: The resume state before ``last.pt`` (kept so that a damaged ``last.pt`` can be skipped).
    previous = _File("last.prev.pt")
    result = _File("result.json")
    curves = _File("curves.png")
    #: The lock file held while a process trains in the folder (:meth:`locked`).
    lock = _File(".lock")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive ``fcntl.flock`` on :attr:`lock` while the body runs, so that two processes never
        train in one folder at once (the second is refused in one line, and changes nothing). The lock is
        released on exit, also when the process dies; the lock file is removed, and so is the folder when
        this call created it and the body left it empty."""
        if self.path.exists() and not self.path.is_dir():
            raise VitplastError(f"--out {self.path} exists and is not a directory")
        created = not self.path.is_dir()
        self.path.mkdir(parents=True, exist_ok=True)
        fd = _acquire(self.lock)
        try:
            yield
        finally:
            self.lock.unlink(missing_ok=True)
            os.close(fd)
            if created:
                with contextlib.suppress(OSError):
                    self.path.rmdir()

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """Create or continue the run in the body; if the body fails before the run's first checkpoint
        (``last.pt``) or its ``result.json`` exists, undo it: a folder the body created is removed, and in
        a folder that existed only the run files the body created are. A run that failed to start thus
        leaves nothing behind that would ask for ``--resume``."""
        existed = self.path.is_dir()
        files = (self.config, self.metrics, self.best, self.curves)
        before = {f for f in files if f.exists()}
        try:
            yield
        except BaseException:
            if not self.has_resume_state() and not self.result.is_file():
                if not existed:
                    shutil.rmtree(self.path, ignore_errors=True)
                else:
                    for f in files:
                        if f not in before:
                            f.unlink(missing_ok=True)
            raise

    def read_config(self) -> dict[str, Any]:
        """``config.json``, checked (:func:`vitplast.reading.read_json`) for the keys that commands use."""
        if not self.config.is_file():
            raise VitplastError(f"{self.path} is not a run directory (no config.json)")
        data = read_json(self.config, CONFIG_FIELDS)
        if data["num_classes"] < 1:
            raise VitplastError(f"{self.config}: 'num_classes' must be >= 1, not {data['num_classes']}")
        return data

    def train_config(self) -> TrainConfig:
        try:
            return TrainConfig.from_dict(self.read_config()["train"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VitplastError(f"{self.config} is not a vitplast training config ({exc})") from None

    def read_result(self) -> dict[str, Any]:
        """``result.json`` of a finished run, checked for the keys that commands use."""
        if not self.result.is_file():
            raise VitplastError(f"{self.path} holds no finished run (no result.json); resume it first")
        data = read_json(self.result, RESULT_FIELDS)
        if not all(isinstance(e, dict) for e in data["evaluations"]):
            raise VitplastError(f"{self.result}: 'evaluations' must be a list of objects")
        return data

    def check_reuse(self, cfg: TrainConfig, resume: bool) -> bool:
        """Whether the directory already holds this run. Raises if it may not be used for ``cfg``.

        A missing or empty directory is fresh (also with ``resume``). A directory with a run needs
        ``resume`` and the same :class:`TrainConfig`; anything else there is refused.
        """
        if not self.path.exists():
            return False
        if not self.path.is_dir():
            raise VitplastError(f"--out {self.path} exists and is not a directory")
        if not self.config.is_file():
            if any(p for p in self.path.iterdir() if not p.name.startswith(".")):
                raise VitplastError(f"--out {self.path} is not empty and holds no vitplast run")
            return False
        if not resume:
            raise VitplastError(f"--out {self.path} already holds a run: pass --resume or choose another --out")
        old = self.train_config()
        if old != cfg:
            a, b = old.to_dict(), cfg.to_dict()
            diff = [f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in b if a.get(k) != b.get(k)]
            raise VitplastError(f"--resume: {self.path} belongs to another config ({'; '.join(diff[:3])})")
        return True

    # --- resume state ------------------------------------------------------------------------------------
    def has_resume_state(self) -> bool:
        return self.last.is_file() or self.previous.is_file()

    def save_resume_state(self, state: Any) -> None:
        """Write ``last.pt`` atomically; the state it replaces is kept as ``last.prev.pt``."""
        from vitplast.train.checkpoint import save_torch

        if self.last.is_file():
            self.last.replace(self.previous)
        save_torch(self.last, state)

    def load_resume_state(self, warn: Callable[[str], None] | None = None) -> tuple[dict[str, Any], Path]:
        """The newest readable resume state and its file: ``last.pt``, or ``last.prev.pt`` when ``last.pt`` is
        missing, damaged or refused (``warn`` is told which was skipped). Neither readable: the one-line error of
        ``last.pt``. Read with :func:`~vitplast.train.checkpoint.load_torch`: nothing in the file is executed."""
        try:
            return _resume_state(self.last), self.last
        except VitplastError as exc:
            if not self.previous.is_file():
                raise
            try:
                state = _resume_state(self.previous)
            except VitplastError:
                raise exc from None
            if warn is not None:
                warn(f"{exc}; resuming from the previous checkpoint {self.previous.name}")
            return state, self.previous

    def remove_resume_state(self) -> None:
        self.last.unlink(missing_ok=True)
        self.previous.unlink(missing_ok=True)

    # --- metrics ---------------------------------------------------------------------------------------
    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl`` (:func:`vitplast.reading.read_jsonl`: a row cut by an interruption is
        dropped), each with an integer ``step``."""
        rows = read_jsonl(self.metrics)
        for k, row in enumerate(rows, 1):
            if not isinstance(row.get("step"), int) or isinstance(row["step"], bool):
                raise VitplastError(f"{self.metrics} row {k} has no integer 'step': not a vitplast metrics log")
            numbers = [row.get(f) for f in METRIC_NUMBERS]
            groups = row.get("grad_norm_groups") or {}
            if isinstance(groups, dict):
                numbers += list(groups.values())
            if not isinstance(groups, dict) or not all(_number_or_null(v) for v in numbers) or (
                    row.get("kind") == "eval" and "val_loss" not in row):
                raise VitplastError(f"{self.metrics} row {k}: {', '.join(METRIC_NUMBERS)} and the values of "
                                    "grad_norm_groups must be numbers or null")
        return rows

    def reset_metrics(self, upto_step: int) -> None:
        """Keep only rows with ``step <= upto_step`` (all rows of steps after a checkpoint are redone)."""
        rows = [r for r in self.read_metrics() if r["step"] <= upto_step]
        write_text_atomic(self.metrics, "".join(json.dumps(r) + "\n" for r in rows))

    def write_config(self, config: dict[str, Any]) -> None:
        write_json_atomic(self.config, config)


def _acquire(path: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive lock; another holder: one-line VitplastError.

    A lock file removed by its previous holder between our ``open`` and ``flock`` is not the file at ``path``
    any more: we then lock the new one (comparing inodes), so that two processes never hold different files."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise VitplastError(f"--out {path.parent} is in use by another run (it holds {path.name}): wait for "
                                "it to end or choose another --out") from None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _resume_state(path: Path) -> dict[str, Any]:
    """The resume state in ``path``: a dict whose ``weights``, ``optimizer`` and ``state`` are dicts and whose
    ``rng`` is a tensor, else a one-line error."""
    from torch import Tensor

    from vitplast.train.checkpoint import load_torch

    state = load_torch(path)
    if not isinstance(state, dict):
        raise VitplastError(f"checkpoint {path} is not a vitplast resume state (a {type(state).__name__})")
    for key, kind in {"weights": dict, "optimizer": dict, "rng": Tensor, "state": dict}.items():
        if not isinstance(state.get(key), kind):
            raise VitplastError(f"checkpoint {path} is not a vitplast resume state ({key!r} is not a "
                                f"{kind.__name__})")
    return state
