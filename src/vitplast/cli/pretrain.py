"""``vitplast pretrain``: train the bundled micro-ViT on ``mini:source``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vitplast.cli import app
from vitplast.configs import DEVICE_HELP
from vitplast.precision import PRECISION_HELP
from vitplast.train.config import PRETRAIN_DEFAULTS as DEFAULTS
from vitplast.train.config import PRETRAIN_SOURCE


@app.command()
def pretrain(
    out: Annotated[Path, typer.Option("--out", help="run directory")] = Path("runs/pretrain-micro"),
    steps: Annotated[int, typer.Option("--steps")] = DEFAULTS["steps"],
    batch_size: Annotated[int, typer.Option("--batch-size")] = DEFAULTS["batch_size"],
    lr: Annotated[float, typer.Option("--lr", help="AdamW peak learning rate")] = DEFAULTS["lr"],
    warmup_steps: Annotated[
        int | None, typer.Option("--warmup-steps", help=f"linear warmup steps (default: min({DEFAULTS['warmup_steps']}, steps / 10))")
    ] = None,
    weight_decay: Annotated[
        float, typer.Option("--weight-decay", help="AdamW decoupled weight decay of matrices")
    ] = DEFAULTS["weight_decay"],
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data: Annotated[str, typer.Option("--data", help="pretraining data spec")] = PRETRAIN_SOURCE,
    device: Annotated[str, typer.Option("--device", help=DEVICE_HELP)] = "auto",
    workers: Annotated[int | None, typer.Option("--workers", help="data-loader processes")] = None,
    precision: Annotated[str, typer.Option("--precision", help=PRECISION_HELP)] = "auto",
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw curves.png at the end.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="continue the interrupted run in --out")] = False,
    name: Annotated[
        str, typer.Option("--name", help="bundled model this run makes: micro or micro-long (the card's name and the --install target)")
    ] = "micro",
    install: Annotated[
        bool, typer.Option("--install", help="copy checkpoint and model card into the package (the --name folder)")
    ] = False,
) -> None:
    """Pretrain the micro-ViT from scratch (AdamW, cosine, label smoothing, crop + flip) and export it.

    The model card records the command, seed, device, time, accuracy and regime (docs/diagnostics.md).

    The defaults make `micro`. `micro-long` was made on a GPU with:

    --steps 4000 --batch-size 1024 --lr 0.003 --warmup-steps 200 --weight-decay 0.01 --name micro-long
    """
    from vitplast.configs import check_bundled, check_device
    from vitplast.train.config import pretrain_config

    check_bundled(name)
    check_device("--device", device)

    pretrain_config("micro", steps, batch_size, lr, seed, data, warmup_steps=warmup_steps,
                    precision=precision, weight_decay=weight_decay)  # bad options: before torch
    from vitplast.cli.progress import rich_progress
    from vitplast.train.pretrain import pretrain as run_pretrain

    with rich_progress(Console(stderr=True)) as progress:
        card = run_pretrain(out, steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                            weight_decay=weight_decay, seed=seed, data=data, device=device,
                            workers=workers, resume=resume, install=install, progress=progress,
                            precision=precision, plots=plots, name=name)
    where = " and installed into the package" if install else f" (install with: --install, or copy from {out})"
    print(
        f"micro-ViT: source test accuracy {100 * card['source_test_acc']:.2f} % (fp16), "
        f"{card['checkpoint_bytes'] / 1e6:.1f} MB, {card['wall_seconds'] / 60:.1f} min -> {out}{where}"
    )
