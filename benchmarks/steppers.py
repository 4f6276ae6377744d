"""The two training steps the engine benchmarks compare, on a fixed batch (used by ``finetune_speed.py`` and
``gpu_speed.py``): the engine's own step and a minimal hand-written PyTorch step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from vitplast.models.vit import ViT
from vitplast.train.config import TrainConfig
from vitplast.train.groups import freeze_except


def plain_step(module: torch.nn.Module, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter],
               x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None) -> None:
    """The minimal hand-written step the engine is compared with."""
    opt.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        logits = module(x)
    F.cross_entropy(logits.float(), y).backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def plain_stepper(vit: ViT, group: str, dtype: torch.dtype | None, x: torch.Tensor,
                  y: torch.Tensor) -> Callable[[], None]:
    """:func:`plain_step` of ``group`` (the others frozen) on the fixed batch ``(x, y)``, with its own
    ``torch.optim.SGD`` (lr 1e-3, momentum 0.9)."""
    params = [p for ps in freeze_except(vit, (group,)).values() for p in ps]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    return lambda: plain_step(vit.module, opt, params, x, y, dtype)


def engine_stepper(vit: ViT, group: str, precision: str, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                   compile_: bool = False) -> Callable[[], Any]:
    """The engine's step (:class:`vitplast.train.loop._Engine`) of ``group`` in ``precision`` on the fixed batch
    ``(x, y)``: SGD momentum 0.9, lr 1e-3, clipping at 1.0, ``torch.compile`` of the forward with ``compile_``."""
    from vitplast.precision import resolve_precision
    from vitplast.train.config import RunOptions
    from vitplast.train.loop import Prepared, _Engine

    cfg = TrainConfig(model="bench", data="bench", train=(group,), optimizer="sgd", lr=1e-3, steps=10**6,
                      batch_size=len(x), warmup_steps=0, precision=precision)
    prep = Prepared(cfg, vit, None, freeze_except(vit, cfg.train), "")  # type: ignore[arg-type]
    eng = _Engine(prep, None, device, 0, RunOptions(compile=compile_), resolve_precision(precision, device),  # type: ignore[arg-type]
                  None)
    feed = iter(lambda: (x, y), None)
    return lambda: eng.step(feed, 1e-3)
