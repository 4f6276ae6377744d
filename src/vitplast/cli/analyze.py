"""``vitplast analyze``: per-layer plasticity of every component of a ViT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from vitplast.analysis import AnalyzeConfig, run_analyze
from vitplast.cli import app
from vitplast.cli.progress import progress_bar
from vitplast.components import DISPLAY
from vitplast.precision import PRECISION_HELP

DEFAULTS = AnalyzeConfig()


@app.command()
def analyze(
    model: str = typer.Option(
        DEFAULTS.model, help="Model spec: micro, timm:ARCH, timm:ARCH@FILE.safetensors, hf:ORG/NAME or hf:DIR."
    ),
    source: str = typer.Option(
        DEFAULTS.source,
        help="Source (pretraining-like) data spec, e.g. mini:source, folder:PATH, imagenet-val:DIR, random.",
    ),
    target: str = typer.Option(
        DEFAULTS.target, help="Target (downstream) data spec, e.g. mini:digits, folder:PATH, cifar10."
    ),
    pairs: int = typer.Option(DEFAULTS.pairs, help="Number of (source, target) image pairs."),
    batch_size: int = typer.Option(DEFAULTS.batch_size, help="Pairs per forward pass (bounds memory)."),
    mode: str = typer.Option(
        DEFAULTS.mode,
        help="embedding (paper: every component sees the embedded input) or insitu (each sees its real input).",
    ),
    device: str = typer.Option(DEFAULTS.device, help="auto, cpu, cuda, cuda:N or mps."),
    seed: int = typer.Option(DEFAULTS.seed, help="Seed of the random image order."),
    order: str = typer.Option(
        DEFAULTS.order, help="random (seeded) or sorted (stored, class-sorted order, as the reference code)."
    ),
    out: Path = typer.Option(Path("vitplast-out/analyze"), help="Output directory."),
    random_weights: bool = typer.Option(
        False, "--random-weights", help="Build the architecture with random weights (offline)."
    ),
    with_bounds: bool = typer.Option(
        False, "--with-bounds", help="Also compute the theoretical bounds and compare rankings."
    ),
    workers: int = typer.Option(DEFAULTS.workers, help="Data-loading worker processes."),
    precision: str = typer.Option(
        DEFAULTS.precision, help=f"Forward passes of the estimator: {PRECISION_HELP}; statistics stay float64."
    ),
    source_split: str = typer.Option(DEFAULTS.source_split, help="Split of the source set: train, val, test or all."),
    target_split: str = typer.Option(DEFAULTS.target_split, help="Split of the target set: train, val, test or all."),
) -> None:
    """Measure the plasticity of ln1, mha, ln2, fc1 and fc2 in every block.

    Writes OUT/plasticity.csv (layer, component, mean, std, ci95, n_pairs), OUT/plasticity.json and
    OUT/plasticity.png, and prints each component's mean over layers with its rank.
    """
    cfg = AnalyzeConfig(
        model=model,
        source=source,
        target=target,
        pairs=pairs,
        batch_size=batch_size,
        mode=mode,
        device=device,
        seed=seed,
        order=order,
        random_weights=random_weights,
        with_bounds=with_bounds,
        workers=workers,
        source_split=source_split,
        target_split=target_split,
        precision=precision,
    )
    cfg.validate()
    console = Console(stderr=True)
    with progress_bar(console, "measuring pairs") as start:

        def make(total: int, _: int) -> Callable[[int], None]:
            return start(total)

        _, record = run_analyze(cfg, out, progress=make)
    print_summary(record, out)


def print_summary(record: dict[str, Any], out: Path) -> None:
    console = Console()
    t = Table(
        title=f"Plasticity of {record['config']['model']} ({record['config']['mode']} mode, "
        f"{record['pairs_used']} pairs, {record['pairs_skipped']} skipped)"
    )
    t.add_column("component")
    t.add_column("mean over layers", justify="right")
    t.add_column("rank", justify="right")
    t.add_column("theory rank", justify="right")
    for row in sorted(record["summary"], key=lambda r: r["rank"]):
        t.add_row(DISPLAY[row["component"]], f"{row['mean']:.4g}", str(row["rank"]), str(row["theory_rank"]))
    console.print(t)
    if "bounds" in record and "ranking" in record["bounds"]:
        rk = record["bounds"]["ranking"]
        console.print(f"Spearman(measured ranking, theory ranking) = {rk.get('spearman', float('nan')):.3f}")
        chk = record["bounds"].get("check")
        if chk is not None:
            verdict = (
                "all hold"
                if chk["all_hold"]
                else f"[bold red]{chk['violations']} VIOLATIONS[/bold red] (plasticity.json)"
            )
            console.print(
                f"bounds: {chk['rigorous_bounds_checked']} rigorous bounds vs {chk['n_pairs']} pairs: {verdict}"
            )
        elif "note" in record["bounds"]:
            console.print(record["bounds"]["note"])
    console.print(
        f"{record['seconds_measure']:.1f} s, {record['pairs_per_second']:.1f} pairs/s on "
        f"{record['device']}; results in {out}/"
    )
