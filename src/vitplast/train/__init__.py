"""Component-wise finetuning, linear probing, evaluation and pretraining (docs/precision.md for the engine).

The configs are imported eagerly (they are torch-free, so the command line can read their defaults and help
quickly); everything that needs torch is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vitplast.train.config import RunOptions, TrainConfig

if TYPE_CHECKING:
    from vitplast.train.api import FinetuneResult, finetune
    from vitplast.train.groups import freeze_except, parse_groups, trainable_groups

_LAZY = {
    "FinetuneResult": "vitplast.train.api",
    "finetune": "vitplast.train.api",
    "freeze_except": "vitplast.train.groups",
    "parse_groups": "vitplast.train.groups",
    "trainable_groups": "vitplast.train.groups",
}

__all__ = ["FinetuneResult", "RunOptions", "TrainConfig", "finetune", "freeze_except", "parse_groups",
           "trainable_groups"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
