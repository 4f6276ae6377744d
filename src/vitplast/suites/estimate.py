"""Cost estimate of a sweep plan from throughputs and data-set sizes (``vitplast reproduce --dry-run``).

For a finetuning run of ``S`` steps with effective batch ``B``, evaluation every ``E`` steps on a
validation split of ``n_val`` images and a final test pass on ``n_test`` images::

    seconds = S * B / train_ips(model, group)
            + (ceil(S / E) * n_val + n_test) / eval_ips(model)

plus ``overhead`` seconds per task (building the model, writing the curves figure and files). A probe
extracts features of every split once (``(n_train + n_val + n_test) / eval_ips``); an analysis
costs ``2 * pairs / eval_ips`` (two forward passes of the embedding plus the components, an overestimate).
Device hours are the sum over tasks; wall time divides by the number of concurrent trials. Data loading is
assumed not to be the bottleneck.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vitplast.sweep.task import Throughput  # (model, group) -> (train img/s, eval img/s)

if TYPE_CHECKING:
    from vitplast.sweep.plan import Plan


@dataclass(frozen=True)
class Sizes:
    """Images in the train / validation / test splits of a data set."""

    train: int
    val: int
    test: int


@dataclass
class Estimate:
    runs: int
    steps: int
    images: int
    seconds: float
    by_kind: dict[str, float] = field(default_factory=dict)
    by_grid: dict[str, tuple[int, float]] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        return self.seconds / 3600


def estimate(plan: Plan, sizes: Callable[[str], Sizes], throughput: Throughput, overhead: float = 0.0) -> Estimate:
    """Device seconds of every task of ``plan`` (module docstring; each kind's
    :meth:`~vitplast.sweep.task.TaskKind.cost`). ``runs``, ``steps`` and ``images`` count the training tasks
    (those with steps), ``by_grid`` their seconds per grid."""
    total, steps, images, runs = 0.0, 0, 0, 0
    by_kind: dict[str, float] = {}
    by_grid: dict[str, tuple[int, float]] = {}
    for t in plan.tasks:
        sec, n_steps, n_images = t.spec.cost(t, sizes, throughput)
        sec += overhead
        if n_steps:
            runs, steps, images = runs + 1, steps + n_steps, images + n_images
            n, s = by_grid.get(t.grid, (0, 0.0))
            by_grid[t.grid] = (n + 1, s + sec)
        by_kind[t.kind] = by_kind.get(t.kind, 0.0) + sec
        total += sec
    return Estimate(runs, steps, images, total, by_kind, by_grid)
