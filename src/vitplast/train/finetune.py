"""Component-wise finetuning (SPEC section 3): the public :func:`finetune`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitplast.data import DataBundle
from vitplast.models.vit import ViT
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
    train: str | Sequence[str] = "full",
    *,
    out: str | Path | None = None,
    resume: bool = False,
    optimizer: str = "sgd",
    lr: float = 1e-2,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    steps: int = 1000,
    batch_size: int = 512,
    grad_accum: int = 1,
    clip: float = 1.0,
    warmup_steps: int | None = None,
    schedule: str = "cosine",
    eval_every: int = 200,
    seed: int = 0,
    label_smoothing: float = 0.0,
    augment: str = "rrc",
    head_init: str = "random",
    random_weights: bool = False,
    device: str = "auto",
    workers: int | None = None,
    eval_batch_size: int | None = None,
    progress: bool = False,
    callback: StepCallback | None = None,
) -> FinetuneResult:
    """Finetune ``train`` groups of ``model`` on ``data`` with a new head; score the best checkpoint on test.

    ``model``: a model spec (``micro``, ``timm:ARCH``...) or a :class:`ViT` (trained in place; its name is
    recorded as the spec). ``data``: a data spec or a :class:`DataBundle`. ``train``: ``"full"`` or groups
    from ``embed ln1 mha ln2 fc1 fc2`` (``"mha,ln1"`` or a list); the head and final norm are always
    trained. ``head_init``: ``"random"`` (the paper's new head) or ``"probe"`` (LP-FT: start from the
    standardised linear probe, :mod:`vitplast.train.head_init`). Outputs go to ``out`` (``config.json``, ``metrics.jsonl``, ``best.safetensors``,
    ``result.json``, ``curves.png``); with ``out=None`` they go to a temporary directory that is removed.
    ``resume`` continues an interrupted run in ``out`` (same config required). ``callback(step, model)``
    is called after every update. Bad values raise :class:`~vitplast.errors.VitplastError` before any
    file is written.
    """
    vit = model if isinstance(model, ViT) else None
    bundle = data if isinstance(data, DataBundle) else None
    cfg = TrainConfig.make(
        model=vit.name if vit is not None else str(model),
        data=bundle.name if bundle is not None else str(data),
        train=train,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        steps=steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        clip=clip,
        warmup_steps=warmup_steps,
        schedule=schedule,
        eval_every=eval_every,
        seed=seed,
        label_smoothing=label_smoothing,
        augment=augment,
        head_init=head_init,
        random_weights=random_weights,
    )
    prep = prepare(cfg, vit, bundle)
    opts = RunOptions(device=device, workers=workers, eval_batch_size=eval_batch_size, progress=progress)
    if out is not None:
        result = run(prep, Path(out), opts, resume=resume, callback=callback)
        return FinetuneResult(result, prep.vit, Path(out))
    tmp = Path(tempfile.mkdtemp(prefix="vitplast-finetune-"))
    try:
        result = run(prep, tmp / "run", opts, callback=callback)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return FinetuneResult(result, prep.vit, None)
