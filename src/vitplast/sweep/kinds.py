"""The kinds of sweep task: one class each, with its config dataclass, ``run()`` and result file.

A kind declares ``name`` (stored in ``plan.json``), ``subdir`` (its folder in the sweep directory),
``result_file`` (written atomically as the task's last step: its existence means done), ``config_cls``
(the typed identity config; its fields are the keys hashed into the task id) and ``run(task, out, ...)``.
:func:`register` adds a kind (later features add their own); :func:`kind_of` looks one up. Nothing
else dispatches on the kind's name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vitplast.configs import option

if TYPE_CHECKING:
    from vitplast.sweep.plan import Task


@dataclass(frozen=True)
class ProbeTask:
    """Identity of a linear probe."""

    model: str = option(help="model spec")
    data: str = option(help="data spec")
    C: float | None = option(None, help="inverse regularisation (null: chosen on validation)")
    random_weights: bool = option(False, help="random initialisation")


@dataclass(frozen=True)
class AnalysisTask:
    """Identity of a plasticity analysis (with bounds when available)."""

    model: str = option(help="model spec")
    source: str = option(help="source data spec")
    target: str = option(help="target data spec")
    pairs: int = option(help="source/target pairs")
    mode: str = option(help="estimator mode")
    seed: int = option(help="seed of the pair sampling")
    random_weights: bool = option(help="random initialisation")
    with_bounds: bool = option(help="also compute the upper bounds")


class TaskKind:
    """Base class of a task kind (module docstring)."""

    name: ClassVar[str]
    subdir: ClassVar[str]
    result_file: ClassVar[str] = "result.json"
    config_cls: ClassVar[type]

    def config(self, task: Task) -> Any:
        """The task's typed config."""
        return self.config_cls(**task.config)

    def describe(self, task: Task) -> str:
        return f"{self.name} {task.model} / {task.dataset}"

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        raise NotImplementedError

    def run_bundle(self, tasks: list[Task], outs: list[Path], device: str, workers: int | None,
                   eval_batch_size: int | None) -> None:
        """Run several tasks of this kind together; by default one after the other."""
        for t, out in zip(tasks, outs, strict=True):
            self.run(t, out, device, workers, eval_batch_size)


class FinetuneKind(TaskKind):
    name = "finetune"
    subdir = "runs"

    @property
    def config_cls(self) -> type:  # type: ignore[override]
        from vitplast.train.config import TrainConfig

        return TrainConfig

    def config(self, task: Task) -> Any:
        from vitplast.train.config import TrainConfig

        return TrainConfig.from_dict(task.config)

    def describe(self, task: Task) -> str:
        c = task.config
        return f"{task.dataset} {','.join(c['train'])} {c['optimizer']} lr={c['lr']:g} seed={c['seed']}"

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        from vitplast.train import finetune
        from vitplast.train.config import RunOptions

        cfg = self.config(task)
        opts = RunOptions(device=device, workers=workers, eval_batch_size=eval_batch_size)  # no figures in sweeps
        finetune(cfg.model, cfg.data, cfg, opts, out=out, resume=True)

    def run_bundle(self, tasks: list[Task], outs: list[Path], device: str, workers: int | None,
                   eval_batch_size: int | None) -> None:
        """Run compatible finetuning tasks as one run bundle (:mod:`vitplast.train.bundle`), resuming each."""
        from vitplast.train.bundle import train_bundle
        from vitplast.train.config import RunOptions

        opts = RunOptions(device=device, workers=workers, eval_batch_size=eval_batch_size)
        train_bundle([self.config(t) for t in tasks], outs, opts, resume=True)


class ProbeKind(TaskKind):
    name = "probe"
    subdir = "probes"
    config_cls = ProbeTask

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        from vitplast.train.probe import linear_probe

        c: ProbeTask = self.config(task)
        linear_probe(c.model, c.data, out=out, C=c.C, batch_size=int(task.options.get("batch_size", 256)),
                     device=device, workers=workers, random_weights=c.random_weights)


class AnalysisKind(TaskKind):
    name = "plasticity"
    subdir = "plasticity"
    result_file = "plasticity.json"
    config_cls = AnalysisTask

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        from vitplast.analysis import AnalyzeConfig, run_analyze
        from vitplast.sweep.execute import bounds_available

        c: AnalysisTask = self.config(task)
        acfg = AnalyzeConfig(model=c.model, source=c.source, target=c.target, pairs=c.pairs, mode=c.mode,
                             seed=c.seed, random_weights=c.random_weights,
                             with_bounds=c.with_bounds and bounds_available(),
                             batch_size=int(task.options.get("batch_size", 32)), device=device, workers=workers or 0)
        run_analyze(acfg, out)


_KINDS: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    """Add a task kind (its ``name`` must be new)."""
    if kind.name in _KINDS:
        raise ValueError(f"task kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> TaskKind:
    """The registered kind called ``name``."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown task kind {name!r} (known: {', '.join(_KINDS)})") from None


def identity(config: Any) -> dict[str, Any]:
    """The hashed identity dict of a typed task config."""
    return dataclasses.asdict(config)


for _k in (ProbeKind(), AnalysisKind(), FinetuneKind()):
    register(_k)
