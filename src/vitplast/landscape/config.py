"""Settings of ``vitplast landscape`` (:class:`LandscapeConfig`, one field per CLI option).

This module imports no numerical library, so the command line reads defaults and help from it and refuses a bad
option without loading torch. The computation is :func:`vitplast.landscape.run.compute_landscape`
(``docs/landscape.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vitplast.components import SELECTABLE
from vitplast.configs import MODEL_HELP, device_option, option, seed_option, validate
from vitplast.errors import VitplastError
from vitplast.train.config import HEAD_INITS
from vitplast.units import parse_train, resolve

#: Most grid points of one run (``grid ** 2`` per group; each is a loss evaluation and a row of landscape.csv),
#: checked before any training: a million points take hours and hold about 100 MB of tables.
MAX_GRID_POINTS = 1_000_000


def panel(spec: str, label: str = "--groups") -> str:
    """One panel's trainable set in canonical form, its items joined by ``+`` as a sweep's tables write them:
    ``"ln2,mha@11,8-10"`` (or ``"ln2+mha@8-11"``) -> ``"mha@8-11+ln2"``; a whole group stays its name. Only
    ``embed ln1 mha ln2 fc1 fc2`` (each optionally @BLOCKS, :mod:`vitplast.units`) are accepted: ``full`` and
    ``ln-control`` are no component group's landscape. Errors name ``label``."""
    return "+".join(parse_train(spec.replace("+", ","), label, SELECTABLE))


def resolve_panel(spec: str, depth: int, model: str) -> str:
    """:func:`panel` checked against a model of ``depth`` blocks (:func:`vitplast.units.resolve`): a block
    index past the last block is an error, a unit set naming every block is the whole group."""
    return "+".join(resolve(panel(spec).split("+"), depth, model))


@dataclass(frozen=True)
class LandscapeConfig:
    """Settings of ``vitplast landscape`` (one per CLI option)."""

    model: str = option("micro", help=MODEL_HELP)
    data: str = option("mini:digits", help="Data spec whose train split is trained on and evaluated, e.g. mini:digits.")
    groups: tuple[str, ...] = option(
        ("mha",), help="Trainable sets, one landscape each: a component group or a unit set such as mha@8-11 or "
        "mha@8-11+ln2 (docs/selectors.md)."
    )
    steps: int = option(20, help="SGD updates of the group's trajectory (>= 3).", ge=3)
    grid: int = option(
        9, help="Grid points per direction (odd, >= 3: the centre is the trajectory's final point).", ge=3
    )
    span: float = option(
        1.5, help="Grid half-width along each direction, in multiples of the trajectory's extent along it.", gt=0
    )
    lr: float = option(0.1, help="SGD learning rate (no momentum, no weight decay, no clipping).", gt=0)
    batch_size: int = option(32, help="Images per SGD update.", ge=1)
    eval_images: int = option(
        64, help="Fixed train-split images on which every landscape and trajectory loss is evaluated.", ge=1
    )
    head_init: str = option(
        "random",
        help="The frozen classifier: random (a new head, as the paper's runs start) or probe (the linear probe).",
        choices=HEAD_INITS,
    )
    seed: int = seed_option(help="Seed of the new head, the SGD batch order and the evaluation images.")
    device: str = device_option()
    random_weights: bool = option(False, help="Build the architecture with random weights (offline tests).")

    def __post_init__(self) -> None:
        validate(self)
        object.__setattr__(self, "groups", tuple(panel(g) for g in self.groups))
        if self.grid % 2 == 0:
            raise VitplastError(f"--grid must be odd (its centre is the final point), got {self.grid}")
        if not self.groups:
            raise VitplastError(f"--groups needs at least one of {' '.join(SELECTABLE)}")
        points = self.grid**2 * len(self.groups)
        if points > MAX_GRID_POINTS:
            top = math.isqrt(MAX_GRID_POINTS // len(self.groups))
            raise VitplastError(
                f"--grid {self.grid} asks for {points:,} loss evaluations ({len(self.groups)} x {self.grid}^2), more "
                f"than the {MAX_GRID_POINTS:,} a run may hold in memory: use --grid {top - (1 - top % 2)} or less")
        if len(set(self.groups)) != len(self.groups):
            raise VitplastError(f"--groups lists a group twice: {','.join(self.groups)}")
