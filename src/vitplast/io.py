"""Output helpers: atomic files and output directories, JSON with provenance."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vitplast.errors import VitplastError


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then ``os.replace`` it onto ``path``.

    Readers see the old file or the complete new one, never a half-written file; the result is world-readable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def check_output_dir(out: Path, what: str = "--out") -> None:
    """Raise :class:`VitplastError` unless ``out`` can receive outputs; creates nothing.

    ``out`` must be a directory or not exist yet; its nearest existing ancestor (``out`` itself when it exists)
    must be a directory in which a file can be created (this catches missing permissions and read-only file
    systems). Missing parents are created only when the outputs are written. Commands call it before any work.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VitplastError(f"{what} {out} exists and is not a directory")
    base = out
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise VitplastError(f"{what} {out} cannot be created: {base} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".vitplast-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise VitplastError(f"{what} {out} is not writable ({exc.strerror or exc}: {base})") from None


@contextlib.contextmanager
def output_dir(out: Path) -> Iterator[Path]:
    """Stage outputs in a temporary sibling directory and move them into ``out`` only on success.

    ``out`` is checked first (:func:`check_output_dir`). On any exception, also while moving the outputs into
    place, the staging directory is removed and ``out`` is left as it was (not created if it did not exist),
    so a failed command never leaves partial results or hidden staging folders behind.
    """
    out = Path(out)
    check_output_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    try:
        yield stage
        out.mkdir(parents=True, exist_ok=True)
        for item in stage.iterdir():
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour affects results."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("vitplast", "torch", "torchvision", "timm", "transformers", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out
