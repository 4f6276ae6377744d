"""``vitplast finetune``, ``vitplast probe`` and ``vitplast evaluate`` (SPEC section 3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vitplast.cli import app

console = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", help="micro, timm:ARCH, timm:ARCH@FILE.safetensors, hf:ID or hf:DIR")]
DataOpt = Annotated[str, typer.Option("--data", help="data spec: mini:digits, cifar10, folder:PATH, ...")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N")]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", help="data-loader processes (default: 0 on CPU, up to 4 on GPU)")
]


@app.command()
def finetune(
    out: Annotated[Path, typer.Option("--out", help="run directory")],
    model: ModelOpt = "micro",
    data: DataOpt = "mini:digits",
    train: Annotated[str, typer.Option("--train", help="'full' or a comma list of embed ln1 mha ln2 fc1 fc2")] = "full",
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd or adamw")] = "sgd",
    lr: Annotated[float, typer.Option("--lr", help="peak learning rate")] = 1e-2,
    momentum: Annotated[float, typer.Option("--momentum", help="SGD momentum")] = 0.9,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="on weight matrices only")] = 0.0,
    steps: Annotated[int, typer.Option("--steps", help="optimizer updates")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="effective batch (images per update)")] = 512,
    grad_accum: Annotated[int, typer.Option("--grad-accum", help="micro-batches per update")] = 1,
    clip: Annotated[float, typer.Option("--clip", help="gradient-norm clipping (0: off)")] = 1.0,
    warmup_steps: Annotated[
        int | None, typer.Option("--warmup-steps", help="linear warmup (default: 5% of steps)")
    ] = None,
    schedule: Annotated[str, typer.Option("--schedule", help="cosine or constant after warmup")] = "cosine",
    eval_every: Annotated[int, typer.Option("--eval-every", help="validate every N steps")] = 200,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    augment: Annotated[
        str, typer.Option("--augment", help="rrc (RandomResizedCrop + flip, the paper's), crop (pad-crop + flip), none")
    ] = "rrc",
    head_init: Annotated[
        str, typer.Option("--head-init", help="random (the paper's new head) or probe (LP-FT: start from the linear probe)")
    ] = "random",
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the interrupted run in --out")] = False,
    random_weights: Annotated[
        bool, typer.Option("--random-weights", help="random initialisation instead of pretrained weights")
    ] = False,
) -> None:
    """Finetune one component group (or the full model) with a new head; score the best checkpoint."""
    from vitplast.train import finetune as run_finetune

    res = run_finetune(
        model, data, train, out=out, resume=resume, optimizer=optimizer, lr=lr, momentum=momentum,
        weight_decay=weight_decay, steps=steps, batch_size=batch_size, grad_accum=grad_accum, clip=clip,
        warmup_steps=warmup_steps, schedule=schedule, eval_every=eval_every, seed=seed,
        augment=augment, head_init=head_init, random_weights=random_weights, device=device, workers=workers, progress=True,
    ).result
    test = res["test_acc"]
    acc = "n/a (diverged before the first evaluation)" if test is None else f"{100 * test:.2f} %"
    print(
        f"{data} {train}: test accuracy {acc} (best val {_pct(res['best_val_acc'])} at step {res['best_step']}), "
        f"{res['trainable_params']:,} trainable parameters, {res['wall_seconds']:.0f} s -> {out}"
    )


@app.command()
def probe(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    model: ModelOpt = "micro",
    data: DataOpt = "mini:digits",
    C: Annotated[float | None, typer.Option("--C", help="inverse regularisation (default: chosen on val)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="feature-extraction batch")] = 256,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    random_weights: Annotated[bool, typer.Option("--random-weights")] = False,
) -> None:
    """Linear probe: logistic regression on standardised mean-pooled last-block features."""
    from vitplast.train.probe import linear_probe

    res = linear_probe(model, data, out=out, C=C, batch_size=batch_size, device=device, workers=workers,
                       random_weights=random_weights)
    print(f"{data} linear probe: test accuracy {_pct(res['test_acc'])} (C={res['C']}, val {_pct(res['val_acc'])}) -> {out}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a finished finetune run directory")],
    data: DataOpt,
    split: Annotated[str, typer.Option("--split", help="train, val or test")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 256,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = None,
    label_map: Annotated[
        str | None,
        typer.Option("--label-map", help="when the class names differ: DATA=RUN,... or 'index' (match by position)"),
    ] = None,
) -> None:
    """Score a run's best checkpoint on another data set; appended to the run's result.json."""
    from vitplast.train.evaluate import evaluate_run

    entry = evaluate_run(run_dir, data, split, device=device, workers=workers, batch_size=batch_size,
                         label_map=label_map)
    print(json.dumps({k: entry[k] for k in ("data", "split", "acc", "loss", "n")}))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"
