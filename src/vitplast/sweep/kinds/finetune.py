"""The ``finetune`` kind: one :class:`~vitplast.train.TrainConfig` run of a sweep's grids, in ``DIR/runs/<id>/``;
its rows form ``results.csv``."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from vitplast.reading import NUMBER_OR_NULL
from vitplast.sweep.task import SplitSizes, Task, TaskKind, Throughput

if TYPE_CHECKING:
    from vitplast.sweep.spec import SweepSpec
    from vitplast.train.config import RunOptions

#: result.json keys that repeat a config field (the config's value is kept) or are renamed.
_DUPLICATES = {"model", "data", "train", "lr", "optimizer", "seed"}


def _options(device: str, workers: int | None, eval_batch_size: int | None) -> RunOptions:
    from vitplast.train.config import RunOptions

    return RunOptions(device=device, workers=workers, eval_batch_size=eval_batch_size)  # no figures in sweeps


class FinetuneKind(TaskKind):
    name = "finetune"
    subdir = "runs"
    order = 2
    table = "results"
    result_numbers = MappingProxyType({"test_acc": NUMBER_OR_NULL, "best_val_acc": NUMBER_OR_NULL})

    @property
    def config_cls(self) -> type:  # type: ignore[override]
        from vitplast.train.config import TrainConfig

        return TrainConfig

    def config(self, task: Task) -> Any:
        from vitplast.train.config import TrainConfig

        return TrainConfig.from_dict(task.config)

    def plan(self, spec: SweepSpec) -> Iterator[Task]:
        """Every run of every grid, in the order of :meth:`~vitplast.sweep.spec.Grid.runs`."""
        for grid in spec.grids:
            for model, ds, cfg in grid.runs():
                yield self.make(cfg.to_dict(), model.label, ds.label, grid.name)

    def describe(self, task: Task) -> str:
        c = task.config
        return f"{task.dataset} {','.join(c['train'])} {c['optimizer']} lr={c['lr']:g} seed={c['seed']}"

    def resolve(self, task: Task, depths: Mapping[tuple[str, bool], int]) -> Task:
        """Unit sets resolved (:func:`vitplast.units.resolve`): one naming every block becomes its group, so the
        run gets that group's id."""
        from vitplast.units import resolve

        c = task.config
        if not any("@" in g for g in c["train"]):
            return task
        depth = depths[(str(c["model"]), bool(c.get("random_weights", False)))]
        return self.make({**c, "train": list(resolve(c["train"], depth))}, task.model, task.dataset, task.grid,
                         **task.options)

    def check(self, task: Task, train_sizes: Mapping[str, int], depth: int) -> None:
        """The batch fits the train split, and the trained units exist in a model of ``depth`` blocks."""
        from vitplast.errors import VitplastError
        from vitplast.units import resolve

        c = task.config
        if int(c["batch_size"]) > train_sizes[c["data"]]:
            raise VitplastError(f"run {task.describe()}: batch_size {c['batch_size']} is larger than the train split "
                                f"of {c['data']} ({train_sizes[c['data']]} images)")
        try:
            resolve(c["train"], depth, c["model"])
        except VitplastError as exc:
            raise VitplastError(f"run {task.describe()}: {exc}") from None

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        from vitplast.train import finetune

        cfg = self.config(task)
        finetune(cfg.model, cfg.data, cfg, _options(device, workers, eval_batch_size), out=out, resume=True)

    def run_bundle(self, tasks: list[Task], outs: list[Path], device: str, workers: int | None,
                   eval_batch_size: int | None) -> None:
        """Run compatible finetuning tasks as one run bundle (:mod:`vitplast.train.bundle`), resuming each."""
        from vitplast.train.bundle import train_bundle

        train_bundle([self.config(t) for t in tasks], outs, _options(device, workers, eval_batch_size), resume=True)

    def bundle_key(self, task: Task) -> tuple[Hashable, str] | None:
        """:func:`~vitplast.train.config.bundle_key` and the trained groups; fp16 runs (one loss scaler each) alone."""
        from vitplast.train.config import bundle_key

        cfg = self.config(task)
        return None if cfg.precision == "fp16" else (bundle_key(cfg), ",".join(cfg.train))

    def interrupted(self, task: Task, root: Path) -> bool:
        """A resume checkpoint without a result: the next sweep continues the run."""
        return (task.dir(root) / "last.pt").is_file()

    def row(self, task: Task, root: Path, result: dict[str, Any]) -> dict[str, Any]:
        """``results.csv``: ``group``, every config field, every field of ``result.json`` (``steps`` done is
        ``steps_done``; per-group trainable counts become ``trainable_params_<group>``; each extra evaluation
        becomes ``eval_<data>_<split>_acc`` / ``_loss``) and ``run_dir``."""
        cfg = dict(task.config)
        row: dict[str, Any] = {"group": "+".join(cfg["train"])}
        row.update({k: (",".join(v) if k == "train" else v) for k, v in cfg.items()})
        for k, v in result.items():
            if k in _DUPLICATES:
                continue
            if k == "steps":
                row["steps_done"] = v
            elif k == "trainable_params_per_group" and isinstance(v, dict):
                row.update({f"trainable_params_{g}": n for g, n in v.items()})
            elif k == "evaluations" and isinstance(v, list):
                for e in v:
                    key = f"eval_{e.get('data')}_{e.get('split')}"
                    row[f"{key}_acc"], row[f"{key}_loss"] = e.get("acc"), e.get("loss")
            elif not isinstance(v, dict | list):
                row[k] = v
        row["run_dir"] = str(task.dir(root).relative_to(root))
        return row

    def cost(self, task: Task, sizes: SplitSizes, throughput: Throughput) -> tuple[float, int, int]:
        """``S * B / train_ips(model, group) + (ceil(S / E) * n_val + n_test) / eval_ips``."""
        c = task.config
        sz = sizes(c["data"])
        train_ips, eval_ips = throughput(c["model"], "+".join(c["train"]))
        evals = math.ceil(c["steps"] / c["eval_every"])
        seconds = c["steps"] * c["batch_size"] / train_ips + (evals * sz.val + sz.test) / eval_ips
        return seconds, c["steps"], c["steps"] * c["batch_size"]
