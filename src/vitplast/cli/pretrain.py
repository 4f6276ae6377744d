"""``vitplast pretrain``: train the bundled micro-ViT on ``mini:source``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vitplast.cli import app
from vitplast.cli.options import Fields, options_from
from vitplast.train.config import PretrainConfig, RunOptions


@app.command()
@options_from(Fields(PretrainConfig, "cfg"), Fields(RunOptions, "run", only=("device", "workers")))
def pretrain(
    cfg: PretrainConfig,
    run: RunOptions,
    out: Annotated[Path, typer.Option("--out", help="run directory")] = Path("runs/pretrain-micro"),
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Draw curves.png at the end.")] = True,
    resume: Annotated[bool, typer.Option("--resume", help="continue the interrupted run in --out")] = False,
    install: Annotated[
        bool, typer.Option("--install", help="copy checkpoint and model card into the package (the --name folder)")
    ] = False,
) -> None:
    """Pretrain the micro-ViT from scratch (AdamW, cosine, label smoothing, crop + flip) and export it.

    The model card records the command, seed, device, time, accuracy and regime (docs/diagnostics.md).

    The defaults make `micro`. `micro-long` was made on a GPU with:

    --steps 4000 --batch-size 1024 --lr 0.003 --warmup-steps 200 --weight-decay 0.01 --name micro-long
    """
    from vitplast.cli.progress import rich_progress
    from vitplast.train.pretrain import pretrain as run_pretrain

    with rich_progress(Console(stderr=True)) as progress:
        card = run_pretrain(out, **dataclasses.asdict(cfg), device=run.device, workers=run.workers, resume=resume,
                            install=install, progress=progress, plots=plots)
    where = " and installed into the package" if install else f" (install with: --install, or copy from {out})"
    print(
        f"micro-ViT: source test accuracy {100 * card['source_test_acc']:.2f} % (fp16), "
        f"{card['checkpoint_bytes'] / 1e6:.1f} MB, {card['wall_seconds'] / 60:.1f} min -> {out}{where}"
    )
