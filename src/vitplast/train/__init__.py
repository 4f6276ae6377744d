"""Component-wise finetuning, linear probing, evaluation and pretraining (docs/precision.md for the engine).

The configs are imported eagerly (they are torch-free, so the command line can read their defaults and help
quickly); everything that needs torch is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vitplast.lazy import lazy_getattr
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


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
