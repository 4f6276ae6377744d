"""Packing a sweep's finetuning tasks into run bundles (``docs/mini-protocol.md``, "Run bundles").

Finetuning tasks whose configs have equal :func:`~vitplast.train.config.bundle_key` (same model, data, steps,
batch, evaluation schedule, ...) are packed, in plan order, into bundles of at most ``size`` runs, each executed
as one trial (:func:`~vitplast.sweep.execute.execute_bundle`); every other task is a pack of its own. fp16 runs
(one loss scaler per run) are never bundled. Bundling changes how runs execute, never what they are: each run
keeps its id, its folder and its files.
"""

from __future__ import annotations

from collections.abc import Sequence

from vitplast.sweep.plan import Task

#: Runs per bundle when ``--bundle`` is not given, per device type (docs/mini-protocol.md: measured ratios).
DEFAULT_BUNDLE = {"cpu": 9, "cuda": 64}


def bundle_size(bundle: int | None, device: str, cuda: bool) -> int:
    """``bundle`` when given (checked by :class:`~vitplast.sweep.runner.Resources`), else :data:`DEFAULT_BUNDLE`
    of the device the runs will use (``auto``: CUDA when ``cuda``)."""
    if bundle is not None:
        return bundle
    on_gpu = device.startswith("cuda") or (device == "auto" and cuda)
    return DEFAULT_BUNDLE["cuda" if on_gpu else "cpu"]


def pack(tasks: Sequence[Task], size: int) -> list[list[Task]]:
    """``tasks`` in packs (module docstring); the order of the tasks inside and across packs follows ``tasks``."""
    from vitplast.train.config import TrainConfig, bundle_key

    packs: list[list[Task]] = []
    open_packs: dict[tuple[object, ...], list[Task]] = {}
    for t in tasks:
        cfg = TrainConfig.from_dict(t.config) if t.kind == "finetune" and size > 1 else None
        if cfg is None or cfg.precision == "fp16":
            packs.append([t])
            continue
        key = bundle_key(cfg)
        current = open_packs.get(key)
        if current is None or len(current) >= size:
            current = open_packs[key] = []
            packs.append(current)
        current.append(t)
    return packs
