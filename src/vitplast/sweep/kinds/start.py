"""The ``start`` kind: the LP-FT start of a sweep's finetuning runs (:mod:`vitplast.train.start`) scored once per
(model, data, weights, precision) in ``DIR/starts/<id>/``; its rows form ``starts.csv``."""

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
    from vitplast.train.config import TrainConfig


@dataclass(frozen=True)
class StartTask:
    """Identity of an LP-FT start: what :func:`vitplast.train.loop.prepare` reads to build a run's model and
    probe head, and the precision it is scored under. ``seed``: the run's seed with random weights (the backbone
    is the seed's), ``None`` with pretrained weights (the head does not depend on it)."""

    model: str = option(help="model spec")
    data: str = option(help="data spec")
    random_weights: bool = option(False, help="random initialisation")
    seed: int | None = option(None, help="seed of the random weights (null: pretrained)")
    precision: str = option("auto", help="precision of the evaluation")

    @staticmethod
    def of(cfg: TrainConfig) -> StartTask:
        """The start of the finetuning run ``cfg``."""
        return StartTask(cfg.model, cfg.data, cfg.random_weights, cfg.seed if cfg.random_weights else None,
                         cfg.precision)

    def train_config(self) -> TrainConfig:
        """A run config with this start (:meth:`TrainConfig.for_data`, ``head_init="probe"``; batch 1: nothing is
        trained, and any train split holds one image)."""
        from vitplast.train.config import TrainConfig

        return TrainConfig.for_data(self.model, self.data, random_weights=self.random_weights, seed=self.seed or 0,
                                    precision=self.precision, head_init="probe", batch_size=1)


class StartKind(TaskKind):
    name = "start"
    subdir = "starts"
    config_cls = StartTask
    order = 0
    table = "starts"
    result_numbers = MappingProxyType({"val_acc": NUMBER, "test_acc": NUMBER})

    def plan(self, spec: SweepSpec) -> Iterator[Task]:
        """One start per distinct :class:`StartTask` of the finetuning runs with ``head_init="probe"`` of every
        grid, in run order (none when no run starts from the probe)."""
        for grid in spec.grids:
            for model, ds, cfg in grid.runs():
                if cfg.head_init == "probe":
                    yield self.make(dataclasses.asdict(StartTask.of(cfg)), model.label, ds.label, grid.name)

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        from vitplast.train.config import RunOptions
        from vitplast.train.start import evaluate_start

        c: StartTask = self.config(task)
        evaluate_start(c.train_config(), out, RunOptions(device=device, workers=workers,
                                                         eval_batch_size=eval_batch_size))

    def row(self, task: Task, root: Path, result: dict[str, Any]) -> dict[str, Any]:
        """``starts.csv``: the config, then the result's scalars."""
        row = dict(task.config)
        row.update({k: v for k, v in result.items() if k not in row and k != "train"
                    and not isinstance(v, dict | list)})
        return row

    def cost(self, task: Task, sizes: SplitSizes, throughput: Throughput) -> tuple[float, int, int]:
        """The probe head's features (train and validation) and the two scores: ``(n_train + 2 n_val + n_test)
        / eval_ips``."""
        sz = sizes(task.config["data"])
        return (sz.train + 2 * sz.val + sz.test) / throughput(task.config["model"], "full")[1], 0, 0
