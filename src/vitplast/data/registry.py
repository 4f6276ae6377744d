"""Data specs: one string names a data source everywhere (CLI, API, sweep files).

A spec is ``PREFIX`` or ``PREFIX:ARG`` (``ARG`` may itself contain colons, e.g.
``cifar10c:DIR:contrast:5``). Each prefix is registered with :func:`register` by the module that
implements it; :func:`load_data` resolves a spec to a :class:`~vitplast.data.base.DataBundle`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vitplast.data.base import DataBundle
from vitplast.data.specs import PREFIXES, check_prefix


@dataclass(frozen=True)
class DataContext:
    """What a loader may need besides its argument.

    ``input_size``: the model's input size in pixels (procedural sets generate at this size when they
    have no natural size). ``root``: cache directory for downloads and generated data.
    ``download``: whether loaders may fetch from the network.
    """

    input_size: int | None = None
    root: Path | None = None
    download: bool = True
    seed: int = 0


Loader = Callable[[str, DataContext], DataBundle]
_LOADERS: dict[str, Loader] = {}
# Modules that register loaders when imported (kept lazy: torchvision datasets are only imported on use).
_PROVIDERS = (
    "vitplast.data.synthetic",
    "vitplast.data.folder",
    "vitplast.data.mini",
    "vitplast.data.benchmarks",
)


def register(prefix: str) -> Callable[[Loader], Loader]:
    """Register ``fn(arg, ctx) -> DataBundle`` for specs ``prefix`` / ``prefix:arg``; the prefix and its usage line
    are declared in :data:`vitplast.data.specs.PREFIXES`."""
    if prefix not in PREFIXES:
        raise ValueError(f"data prefix {prefix!r} is not declared in vitplast.data.specs.PREFIXES")

    def deco(fn: Loader) -> Loader:
        _LOADERS[prefix] = fn
        return fn

    return deco


def _ensure_providers() -> None:
    for mod in _PROVIDERS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def available() -> dict[str, str]:
    """Registered prefixes and their usage lines."""
    _ensure_providers()
    return {k: PREFIXES[k] for k in sorted(_LOADERS)}


def default_root() -> Path:
    """Cache directory: ``$VITPLAST_CACHE`` or ``~/.cache/vitplast``."""
    import os

    return Path(os.environ.get("VITPLAST_CACHE", Path.home() / ".cache" / "vitplast"))


def load_data(spec: str, ctx: DataContext | None = None) -> DataBundle:
    """Resolve a data spec (``random``, ``folder:PATH``, ``mini:digits``, ``cifar10``...) to a bundle."""
    _ensure_providers()
    ctx = ctx or DataContext()
    if ctx.root is None:
        ctx = DataContext(ctx.input_size, default_root(), ctx.download, ctx.seed)
    check_prefix(spec)
    prefix, _, arg = spec.partition(":")
    return _LOADERS[prefix](arg, ctx)
