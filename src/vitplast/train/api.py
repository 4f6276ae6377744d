"""Component-wise finetuning (README, "Reproducing the paper offline"): the public :func:`finetune`."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitplast.data import DataBundle
from vitplast.models.vit import ViT
from vitplast.progress import Progress
from vitplast.train.config import RunOptions, TrainConfig
from vitplast.train.loop import StepCallback, prepare, run


@dataclass
class FinetuneResult:
    """``result`` is the content of ``result.json``; ``model`` holds the best-validation weights."""

    result: dict[str, Any]
    model: ViT
    out: Path | None

    @property
    def test_acc(self) -> float | None:
        acc = self.result.get("test_acc")
        return None if acc is None else float(acc)


def finetune(
    model: str | ViT,
    data: str | DataBundle,
    config: TrainConfig | str | Sequence[str] | None = None,
    options: RunOptions | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    callback: StepCallback | None = None,
    progress: Progress | None = None,
    **settings: Any,
) -> FinetuneResult:
    """Finetune groups of ``model`` on ``data`` with a new head; score the best checkpoint on test.

    ``model``: a model spec (``micro``, ``timm:ARCH``...) or a :class:`ViT` (trained in place; its name is
    recorded as the spec). ``data``: a data spec or a :class:`DataBundle`. ``config``: the run's
    :class:`TrainConfig` (its model and data names are replaced by those of ``model`` and ``data``), or
    only the trained groups (``"full"``, ``"mha,ln1"``, unit sets such as ``"mha@8-11,ln2"``, or a list) with
    every other setting from :meth:`TrainConfig.for_data`. ``options``: how to execute (:class:`RunOptions`). ``settings``: any
    field of either, replacing the value it has there (``steps=3, device="cpu"``).

    Outputs go to ``out`` (``config.json``, ``metrics.jsonl``, ``best.safetensors``, ``result.json``, and
    ``curves.png`` with ``plots``); with ``out=None`` they go to a temporary directory that is removed.
    ``resume`` continues an interrupted run in ``out`` (same config required). ``callback(step, model)``
    is called after every update; ``progress`` follows :mod:`vitplast.progress`. Bad values raise
    :class:`~vitplast.errors.VitplastError` before any file is written.
    """
    vit = model if isinstance(model, ViT) else None
    bundle = data if isinstance(data, DataBundle) else None
    names: dict[str, Any] = {"model": vit.name if vit is not None else str(model),
                             "data": bundle.name if bundle is not None else str(data)}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)} - set(names)
    run_keys = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(settings) - train_keys - run_keys)
    if unknown:
        raise TypeError(f"finetune() got unknown settings {unknown}")
    given = {k: v for k, v in settings.items() if k in train_keys}
    if isinstance(config, TrainConfig):
        cfg = dataclasses.replace(config, **names, **given)
    else:
        if config is not None:
            given["train"] = config
        cfg = TrainConfig.for_data(names["model"], names["data"], **given)
    opts = dataclasses.replace(options or RunOptions(), **{k: v for k, v in settings.items() if k in run_keys})
    prep = prepare(cfg, vit, bundle)
    if out is not None:
        result = run(prep, Path(out), opts, resume=resume, callback=callback, progress=progress)
        return FinetuneResult(result, prep.vit, Path(out))
    tmp = Path(tempfile.mkdtemp(prefix="vitplast-finetune-"))
    try:
        result = run(prep, tmp / "run", dataclasses.replace(opts, plots=False), callback=callback, progress=progress)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return FinetuneResult(result, prep.vit, None)
