"""Output helpers: atomic files and output directories, JSON with provenance."""

from __future__ import annotations

import contextlib
import errno
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
    A disk that is full or read-only (:data:`WRITE_ERRNOS`) is one :class:`WriteError` naming ``path``.
    """
    tmp = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise WriteError(path, exc.strerror or str(exc)) from None
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


#: ``errno`` values of a write that failed for lack of room or a read-only medium (reported in one line).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


class WriteError(VitplastError):
    """An output file could not be written (disk full, quota, read-only); ``path`` is the file meant."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot write {self.path}: {reason}")


def check_output_dir(out: str | os.PathLike[str], what: str = "--out") -> None:
    """Raise :class:`VitplastError` unless ``out`` can receive outputs; creates nothing.

    The one output-folder check of every command (the command line applies it to each output folder option
    before the command starts). Refused in one line naming ``what``: an empty name (it would mean the current
    folder), a name or a component longer than the file system allows, a symbolic link that leads nowhere
    (dangling, or a loop) at ``out`` or above it, an existing non-folder at ``out`` or above it, and a nearest
    existing ancestor (``out`` itself when it exists) in which no file can be created (missing permissions,
    read-only file systems). Missing parents are created only when the outputs are written.
    """
    if os.fspath(out) == "":
        raise VitplastError(f"{what} is empty: give a folder name")
    out = Path(out)
    _check_names(out, what)
    base = out
    while True:
        try:
            base.stat()
            break
        except FileNotFoundError:
            if base.is_symlink():
                raise VitplastError(f"{what} {out}: {base} is a symbolic link to a missing target") from None
        except NotADirectoryError:
            pass
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise VitplastError(f"{what} {out}: its symbolic links form a loop") from None
            raise VitplastError(f"{what} {_short(out)}: {exc.strerror or exc}") from None
        if base == base.parent:
            break
        base = base.parent
    if base == out and not out.is_dir():
        raise VitplastError(f"{what} {out} exists and is not a directory")
    if not base.is_dir():
        raise VitplastError(f"{what} {out} cannot be created: {base} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=base, prefix=".vitplast-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise VitplastError(f"{what} {out} is not writable ({exc.strerror or exc}: {base})") from None


def _check_names(out: Path, what: str) -> None:
    """Refuse a component of ``out`` longer than its file system's ``NAME_MAX`` less the 20 characters that
    staging and temporary names add to it (:func:`output_dir`)."""
    limit = 255
    with contextlib.suppress(OSError, AttributeError, ValueError):
        base = out
        while not base.exists() and base != base.parent:
            base = base.parent
        limit = os.pathconf(base, "PC_NAME_MAX")
    for part in out.parts:
        if len(os.fsencode(part)) + 20 > limit:
            raise VitplastError(f"{what} {_short(out)}: a name in it is too long ({len(part)} characters, "
                                f"at most {limit - 20})")


def _short(path: Path) -> str:
    """``path`` for a message: at most 80 characters."""
    text = str(path)
    return text if len(text) <= 80 else f"{text[:40]}...{text[-37:]}"


@contextlib.contextmanager
def output_dir(out: Path) -> Iterator[Path]:
    """Stage outputs in a temporary sibling directory and move them into ``out`` only on success.

    ``out`` is checked first (:func:`check_output_dir`). On any exception, also while moving the outputs into
    place, the staging directory is removed and ``out`` is left as it was (not created if it did not exist),
    so a failed command never leaves partial results or hidden staging folders behind. A write that fails for
    lack of room (:data:`WRITE_ERRNOS`) is one :class:`WriteError` naming the file in ``out`` it was meant for.
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
    except WriteError as exc:
        raise WriteError(_unstaged(exc.path, stage, out), exc.reason) from None
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        path = _unstaged(Path(exc.filename), stage, out) if exc.filename else out
        raise WriteError(path, exc.strerror or str(exc)) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _unstaged(path: Path, stage: Path, out: Path) -> Path:
    """Where ``path`` (a file in the staging folder) is meant to go in ``out``."""
    try:
        return out / Path(path).relative_to(stage)
    except ValueError:
        return Path(path)


def versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour affects results."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("vitplast", "torch", "torchvision", "timm", "transformers", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out
