"""The ``probe`` kind: a linear probe once per (model, dataset) of a sweep, in ``DIR/probes/<id>/``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from vitplast.configs import option
from vitplast.reading import NUMBER
from vitplast.sweep.task import SplitSizes, Task, TaskKind, Throughput

if TYPE_CHECKING:
    from vitplast.sweep.spec import SweepSpec


@dataclass(frozen=True)
class ProbeTask:
    """Identity of a linear probe."""

    model: str = option(help="model spec")
    data: str = option(help="data spec")
    C: float | None = option(None, help="inverse regularisation (null: chosen on validation)")
    random_weights: bool = option(False, help="random initialisation")


class ProbeKind(TaskKind):
    name = "probe"
    subdir = "probes"
    config_cls = ProbeTask
    order = 0
    table = "probes"
    result_numbers = MappingProxyType({"test_acc": NUMBER})

    def plan(self, spec: SweepSpec) -> Iterator[Task]:
        """One probe per (model, dataset) of every grid, with ``spec.probe``'s settings (none without them)."""
        if spec.probe is None:
            return
        for grid in spec.grids:
            for model in grid.models:
                for ds in grid.datasets:
                    rw = bool(grid.settings(ds).get("random_weights", False))
                    cfg = dataclasses.asdict(ProbeTask(model.spec, ds.spec, spec.probe.C, rw))
                    yield self.make(cfg, model.label, ds.label, grid.name, batch_size=spec.probe.batch_size)

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        from vitplast.sweep.spec import ProbeSettings
        from vitplast.train.probe import linear_probe

        c: ProbeTask = self.config(task)
        batch_size = int(task.options.get("batch_size", ProbeSettings.batch_size))
        linear_probe(c.model, c.data, out=out, C=c.C, batch_size=batch_size,
                     device=device, workers=workers, random_weights=c.random_weights)

    def row(self, task: Task, root: Path, result: dict[str, Any]) -> dict[str, Any]:
        """``probes.csv``: the config (``C`` as ``C_requested``), then the result's scalars."""
        c = task.config
        row = {"model": c["model"], "data": c["data"], "random_weights": c["random_weights"], "C_requested": c["C"]}
        row.update({k: v for k, v in result.items() if k not in ("model", "data", "train") and not isinstance(v, dict | list)})
        return row

    def cost(self, task: Task, sizes: SplitSizes, throughput: Throughput) -> tuple[float, int, int]:
        """Features of every split once: ``(n_train + n_val + n_test) / eval_ips``."""
        sz = sizes(task.config["data"])
        return (sz.train + sz.val + sz.test) / throughput(task.config["model"], "full")[1], 0, 0
