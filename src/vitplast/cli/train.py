"""``vitplast finetune``, ``vitplast probe`` and ``vitplast evaluate`` (README, "Reproducing the paper offline")."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vitplast.cli import app
from vitplast.cli.options import Fields, options_from
from vitplast.errors import VitplastError
from vitplast.train.config import RECIPES, EvaluateConfig, ProbeConfig, RunOptions, TrainConfig

console = Console(stderr=True)

#: The settings a data recipe may set: unset on the command line unless given (:meth:`TrainConfig.for_data`).
RECIPE_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("model", "data", "random_weights"))
#: The execution options of a probe and an evaluation.
LOADING = Fields(RunOptions, "run", only=("device", "workers"))


@app.command()
@options_from(Fields(TrainConfig, "given", unset=RECIPE_FIELDS, recipes=RECIPES, text=("train",), build=False),
              Fields(RunOptions, "run", exclude=("plots",), build=False))
def finetune(
    out: Annotated[Path, typer.Option("--out", help="run directory")],
    given: dict[str, Any],
    run: dict[str, Any],
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw curves.png at the end.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="continue the interrupted run in --out")] = False,
) -> None:
    """Finetune one component group (or the full model) with a new head; score the best checkpoint.

    Settings not given take the defaults shown, or the recipe of the data set (mini:* sets: the mini suite's).
    """
    cfg = TrainConfig.for_data(**given)
    opts = RunOptions(**run, plots=plots)
    from vitplast.cli.progress import rich_progress
    from vitplast.train import finetune as run_finetune  # imports torch: after the options are checked

    if any("@" in g for g in cfg.train):  # block units: checked against the model's depth before any output
        from vitplast.train import cache

        cfg.resolved(cache.model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed).depth)
    print(f"recipe: {cfg.describe()}", flush=True)
    with rich_progress(console) as progress:
        res = run_finetune(cfg.model, cfg.data, cfg, opts, out=out, resume=resume, progress=progress).result
    if res.get("diverged"):
        raise VitplastError(
            f"training diverged at step {res['diverged_at']} (non-finite loss or gradient): lower --lr; "
            f"the partial run is in {out}"
        )
    test = res["test_acc"]
    acc = "n/a (diverged before the first evaluation)" if test is None else f"{100 * test:.2f} %"
    print(
        f"{cfg.data} {cfg.train[0] if cfg.train == ('full',) else ','.join(cfg.train)}: test accuracy {acc} "
        f"(best val {_pct(res['best_val_acc'])} at step {res['best_step']}), "
        f"{res['trainable_params']:,} trainable parameters, {res['wall_seconds']:.0f} s -> {out}"
    )


@app.command()
@options_from(Fields(ProbeConfig, "cfg"), LOADING)
def probe(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    cfg: ProbeConfig,
    run: RunOptions,
) -> None:
    """Linear probe: logistic regression on standardised mean-pooled last-block features."""
    from vitplast.cli.progress import rich_progress
    from vitplast.train.probe import linear_probe  # imports torch: after the options are checked

    with rich_progress(console) as progress:
        res = linear_probe(cfg.model, cfg.data, out=out, C=cfg.C, batch_size=cfg.batch_size, device=run.device,
                           workers=run.workers, random_weights=cfg.random_weights, precision=cfg.precision,
                           progress=progress)
    print(f"{cfg.data} linear probe: test accuracy {_pct(res['test_acc'])} (C={res['C']}, val {_pct(res['val_acc'])}) -> {out}")


@app.command()
@options_from(Fields(EvaluateConfig, "cfg"), LOADING)
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a finished finetune run directory")],
    cfg: EvaluateConfig,
    run: RunOptions,
) -> None:
    """Score a run's best checkpoint on another data set; appended to the run's result.json."""
    from vitplast.cli.progress import rich_progress
    from vitplast.train.evaluate import evaluate_run

    with rich_progress(console) as progress:
        entry = evaluate_run(run_dir, cfg.data, cfg.split, device=run.device, workers=run.workers,
                             batch_size=cfg.batch_size, precision=cfg.precision, progress=progress,
                             label_map=cfg.label_map)
    print(json.dumps({k: entry[k] for k in ("data", "split", "acc", "loss", "n")}))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"
