"""``vitplast finetune``, ``vitplast probe`` and ``vitplast evaluate`` (README, "Reproducing the paper offline")."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vitplast.cli import app
from vitplast.configs import cli_name, default_of, help_of
from vitplast.errors import VitplastError
from vitplast.precision import PRECISION_HELP
from vitplast.train.config import RECIPES, RunOptions, TrainConfig

console = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", help=help_of(TrainConfig, "model"))]
DataOpt = Annotated[str, typer.Option("--data", help=help_of(TrainConfig, "data"))]
DeviceOpt = Annotated[str, typer.Option("--device", help=help_of(RunOptions, "device"))]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help=help_of(RunOptions, "workers"))]
PrecisionOpt = Annotated[str, typer.Option("--precision", help=PRECISION_HELP)]


def _train_help(name: str) -> str:
    """A finetune option's help: the field's help, its default and the value the data recipes give it."""
    recipes = "; ".join(f"{k}* data: {v[name]}" for k, v in RECIPES.items() if name in v)
    default = default_of(TrainConfig, name)
    shown = "5% of the steps" if default is None else ",".join(default) if isinstance(default, tuple) else default
    return f"{help_of(TrainConfig, name)} [default: {shown}{'; ' + recipes if recipes else ''}]"


def _t(name: str) -> Any:
    return typer.Option(cli_name(name), help=_train_help(name), show_default=False)


@app.command()
def finetune(
    out: Annotated[Path, typer.Option("--out", help="run directory")],
    model: ModelOpt = "micro",
    data: DataOpt = "mini:digits",
    train: Annotated[str | None, _t("train")] = None,
    optimizer: Annotated[str | None, _t("optimizer")] = None,
    lr: Annotated[float | None, _t("lr")] = None,
    momentum: Annotated[float | None, _t("momentum")] = None,
    weight_decay: Annotated[float | None, _t("weight_decay")] = None,
    steps: Annotated[int | None, _t("steps")] = None,
    batch_size: Annotated[int | None, _t("batch_size")] = None,
    grad_accum: Annotated[int | None, _t("grad_accum")] = None,
    clip: Annotated[float | None, _t("clip")] = None,
    warmup_steps: Annotated[int | None, _t("warmup_steps")] = None,
    schedule: Annotated[str | None, _t("schedule")] = None,
    eval_every: Annotated[int | None, _t("eval_every")] = None,
    seed: Annotated[int | None, _t("seed")] = None,
    label_smoothing: Annotated[float | None, _t("label_smoothing")] = None,
    augment: Annotated[str | None, _t("augment")] = None,
    head_init: Annotated[str | None, _t("head_init")] = None,
    precision: Annotated[str | None, _t("precision")] = None,
    random_weights: Annotated[
        bool, typer.Option("--random-weights", help=help_of(TrainConfig, "random_weights"))
    ] = default_of(TrainConfig, "random_weights"),
    device: DeviceOpt = default_of(RunOptions, "device"),
    workers: WorkersOpt = None,
    eval_batch_size: Annotated[
        int | None, typer.Option("--eval-batch-size", help=help_of(RunOptions, "eval_batch_size"))
    ] = None,
    compile: Annotated[bool, typer.Option("--compile", help=help_of(RunOptions, "compile"))] = False,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw curves.png at the end.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="continue the interrupted run in --out")] = False,
) -> None:
    """Finetune one component group (or the full model) with a new head; score the best checkpoint.

    Settings not given take the defaults shown, or the recipe of the data set (mini:* sets: the mini suite's).
    """
    given = {k: v for k, v in dict(locals()).items() if k in _TRAIN_FIELDS and v is not None}
    cfg = TrainConfig.for_data(model, data, random_weights=random_weights, **given)
    opts = RunOptions(device=device, workers=workers, eval_batch_size=eval_batch_size, compile=compile, plots=plots)
    from vitplast.cli.progress import rich_progress
    from vitplast.train import finetune as run_finetune  # imports torch: after the options are checked

    print(f"recipe: {cfg.describe()}", flush=True)
    with rich_progress(console) as progress:
        res = run_finetune(model, data, cfg, opts, out=out, resume=resume, progress=progress).result
    if res.get("diverged"):
        raise VitplastError(
            f"training diverged at step {res['diverged_at']} (non-finite loss or gradient): lower --lr; "
            f"the partial run is in {out}"
        )
    test = res["test_acc"]
    acc = "n/a (diverged before the first evaluation)" if test is None else f"{100 * test:.2f} %"
    print(
        f"{data} {cfg.train[0] if cfg.train == ('full',) else ','.join(cfg.train)}: test accuracy {acc} "
        f"(best val {_pct(res['best_val_acc'])} at step {res['best_step']}), "
        f"{res['trainable_params']:,} trainable parameters, {res['wall_seconds']:.0f} s -> {out}"
    )


_TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig)) - {"model", "data", "random_weights"}


@app.command()
def probe(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    model: ModelOpt = "micro",
    data: DataOpt = "mini:digits",
    C: Annotated[float | None, typer.Option("--C", help="inverse regularisation (default: chosen on val)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="feature-extraction batch")] = 256,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    precision: PrecisionOpt = "auto",
    random_weights: Annotated[bool, typer.Option("--random-weights")] = False,
) -> None:
    """Linear probe: logistic regression on standardised mean-pooled last-block features."""
    from vitplast.train.config import check_probe_options

    check_probe_options(batch_size, C)
    from vitplast.cli.progress import rich_progress
    from vitplast.train.probe import linear_probe  # imports torch: after the options are checked

    with rich_progress(console) as progress:
        res = linear_probe(model, data, out=out, C=C, batch_size=batch_size, device=device, workers=workers,
                           random_weights=random_weights, precision=precision, progress=progress)
    print(f"{data} linear probe: test accuracy {_pct(res['test_acc'])} (C={res['C']}, val {_pct(res['val_acc'])}) -> {out}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a finished finetune run directory")],
    data: DataOpt,
    split: Annotated[str, typer.Option("--split", help="train, val or test")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 256,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    precision: PrecisionOpt = "auto",
    label_map: Annotated[
        str | None,
        typer.Option("--label-map", help="when the class names differ: DATA=RUN,... or 'index' (match by position)"),
    ] = None,
) -> None:
    """Score a run's best checkpoint on another data set; appended to the run's result.json."""
    from vitplast.cli.progress import rich_progress
    from vitplast.train.evaluate import evaluate_run

    with rich_progress(console) as progress:
        entry = evaluate_run(run_dir, data, split, device=device, workers=workers, batch_size=batch_size,
                             precision=precision, progress=progress, label_map=label_map)
    print(json.dumps({k: entry[k] for k in ("data", "split", "acc", "loss", "n")}))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"
