"""Checks of a sweep against its models and data before the first task runs.

:func:`preflight` loads every distinct model of the plan once (so missing weights, e.g. an offline hub,
fail in one line before any task instead of once per task) and every distinct data set once at that
model's input size, and has each task's kind check it against them (:meth:`~vitplast.sweep.task.TaskKind.check`:
a finetuning run's batch size against its train split, its units against the model's depth). Any problem raises :class:`~vitplast.errors.VitplastError` naming the run; nothing
is written before it passes.
"""

from __future__ import annotations

from typing import Any

from vitplast.errors import VitplastError
from vitplast.progress import Progress, phase
from vitplast.sweep.plan import Plan


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def preflight(plan: Plan, progress: Progress | None = None) -> dict[tuple[str, bool], int]:
    """Load each model and data set of ``plan`` once and check every run against them (module docstring).
    Returns the depth (number of blocks) of each ``(model spec, random_weights)``."""
    from vitplast.data import DataContext, load_data
    from vitplast.models import load_model

    models: dict[tuple[str, bool], int] = {}
    depths: dict[tuple[str, bool], int] = {}
    sizes: dict[tuple[str, int], int] = {}
    advance = phase(progress, "checking models and data", len(plan.tasks))
    for t in plan.tasks:
        c = t.config
        key = (str(c["model"]), bool(c.get("random_weights", False)))
        if key not in models:
            try:
                vit = load_model(key[0], random_weights=key[1])
            except VitplastError:
                raise
            except Exception as exc:  # a hub or file error: say it once, before any task
                hint = "" if key[1] else " (offline? use --random-weights or timm:ARCH@FILE.safetensors)"
                raise VitplastError(f"model {key[0]} cannot be loaded{hint}: {_first_line(exc)}") from None
            models[key], depths[key] = int(vit.data_config.input_size), vit.depth
        size = models[key]
        for spec in [c[k] for k in ("data", "source", "target") if k in c]:
            if (spec, size) not in sizes:
                sizes[(spec, size)] = _train_size(load_data, DataContext, str(spec), size)
        t.spec.check(t, {s: n for (s, z), n in sizes.items() if z == size}, depths[key])
        advance(1)
    return depths


def _train_size(load_data: Any, ctx: Any, spec: str, size: int) -> int:
    try:
        bundle = load_data(spec, ctx(input_size=size))
    except VitplastError as exc:
        raise VitplastError(f"data {spec}: {exc}") from None
    return len(bundle.train)
