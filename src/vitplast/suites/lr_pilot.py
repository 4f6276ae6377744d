"""The learning-rate pilot of a staged design (``docs/mini-protocol.md``, "Learning rates").

A staged design finetunes one *pilot* seed over a grid of learning rates for every (target, group), then the
other seeds at the lr the pilot chose. The grid widens by itself: while the best pilot lr (highest validation
accuracy of the best checkpoint; ties: the smaller lr; a diverged run never wins) is the smallest or the largest
lr tried, the next lr beyond that edge is added, up to ``max_lrs`` lrs in all (when every run diverged, a
smaller one). Lrs step along the half-decade
ladder ``1, 3, 10, 30, ...`` x 10^k (:func:`ladder_step`), so that widened lrs keep short names and a run's id
is the same whichever stage added it.

:func:`pilot_state` is the whole rule, on plain numbers: it says which lrs must have run before a choice is made
and, once they have, the chosen lr. It is pure (no files), so the suite can replay it on any results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def ladder_step(lr: float, up: bool) -> float:
    """The next lr on the half-decade ladder ``{1, 3} x 10^k`` above (``up``) or below ``lr``.

    ``1e-3 -> 3e-3 -> 1e-2`` upwards and ``1e-3 -> 3e-4 -> 1e-4`` downwards; ``lr`` must be on the ladder
    (mantissa 1 or 3, to 12 significant digits)."""
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr}")
    k = math.floor(math.log10(lr) + 1e-9)
    mantissa = round(lr / 10.0**k, 9)
    if mantissa not in (1.0, 3.0):
        raise ValueError(f"lr {lr:g} is not on the half-decade ladder 1, 3 x 10^k")
    if up:
        nxt = 3 * 10.0**k if mantissa == 1.0 else 10.0 ** (k + 1)
    else:
        nxt = 3 * 10.0 ** (k - 1) if mantissa == 1.0 else 10.0**k
    return float(f"{nxt:.12g}")


@dataclass(frozen=True)
class PilotState:
    """Where the pilot of one (target, group) stands: ``lrs`` (sorted) must all have run; ``chosen`` is the
    lr for the other seeds once they have (``None`` before); ``on_edge``: the choice is still the smallest or
    largest lr after the grid reached ``max_lrs`` lrs (reported, not hidden)."""

    lrs: tuple[float, ...]
    chosen: float | None
    on_edge: bool = False

    def planned(self, project: bool = False) -> float | None:
        """The lr for the other seeds: the choice, or, when ``project`` and the pilot is undecided, the middle
        of its lrs (a dry run's projection of the whole design)."""
        return self.chosen if self.chosen is not None or not project else self.lrs[len(self.lrs) // 2]


def pilot_state(grid: Sequence[float], val: Mapping[float, float | None], max_lrs: int) -> PilotState:
    """The lrs to run and the choice, given the initial ``grid`` and the validation accuracies ``val`` of the
    pilot runs finished so far (``None`` or NaN: the run diverged; an lr absent from ``val`` has not run).

    The rule (module docstring), replayed from the initial grid: each widening is decided only once every lr
    before it has run, so the same results always give the same lrs, whatever order they finished in."""
    if not grid or max_lrs < len(grid):
        raise ValueError(f"need a non-empty grid of at most max_lrs={max_lrs} lrs, got {list(grid)}")
    lrs = sorted({float(x) for x in grid})
    while True:
        if any(lr not in val for lr in lrs):
            return PilotState(tuple(lrs), None)
        score = {lr: _score(val[lr]) for lr in lrs}
        top = max(score.values())
        best = min(lr for lr in lrs if score[lr] == top)  # every run diverged: the smallest, widened downwards
        edge = best in (lrs[0], lrs[-1])
        if not edge or len(lrs) >= max_lrs:
            return PilotState(tuple(lrs), best, on_edge=edge)
        up = best == lrs[-1] and top > -math.inf
        lrs = sorted([*lrs, ladder_step(lrs[-1] if up else lrs[0], up=up)])


def candidate_lrs(grid: Sequence[float], max_lrs: int) -> list[float]:
    """Every lr a pilot starting from ``grid`` could ever ask for: the grid widened by ``max_lrs - len(grid)``
    half-decades on both sides (to look the finished pilot runs up by their ids)."""
    ladder = sorted(grid)
    for _ in range(max_lrs - len(ladder)):
        ladder = [ladder_step(ladder[0], up=False), *ladder, ladder_step(ladder[-1], up=True)]
    return ladder


def _score(v: float | None) -> float:
    return -math.inf if v is None or not math.isfinite(v) else float(v)
