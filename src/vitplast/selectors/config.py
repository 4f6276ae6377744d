"""Settings of one recommendation (``vitplast recommend``) and the selector names they accept.

This module imports no numerical library, so the command line reads defaults and help from
:class:`RecommendConfig` and refuses a bad option without loading torch. The recommendation itself is
:func:`vitplast.selectors.recommend.recommend`; the selectors are defined in ``docs/selectors.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vitplast.configs import MODEL_HELP, device_option, option, seed_option, validate
from vitplast.errors import VitplastError
from vitplast.selectors.registry import selector_index, selector_info

GRANULARITIES = ("group", "block")


def default_selectors(granularity: str) -> tuple[str, ...]:
    """Every registered selector that scores at ``granularity``, in table order (:mod:`vitplast.selectors.registry`)."""
    return tuple(n for n, i in selector_index().items() if granularity == "block" or not i.block_only)


@dataclass(frozen=True)
class RecommendConfig:
    """Settings of one recommendation (the options of ``vitplast recommend``)."""

    model: str = option("micro", help=MODEL_HELP)
    data: str = option("mini:digits", help="Target data spec (the task to finetune on), e.g. mini:digits, folder:PATH.")
    source: str = option("mini:source", help="Source (pretraining-like) data for the plasticity selectors' pairs.")
    selectors: tuple[str, ...] = option((), help="Selectors to run (comma list; default: every selector of the "
                                        "granularity); the first one's set is the recommendation unless --pilot "
                                        "settles it.")
    granularity: str = option("group", help="group: rank the groups embed ln1 mha ln2 fc1 fc2 (every block); block: "
                              "rank (component, block) units such as mha@11 (docs/selectors.md).",
                              choices=GRANULARITIES)
    budget: float = option(0.1, help="Parameter budget: a fraction in (0, 1] of the backbone's parameters, or a "
                           "whole number > 1 of parameters (the head is always trained and not counted).", gt=0)
    images: int = option(32, help="Target images (train split) the selectors see (and plasticity pairs).", ge=2)
    pilot: int | None = option(None, help="Steps of the first pilot round: short finetunes of the candidate sets, "
                               "successive halving (steps double each round). Off by default.", gt=0)
    candidates: int = option(4, help="Most candidate sets the pilot trains.", ge=1)
    seed: int = seed_option(help="Seed of the image draw, the new head and the random selector.")
    device: str = device_option()
    random_weights: bool = option(False, help="Build the architecture with random weights (offline).")

    def __post_init__(self) -> None:
        validate(self)
        if not self.selectors:
            object.__setattr__(self, "selectors", default_selectors(self.granularity))
        for name in self.selectors:
            selector_info(name)  # an unknown name is refused
        if self.budget > 1 and self.budget != int(self.budget):
            raise VitplastError(f"--budget must be a fraction in (0, 1] or a whole number of parameters, got {self.budget}")

    def budget_params(self, total: int) -> int:
        """The budget in parameters for a backbone of ``total`` parameters."""
        return math.floor(self.budget * total) if self.budget <= 1 else int(self.budget)
