"""Component-wise finetuning, linear probing, evaluation and pretraining (SPEC section 3)."""

from vitplast.train.config import RunOptions, TrainConfig
from vitplast.train.finetune import FinetuneResult, finetune
from vitplast.train.groups import freeze_except, parse_groups, trainable_groups

__all__ = [
    "FinetuneResult",
    "RunOptions",
    "TrainConfig",
    "finetune",
    "freeze_except",
    "parse_groups",
    "trainable_groups",
]
