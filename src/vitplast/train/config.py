"""What defines a training run (:class:`TrainConfig`) and how it is executed (:class:`RunOptions`).

``TrainConfig`` is the identity of a run: two runs with equal configs produce the same result, and
``--resume`` refuses a directory whose ``config.json`` holds a different one. ``RunOptions`` (device,
loader workers, progress display) may change between an interrupted run and its resumption.

Defaults follow SPEC section 3: SGD with momentum 0.9, weight decay 0, batch 512, gradient clipping at
norm 1.0, linear warmup then cosine decay, evaluation on the validation split every few hundred steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vitplast.errors import VitplastError
from vitplast.train.groups import parse_groups

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
#: ``rrc``: RandomResizedCrop + horizontal flip (SPEC section 3, finetuning). ``crop``: random crop of the
#: input size from the image padded by 1/8 of its side (reflect) + flip (the usual 32 px pretraining recipe).
#: ``none``: the eval transform (resize + centre crop), no randomness.
AUGMENTS = ("rrc", "crop", "none")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the result of a training run.

    ``train`` is ``("full",)`` or a tuple of groups from ``embed ln1 mha ln2 fc1 fc2``; the ``head``
    group (new classifier + final norm) is always trained. ``batch_size`` is the effective batch,
    processed as ``grad_accum`` micro-batches of ``batch_size // grad_accum`` images. ``warmup_steps``
    ``None`` means 5 % of ``steps``.
    """

    model: str
    data: str
    train: tuple[str, ...] = ("full",)
    optimizer: str = "sgd"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0
    steps: int = 1000
    batch_size: int = 512
    grad_accum: int = 1
    clip: float = 1.0
    warmup_steps: int | None = None
    schedule: str = "cosine"
    eval_every: int = 200
    seed: int = 0
    label_smoothing: float = 0.0
    augment: str = "rrc"
    random_weights: bool = False
    head_init: str = "random"

    @property
    def warmup(self) -> int:
        """Warmup length in steps (explicit, or 5 % of the run)."""
        return self.warmup_steps if self.warmup_steps is not None else self.steps // 20

    @property
    def micro_batch(self) -> int:
        return self.batch_size // self.grad_accum

    def validate(self) -> TrainConfig:
        """Check every value; raise :class:`VitplastError` naming the first bad one. Returns ``self``."""
        parse_groups(self.train)
        checks: list[tuple[bool, str]] = [
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.augment in AUGMENTS, f"augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}"),
            (self.head_init in ("random", "probe"), f"--head-init must be random or probe, got {self.head_init!r}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (0 <= self.momentum < 1, f"--momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (self.steps >= 1, f"--steps must be >= 1, got {self.steps}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.grad_accum >= 1, f"--grad-accum must be >= 1, got {self.grad_accum}"),
            (self.clip >= 0, f"--clip must be >= 0 (0 disables clipping), got {self.clip}"),
            (self.eval_every >= 1, f"--eval-every must be >= 1, got {self.eval_every}"),
            (0 <= self.label_smoothing < 1, f"label smoothing must be in [0, 1), got {self.label_smoothing}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise VitplastError(msg)
        if self.batch_size % self.grad_accum:
            raise VitplastError(
                f"--batch-size {self.batch_size} is not divisible by --grad-accum {self.grad_accum}"
            )
        if self.warmup_steps is not None and not 0 <= self.warmup_steps <= self.steps:
            raise VitplastError(f"--warmup-steps must be in [0, steps={self.steps}], got {self.warmup_steps}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"] = list(self.train)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["train"] = tuple(kw.get("train", ("full",)))
        return TrainConfig(**kw)

    @staticmethod
    def make(model: str, data: str, train: str | Sequence[str] = "full", **kw: Any) -> TrainConfig:
        """Build and validate a config; ``train`` may be ``"full"``, ``"mha,ln1"`` or a sequence of names."""
        return TrainConfig(model=model, data=data, train=parse_groups(train), **kw).validate()


@dataclass
class RunOptions:
    """How a run is executed; none of it changes the result (up to floating-point non-determinism of devices).

    ``device``: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``workers``:
    data-loader worker processes (``None``: 0 on CPU, up to 4 on an accelerator); ``eval_batch_size``:
    ``None`` uses the micro-batch size; ``progress``: show a progress bar.
    """

    device: str = "auto"
    workers: int | None = None
    eval_batch_size: int | None = None
    progress: bool = False
