"""Power of a finetuning design by simulation (``docs/statistics.md``, "Power").

A :class:`Design` is the shape of a study (test images per target, seeds) and a model of its noise: on
each target every test image has a difficulty ``p_i ~ Beta(a c, (1 - a) c)`` (mean accuracy ``a``,
concentration ``c``) shared by every group, and seed ``s`` of group ``g`` gets image ``i`` right with
probability ``expit(logit p_i + u_gs + shift_g)``, ``u_gs ~ N(0, tau^2)`` independent over groups and seeds.
``tau`` is set so that the standard deviation over seeds of one group's test accuracy is ``seed_sd`` (the
binomial noise of ``n_test`` images included): ``tau = sqrt(seed_sd^2 - v / n) / v`` with
``v = E[p (1 - p)] = a (1 - a) c / (c + 1)``.

:func:`difference_mde` simulates studies without any difference, applies the report's test
(:func:`vitplast.report.inference.difference_test`) and returns the smallest difference ``Delta`` that a
shift of the estimate by ``Delta`` makes significant in a fraction ``power`` of them:
the ``power`` quantile of ``t_{df, 1 - level} se - estimate`` over the simulated studies (small effects move the
estimate, not its standard error). :func:`design_power` states the design's smallest detectable effects of the
declared primary tests at the family's corrected level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.special import expit, logit

from vitplast.configs import option, validate
from vitplast.report import inference as I

ALPHA = 0.05
POWER = 0.8
#: the declared smallest effects of interest: an accuracy difference (points / 100) and a mean rank correlation
MIN_DIFFERENCE = 0.015
MIN_RHO = 0.6
#: the primary family (its size sets the corrected level alpha / m; docs/statistics.md)
PRIMARY = ("order", "plasticity", "ln-control")
HIGH, LOW, CONTROL = ("mha", "fc1", "fc2"), ("ln1", "ln2"), ("ln-control",)


@dataclass(frozen=True)
class Design:
    """A study's shape and noise model (module docstring)."""

    n_test: tuple[int, ...] = option(help="Test images of each target.")
    seeds: int = option(3, help="Seeds per (target, group).", ge=2)
    accuracy: float = option(0.8, help="Mean test accuracy of a group.", gt=0, lt=1)
    seed_sd: float = option(0.02, help="SD over seeds of one group's test accuracy.", ge=0, lt=0.5)
    concentration: float = option(1.0, help="Beta concentration of the per-image difficulty.", gt=0)

    def __post_init__(self) -> None:
        validate(self)
        if not self.n_test or min(self.n_test) < 2:
            from vitplast.errors import VitplastError

            raise VitplastError(f"--n-test needs at least one target of >= 2 images, got {self.n_test}")

    @property
    def image_variance(self) -> float:
        """``E[p (1 - p)]`` of the per-image difficulty."""
        a, c = self.accuracy, self.concentration
        return a * (1 - a) * c / (c + 1)

    def logit_sd(self, n_test: int) -> float:
        """``tau`` of the seed effect on a target of ``n_test`` images (module docstring)."""
        v = self.image_variance
        return math.sqrt(max(self.seed_sd**2 - v / n_test, 0.0)) / v


def simulate(design: Design, groups: Sequence[str], sims: int, rng: np.random.Generator,
             shift: Mapping[str, float] | None = None) -> list[dict[str, np.ndarray]]:
    """``sims`` independent studies: per target, ``group -> bool [sims, seeds, n_test]`` (module docstring);
    ``shift[g]`` moves group ``g`` on the logit scale (0 by default)."""
    a, c = design.accuracy, design.concentration
    out = []
    for n in design.n_test:
        lp = logit(np.clip(rng.beta(a * c, (1 - a) * c, (sims, 1, n)), 1e-9, 1 - 1e-9))
        tau = design.logit_sd(n)
        out.append({g: rng.random((sims, design.seeds, n)) < expit(
            lp + tau * rng.standard_normal((sims, design.seeds, 1)) + (shift or {}).get(g, 0.0)) for g in groups})
    return out


def difference_mde(design: Design, a: Sequence[str], b: Sequence[str], level: float, power: float = POWER,
                   two_sided: bool = False, sims: int = 400, seed: int = 0) -> float:
    """Smallest difference ``mean_a acc - mean_b acc`` detected with ``power`` at ``level`` (module docstring;
    two-sided: ``level / 2`` in the tail of the claimed sign)."""
    studies = simulate(design, [*a, *b], sims, np.random.default_rng(seed))
    r = I.difference_test(studies, a, b, "greater")
    crit = sps.t.ppf(1 - (level / 2 if two_sided else level), r.df)
    return float(np.quantile(crit * np.asarray(r.se) - np.asarray(r.effect), power))


@dataclass(frozen=True)
class Detectable:
    """One primary test's smallest detectable effect at the family's corrected level."""

    test: str
    effect: float
    unit: str


def design_power(design: Design, alpha: float = ALPHA, power: float = POWER, sims: int = 400) -> list[Detectable]:
    """Smallest detectable effects of the primary family (``m`` = :data:`PRIMARY`, level ``alpha / m``): the two
    accuracy differences (two-sided, as the report tests them), the mean within-target rho at ``power`` under
    :func:`vitplast.report.inference.rank_power`'s model, and the smallest mean rho that is significant at all."""
    level = alpha / len(PRIMARY)
    n = len(design.n_test)
    return [
        Detectable("MHA/FFN - LN", difference_mde(design, HIGH, LOW, level, power, True, sims), "pp"),
        Detectable("LN - ln-control", difference_mde(design, LOW, CONTROL, level, power, True, sims), "pp"),
        Detectable("mean within-target rho", I.rank_mde(n, level, power), "rho"),
        Detectable("smallest significant mean rho", I.rank_critical(n, level), "rho"),
    ]
