"""The ``plasticity`` kind: the plasticity analysis (with bounds) once per (model, dataset) of a sweep, in
``DIR/plasticity/<id>/``; its rows form ``analyses.csv`` and its per-layer tables ``plasticity.csv`` and
``bounds.csv``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitplast.configs import option
from vitplast.sweep.task import SplitSizes, Task, TaskKind, Throughput

if TYPE_CHECKING:
    import pandas as pd

    from vitplast.sweep.spec import SweepSpec


@dataclass(frozen=True)
class AnalysisTask:
    """Identity of a plasticity analysis (with bounds when asked)."""

    model: str = option(help="model spec")
    source: str = option(help="source data spec")
    target: str = option(help="target data spec")
    pairs: int = option(help="source/target pairs")
    mode: str = option(help="estimator mode")
    seed: int = option(help="seed of the pair sampling")
    random_weights: bool = option(help="random initialisation")
    with_bounds: bool = option(help="also compute the upper bounds")


class AnalysisKind(TaskKind):
    name = "plasticity"
    subdir = "plasticity"
    result_file = "plasticity.json"
    config_cls = AnalysisTask
    order = 1
    table = "analyses"

    def plan(self, spec: SweepSpec) -> Iterator[Task]:
        """One analysis per (model, dataset) of every grid against ``spec.plasticity.source`` (none without it)."""
        p = spec.plasticity
        if p is None:
            return
        for grid in spec.grids:
            for model in grid.models:
                for ds in grid.datasets:
                    rw = bool(grid.settings(ds).get("random_weights", False))
                    cfg = AnalysisTask(model.spec, p.source, ds.spec, p.pairs, p.mode, p.seed, rw, p.bounds)
                    yield self.make(dataclasses.asdict(cfg), model.label, ds.label, grid.name, batch_size=p.batch_size)

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        from vitplast.analysis import AnalyzeConfig, run_analysis
        from vitplast.sweep.spec import PlasticitySettings

        c: AnalysisTask = self.config(task)
        acfg = AnalyzeConfig(model=c.model, source=c.source, target=c.target, pairs=c.pairs, mode=c.mode,
                             seed=c.seed, random_weights=c.random_weights, with_bounds=c.with_bounds,
                             batch_size=int(task.options.get("batch_size", PlasticitySettings.batch_size)),
                             device=device, workers=workers or 0)
        run_analysis(acfg).save(out)

    def row(self, task: Task, root: Path, result: dict[str, Any]) -> dict[str, Any]:
        """``analyses.csv``: pairs used, measured ranking and its Spearman with the theory, and (with bounds) the
        per-pair check (comparisons, violations) and the bounds' ranking."""
        c = task.config
        row = {"model": c["model"], "source": c["source"], "data": c["target"], "pairs_requested": c["pairs"],
               "mode": c["mode"]}
        if not result:
            return row
        row.update({"pairs_used": result.get("pairs_used"), "pairs_skipped": result.get("pairs_skipped"),
                    "seconds": result.get("seconds_total")})
        b = result.get("bounds") or {}
        rk = b.get("ranking") or {}
        row.update({"measured_ranking": " > ".join(rk.get("measured", [])), "spearman_theory": rk.get("spearman"),
                    "bound_ranking": " > ".join(rk.get("bound_ranking", [])),
                    "spearman_bounds_theory": rk.get("spearman_bounds_theory")})
        check = b.get("check") or {}
        if check:
            row.update({"bound_comparisons": check.get("comparisons"), "bound_violations": check.get("violations"),
                        "bounds_all_hold": check.get("all_hold")})
        return row

    def tables(self, tasks: list[Task], root: Path) -> dict[str, pd.DataFrame]:
        """``plasticity.csv`` and ``bounds.csv``: the per-layer tables of the finished analyses, with their labels."""
        import pandas as pd

        from vitplast.reading import BOUNDS_TABLE, PLASTICITY_TABLE, read_table

        frames: dict[str, list[pd.DataFrame]] = {"plasticity": [], "bounds": []}
        for t in tasks:
            if not t.is_done(root):
                continue
            labels = {"model_label": t.model, "dataset": t.dataset, "data": t.config["target"],
                      "source": t.config["source"], "analysis_id": t.id}
            for name, columns in (("plasticity", PLASTICITY_TABLE), ("bounds", BOUNDS_TABLE)):
                path = t.dir(root) / f"{name}.csv"
                if path.is_file():
                    frames[name].append(read_table(path, *columns).assign(**labels))
        return {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in frames.items()}

    def cost(self, task: Task, sizes: SplitSizes, throughput: Throughput) -> tuple[float, int, int]:
        """Two forward passes per pair (an overestimate): ``2 * pairs / eval_ips``."""
        return 2 * task.config["pairs"] / throughput(task.config["model"], "full")[1], 0, 0
