"""What defines a training run (:class:`TrainConfig`) and how it is executed (:class:`RunOptions`).

``TrainConfig`` is the identity of a run: two runs with equal configs produce the same result, and
``--resume`` refuses a directory whose ``config.json`` holds a different one. ``RunOptions`` (device,
loader workers, compilation, evaluation batch, figures) may change between an interrupted run and its resumption.

Every training default lives in a field of :class:`TrainConfig` (help text and constraints in its metadata,
:mod:`vitplast.configs`); the command line and the sweep YAML read them from there. Defaults follow the
paper's recipe (``docs/precision.md`` lists them): SGD with momentum 0.9, weight decay 0, batch 512, gradient
clipping at norm 1.0, linear warmup then cosine decay, RandomResizedCrop. Data sets named in :data:`RECIPES`
(the 32 px ``mini:*`` sets) replace some of them by the recipe of the mini suite, see :meth:`TrainConfig.for_data`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from vitplast.configs import BUNDLED_MODELS, MODEL_HELP, device_option, option, seed_option, validate
from vitplast.errors import VitplastError
from vitplast.precision import PRECISION_HELP, PRECISIONS
from vitplast.units import parse_train as parse_groups  # re-exported: the training choice, torch-free
from vitplast.units import resolve

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
#: ``rrc``: RandomResizedCrop + horizontal flip (the paper's finetuning). ``crop``: random crop of the
#: input size from the image padded by 1/8 of its side (reflect) + flip (the usual 32 px pretraining recipe).
#: ``none``: the eval transform (resize + centre crop), no randomness.
AUGMENTS = ("rrc", "crop", "none")
#: The new classifier's start: ``random`` (the paper's protocol) or ``probe`` (the linear probe, LP-FT).
HEAD_INITS = ("random", "probe")
#: Settings that replace :class:`TrainConfig` defaults for data specs starting with the key: the 32 px mini
#: sets get the mini suite's recipe (AdamW 1e-3, 70 steps of batch 32, validation at steps 35 and 70, no
#: augmentation: RandomResizedCrop destroys 32 px images, and batch 512 x 1000 steps takes hours on a CPU).
RECIPES: dict[str, dict[str, Any]] = {
    "mini:": {"optimizer": "adamw", "lr": 1e-3, "steps": 70, "batch_size": 32, "eval_every": 35, "augment": "none"},
}

#: The model and data set a run, a probe or an evaluation of the command line uses unless told otherwise.
DEFAULT_MODEL = "micro"
DEFAULT_DATA = "mini:digits"
DATA_HELP = "Data spec: mini:digits, cifar10, folder:PATH, ..."

#: The micro-ViT's pretraining data set.
PRETRAIN_SOURCE = "mini:source"
#: The fixed parts of the micro-ViT pretraining recipe (the settings are :class:`PretrainConfig`'s): the warmup
#: is at most ``warmup_steps`` (and a tenth of the run), the validation split is scored ``evaluations`` times.
PRETRAIN_FIXED: dict[str, Any] = {"warmup_steps": 50, "label_smoothing": 0.1, "evaluations": 2, "clip": 1.0}


def recipe_for(data: str) -> dict[str, Any]:
    """The settings :data:`RECIPES` gives data spec ``data`` (empty: the :class:`TrainConfig` defaults)."""
    for prefix, settings in RECIPES.items():
        if data.startswith(prefix):
            return dict(settings)
    return {}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the result of a training run.

    ``train`` is ``("full",)`` or a tuple of groups from ``embed ln1 mha ln2 fc1 fc2`` and unit sets such as
    ``mha@8-11`` (a string such as ``"mha@8-11,ln1"`` is accepted and canonicalised, :mod:`vitplast.units`;
    the blocks are checked against the model when it is loaded, :meth:`resolved`); the ``head`` group (new classifier + final norm) is always
    trained. ``batch_size`` is the effective batch, processed as ``grad_accum`` micro-batches of
    ``batch_size // grad_accum`` images. ``warmup_steps`` ``None`` means 5 % of ``steps``. Invalid values
    raise :class:`~vitplast.errors.VitplastError` on construction.
    """

    model: str = option(DEFAULT_MODEL, help=MODEL_HELP)
    data: str = option(DEFAULT_DATA, help=DATA_HELP)
    train: tuple[str, ...] = option(
        ("full",), help="'full', a comma list of embed ln1 mha ln2 fc1 fc2, each of the last five optionally in "
        "some blocks only (mha@8-11, ln1@0,2,4; docs/selectors.md), or ln-control alone (the LayerNorms' "
        "parameter-matched control: random linear entries; docs/statistics.md). The head is always trained.",
    )
    optimizer: str = option("sgd", help="Optimizer: sgd (with momentum) or adamw.", choices=OPTIMIZERS)
    lr: float = option(1e-2, help="Peak learning rate.", gt=0)
    momentum: float = option(0.9, help="SGD momentum.", ge=0, lt=1)
    weight_decay: float = option(0.0, help="Weight decay, on weight matrices only.", ge=0)
    steps: int = option(1000, help="Optimizer updates.", ge=1)
    batch_size: int = option(512, help="Effective batch (images per update).", ge=1)
    grad_accum: int = option(1, help="Micro-batches per update (batch size must be divisible by it).", ge=1)
    clip: float = option(1.0, help="Gradient-norm clipping threshold (0: off).", ge=0)
    warmup_steps: int | None = option(None, help="Linear warmup steps (default: 5% of the steps).", ge=0)
    schedule: str = option("cosine", help="Learning rate after warmup: cosine decay or constant.", choices=SCHEDULES)
    eval_every: int = option(200, help="Validate every N steps (and after the last).", ge=1)
    seed: int = seed_option(help="Seed of the head, data order and augmentation (and of random weights).")
    label_smoothing: float = option(0.0, help="Label smoothing of the cross-entropy.", ge=0, lt=1)
    augment: str = option(
        "rrc", help="rrc (RandomResizedCrop + flip, the paper's), crop (pad-crop + flip), none.", choices=AUGMENTS
    )
    random_weights: bool = option(False, help="Random initialisation instead of pretrained weights.")
    head_init: str = option(
        "random", help="random (the paper's new head) or probe (LP-FT: start from the linear probe).",
        choices=HEAD_INITS,
    )
    precision: str = option("auto", help=PRECISION_HELP, choices=PRECISIONS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "train", parse_groups(self.train))
        validate(self)
        if self.batch_size % self.grad_accum:
            raise VitplastError(
                f"--batch-size {self.batch_size} is not divisible by --grad-accum {self.grad_accum}"
            )
        if self.warmup_steps is not None and self.warmup_steps > self.steps:
            raise VitplastError(f"--warmup-steps must be in [0, steps={self.steps}], got {self.warmup_steps}")

    def resolved(self, depth: int) -> TrainConfig:
        """This config on a model of ``depth`` blocks: block indices checked, a unit set naming every block
        written as its whole group (:func:`vitplast.units.resolve`)."""
        return dataclasses.replace(self, train=resolve(self.train, depth, self.model))

    @property
    def warmup(self) -> int:
        """Warmup length in steps (explicit, or 5 % of the run)."""
        return self.warmup_steps if self.warmup_steps is not None else self.steps // 20

    @property
    def micro_batch(self) -> int:
        return self.batch_size // self.grad_accum

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"] = list(self.train)
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainConfig:
        """From :meth:`to_dict`'s output; unknown keys are ignored, missing ones take their default (a
        ``config.json`` written before ``precision`` existed reads as ``auto``, which is fp32 on CPU)."""
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["train"] = tuple(kw.get("train", ("full",)))
        return TrainConfig(**kw)

    @staticmethod
    def for_data(model: str, data: str, **given: Any) -> TrainConfig:
        """The config of ``model`` on ``data``: field defaults, replaced by :func:`recipe_for` ``(data)``,
        replaced by the ``given`` settings."""
        return TrainConfig(model=model, data=data, **{**recipe_for(data), **given})

    def describe(self) -> str:
        """One line with the recipe in use (printed at the start of a command-line run)."""
        warm = f"{self.warmup} warmup" if self.warmup else "no warmup"
        opt = f"sgd momentum {self.momentum}" if self.optimizer == "sgd" else "adamw"
        return (
            f"{opt}, lr {self.lr:g} ({warm}, {self.schedule}), {self.steps} steps of batch {self.batch_size}"
            f"{f' in {self.grad_accum} micro-batches' if self.grad_accum > 1 else ''}, weight decay "
            f"{self.weight_decay:g}, clip {self.clip:g}, augment {self.augment}, eval every {self.eval_every}, "
            f"seed {self.seed}, precision {self.precision}"
        )


@dataclass(frozen=True)
class PretrainConfig:
    """The settings of a micro-ViT pretraining (``vitplast pretrain``, :mod:`vitplast.train.pretrain`); the rest
    of the recipe is fixed (:data:`PRETRAIN_FIXED`). Torch-free, so the command checks its options before loading
    torch."""

    steps: int = option(3000, help="Optimizer updates.", ge=1)
    batch_size: int = option(128, help="Images per update.", ge=1)
    lr: float = option(1e-3, help="AdamW peak learning rate.", gt=0)
    warmup_steps: int | None = option(
        None, help=f"Linear warmup steps (default: min({PRETRAIN_FIXED['warmup_steps']}, steps / 10)).", ge=0
    )
    weight_decay: float = option(0.05, help="AdamW decoupled weight decay of matrices.", ge=0)
    seed: int = seed_option(help="Seed of the initialisation, data order and augmentation.")
    data: str = option(PRETRAIN_SOURCE, help="Pretraining data spec.")
    precision: str = option("auto", help=PRECISION_HELP, choices=PRECISIONS)
    name: str = option("micro", help="Bundled model this run makes: micro or micro-long (the card's name and the "
                       "--install target).", choices=BUNDLED_MODELS)

    def __post_init__(self) -> None:
        validate(self)
        self.train_config(DEFAULT_MODEL)  # the recipe's own checks (warmup within the run, ...)

    def train_config(self, model: str) -> TrainConfig:
        """The recipe as a validated :class:`TrainConfig` for ``model`` (a spec). Warmup shrinks with short runs;
        the validation split is scored ``PRETRAIN_FIXED["evaluations"]`` times (half way and at the end), as
        each evaluation costs about as much as 40 training steps on a CPU."""
        fixed = PRETRAIN_FIXED
        warmup = self.warmup_steps if self.warmup_steps is not None else min(fixed["warmup_steps"], self.steps // 10)
        return TrainConfig(
            model=model, data=self.data, train=("full",), optimizer="adamw", lr=self.lr,
            weight_decay=self.weight_decay, steps=self.steps, batch_size=self.batch_size, clip=fixed["clip"],
            warmup_steps=warmup, schedule="cosine", eval_every=max(1, self.steps // fixed["evaluations"]),
            seed=self.seed, label_smoothing=fixed["label_smoothing"], augment="crop", random_weights=True,
            precision=self.precision,
        )  # fmt: skip


def _check_C(label: str, value: Any) -> None:
    if not (math.isfinite(value) and value > 0):
        raise VitplastError(f"{label} must be a finite number > 0, got {value}")


@dataclass(frozen=True)
class ProbeConfig:
    """A linear probe (:func:`vitplast.train.probe.linear_probe`): logistic regression on the standardised
    mean-pooled last-block features; ``C`` (the inverse regularisation) is chosen on the validation split unless
    given. Invalid values raise :class:`~vitplast.errors.VitplastError` on construction."""

    model: str = option(DEFAULT_MODEL, help=MODEL_HELP)
    data: str = option(DEFAULT_DATA, help=DATA_HELP)
    C: float | None = option(None, help="Inverse regularisation (default: chosen on the validation split).",
                             finite=False, check=_check_C)
    batch_size: int = option(256, help="Images per feature-extraction batch.", ge=1)
    precision: str = option("auto", help=PRECISION_HELP, choices=PRECISIONS)
    random_weights: bool = option(False, help="Random initialisation instead of pretrained weights.")

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class EvaluateConfig:
    """A finished run's best checkpoint scored on another data set (:func:`vitplast.train.evaluate.evaluate_run`)."""

    data: str = option(help=DATA_HELP)
    split: str = option("test", help="Split to score: train, val or test.")
    batch_size: int = option(256, help="Images per evaluation batch.", ge=1)
    precision: str = option("auto", help=PRECISION_HELP, choices=PRECISIONS)
    label_map: str | None = option(
        None, help="When the class names differ: DATA=RUN,... or 'index' (match by position)."
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class RunOptions:
    """How a run is executed; none of it changes the result (up to floating-point non-determinism of devices)."""

    device: str = device_option()
    workers: int | None = option(
        None, help="Data-loader processes (default: 0 on CPU, one per spare CPU core up to 8 on a GPU).", ge=0
    )
    eval_batch_size: int | None = option(
        None, help="Images per evaluation batch (default: 256, or the micro-batch if larger).", ge=1
    )
    compile: bool = option(False, help="torch.compile the model's forward (pays off on long GPU runs).")
    plots: bool = option(False, help="Draw curves.png in the run directory at the end.")

    def __post_init__(self) -> None:
        validate(self)

    def eval_batch(self, cfg: TrainConfig) -> int:
        """Evaluation batch size: explicit, else ``max(256, micro-batch)`` (no gradients: larger batches fit)."""
        return self.eval_batch_size or max(256, cfg.micro_batch)


#: Config fields every run of a run bundle shares (``docs/mini-protocol.md``, "Run bundles"); the others (seed, lr,
#: trained groups, schedule, weight decay, momentum, clipping, head initialisation) may differ per run.
BUNDLE_SHARED = ("model", "data", "steps", "batch_size", "grad_accum", "eval_every", "augment", "random_weights",
                 "precision", "optimizer", "label_smoothing")


def bundle_key(cfg: TrainConfig) -> tuple[Any, ...]:
    """Runs with equal keys can train in one bundle (:data:`BUNDLE_SHARED`; random weights depend on the seed)."""
    return (*(getattr(cfg, f) for f in BUNDLE_SHARED), cfg.seed if cfg.random_weights else None)
