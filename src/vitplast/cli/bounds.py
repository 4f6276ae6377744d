"""``vitplast bounds``: theoretical upper bounds on plasticity, checked against measured pairs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from vitplast.bounds.compute import PRIMARY
from vitplast.bounds.run import BoundsConfig, run_bounds
from vitplast.cli import app
from vitplast.cli.progress import progress_bar
from vitplast.components import COMPONENTS, DISPLAY

DEFAULTS = BoundsConfig()
MAX_PRINTED_VIOLATIONS = 50


@app.command()
def bounds(
    model: str = typer.Option(
        DEFAULTS.model, help="Model spec: micro, timm:ARCH, timm:ARCH@FILE.safetensors, hf:ORG/NAME or hf:DIR."
    ),
    data: str = typer.Option(DEFAULTS.data, help="Target (downstream) data spec, e.g. mini:digits, folder:PATH."),
    source: str = typer.Option(DEFAULTS.source, help="Source (pretraining-like) data spec, e.g. mini:source."),
    pairs: int = typer.Option(DEFAULTS.pairs, help="Number of (source, target) image pairs."),
    batch_size: int = typer.Option(DEFAULTS.batch_size, help="Pairs per forward pass."),
    seed: int = typer.Option(DEFAULTS.seed, help="Seed of the random image order (as vitplast analyze)."),
    device: str = typer.Option(DEFAULTS.device, help="auto, cpu, cuda, cuda:N or mps."),
    out: Path = typer.Option(Path("vitplast-out/bounds"), help="Output directory."),
    plasticity: str | None = typer.Option(
        None,
        help="A plasticity.csv (or an analyze output directory) to draw and rank instead of measuring; "
        "the per-pair check then needs a measurement and is skipped.",
    ),
    random_weights: bool = typer.Option(
        False, "--random-weights", help="Build the architecture with random weights (offline)."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Exit with status 1 when a measured pair exceeds a rigorous bound (for CI)."
    ),
) -> None:
    """Bound the plasticity of ln1, mha, ln2, fc1 and fc2 in every block (embedding mode, SPEC 2).

    Writes OUT/bounds.csv, check.csv, violations.csv, bounds.png and bounds.json. Prints the check of every rigorous bound against every measured pair and the Spearman correlation of the measured ranking with the theory's. Violations are reported with exit status 0, or 1 with --strict.
    """
    cfg = BoundsConfig(
        model=model,
        data=data,
        source=source,
        pairs=pairs,
        batch_size=batch_size,
        seed=seed,
        device=device,
        plasticity=plasticity,
        random_weights=random_weights,
    )
    cfg.validate()
    console = Console(stderr=True)
    with progress_bar(console, "pairs") as start:

        def make(label: str, total: int) -> Callable[[int], None]:
            return start(total)

        record = run_bounds(cfg, out, progress=make)
    print_summary(record, out)
    chk = record["check"]
    if strict and chk.get("status") == "checked" and not chk["all_hold"]:
        sys.exit(1)  # typer.Exit(code) is swallowed by main() (standalone_mode=False)


def _fmt(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and x != x) else f"{float(x):.4g}"


def print_summary(record: dict[str, Any], out: Path) -> None:
    console = Console()
    tables = record["_tables"]
    bnd: pd.DataFrame = tables["bounds"]
    measured: pd.DataFrame = tables["measured"]
    check_t: pd.DataFrame | None = tables["check"]
    st = record["stats"]
    t = Table(
        title=f"Bounds of {record['config']['model']} (embedding mode, {record['pairs']} pairs; "
        f"n={st['seq_len']}, r_max={st['r_max']:.4g}, r_mean={st['r_mean_target']:.4g}, "
        f"sigma_min={st['sigma2_min'] ** 0.5:.4g})"
    )
    for col in ("component", "bound (mean over layers)", "variant", "measured mean", "max pair / bound"):
        t.add_column(col, justify="left" if col in ("component", "variant") else "right")
    for comp in COMPONENTS:
        rows = bnd[(bnd["component"] == comp) & (bnd["variant"] == PRIMARY[comp])]
        m = measured[measured["component"] == comp]["mean"].mean()
        tight = None
        if check_t is not None:
            c = check_t[(check_t["component"] == comp) & (check_t["variant"] == PRIMARY[comp])]
            tight = c["max_over_bound"].max()
        t.add_row(DISPLAY[comp], _fmt(rows["bound"].mean()), PRIMARY[comp], _fmt(m), _fmt(tight))
    console.print(t)
    chk = record["check"]
    if chk.get("status") == "checked":
        if chk["all_hold"]:
            console.print(
                f"[green]all {chk['rigorous_bounds_checked']} rigorous bounds hold on all {chk['n_pairs']} "
                f"measured pairs[/green] ({chk['comparisons']} comparisons, rtol {chk['rtol']:g}); tightest: "
                f"{chk['tightest']['component']}/{chk['tightest']['variant']} layer {chk['tightest']['layer']} "
                f"at {chk['tightest']['max_over_bound']:.3g} of its bound"
            )
        else:
            _print_violations(console, tables["violations"], chk)
        exceeded = {k: v for k, v in chk["non_rigorous_exceeded"].items() if v}
        if exceeded:
            console.print(f"non-rigorous (paper) variants exceeded by measured pairs: {exceeded}")
    else:
        console.print(f"check {chk['status']}")
        for w in chk.get("warnings", []):
            console.print(f"[yellow]warning:[/yellow] {w}")
    rk = record["ranking"]
    console.print(
        f"ranking measured: {' > '.join(DISPLAY[c] for c in rk['measured'])}; theory: "
        f"{' > '.join(DISPLAY[c] for c in rk['theory'])}; Spearman = {_fmt(rk['spearman'])}"
    )
    if "bound_ranking" in rk:
        console.print(
            f"ranking of the bounds: {' > '.join(DISPLAY[c] for c in rk['bound_ranking'])}; Spearman vs theory "
            f"{_fmt(rk['spearman_bounds_theory'])}, vs measured {_fmt(rk['spearman_bounds_measured'])}"
        )
    console.print(f"{record['seconds_total']:.1f} s on {record['device']}; results in {out}/")


def _print_violations(console: Console, violations: pd.DataFrame, chk: dict[str, Any]) -> None:
    console.print(f"[bold red]{chk['violations']} VIOLATIONS of rigorous bounds[/bold red] (all in violations.csv)")
    t = Table()
    for col in ("layer", "component", "variant", "pair", "value", "bound", "margin"):
        t.add_column(col)
    for r in violations.head(MAX_PRINTED_VIOLATIONS).itertuples(index=False):
        t.add_row(
            str(r.layer), str(r.component), str(r.variant), str(r.pair), _fmt(r.value), _fmt(r.bound), _fmt(r.margin)
        )
    console.print(t)
    if len(violations) > MAX_PRINTED_VIOLATIONS:
        console.print(f"... {len(violations) - MAX_PRINTED_VIOLATIONS} more in violations.csv")
