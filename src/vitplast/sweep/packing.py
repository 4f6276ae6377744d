"""Packing a sweep's finetuning tasks into run bundles (``docs/mini-protocol.md``, "Run bundles").

Tasks whose kinds give them equal bundle keys (:meth:`~vitplast.sweep.task.TaskKind.bundle_key`; finetuning runs:
:func:`~vitplast.train.config.bundle_key`, same model, data, steps, batch, evaluation schedule, ...) are packed into bundles of at most ``size`` runs, each executed as one trial
(:func:`~vitplast.sweep.execute.execute_bundle`); every other task is a pack of its own. Within a key, runs that
train the same groups are packed together first (plan order otherwise): a bundle computes the weight gradients of
every tensor any member trains, so an ``ln1`` run bundled with a ``full`` run would pay for ``full``'s gradients. fp16 runs
(one loss scaler per run) are never bundled. Bundling changes how runs execute, never what they are: each run
keeps its id, its folder and its files.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from vitplast.sweep.task import Task

#: Runs per bundle when ``--bundle`` is not given, per device type. On a CPU bundles measured no reliable gain
#: (docs/mini-protocol.md, "Run bundles"), so runs stay one per trial there.
DEFAULT_BUNDLE = {"cpu": 1, "cuda": 64}


def bundle_size(bundle: int | None, device: str, cuda: bool) -> int:
    """``bundle`` when given (checked by :class:`~vitplast.sweep.resources.Resources`), else :data:`DEFAULT_BUNDLE`
    of the device the runs will use (``auto``: CUDA when ``cuda``)."""
    if bundle is not None:
        return bundle
    on_gpu = device.startswith("cuda") or (device == "auto" and cuda)
    return DEFAULT_BUNDLE["cuda" if on_gpu else "cpu"]


def pack(tasks: Sequence[Task], size: int) -> list[list[Task]]:
    """``tasks`` in packs (module docstring): unbundled tasks first, in plan order, then the bundles of each key."""
    packs: list[list[Task]] = []
    by_key: dict[Hashable, list[tuple[str, Task]]] = {}
    for t in tasks:
        key = t.spec.bundle_key(t) if size > 1 else None
        if key is None:
            packs.append([t])
            continue
        by_key.setdefault(key[0], []).append((key[1], t))
    for runs in by_key.values():
        groups = list(dict.fromkeys(g for g, _ in runs))
        ordered = [t for _, t in sorted(runs, key=lambda gt: groups.index(gt[0]))]  # stable: plan order per group
        packs += [ordered[i:i + size] for i in range(0, len(ordered), size)]
    return packs
