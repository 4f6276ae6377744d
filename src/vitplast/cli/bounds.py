"""``vitplast bounds``: theoretical upper bounds on plasticity, checked against measured pairs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from vitplast.analysis_config import AnalyzeConfig
from vitplast.cli import app
from vitplast.cli.options import Fields, options_from
from vitplast.cli.progress import rich_progress
from vitplast.components import COMPONENTS, DISPLAY

if TYPE_CHECKING:
    import pandas as pd

    from vitplast.bounds.result import BoundsView

MAX_PRINTED_VIOLATIONS = 50


#: The analysis settings ``bounds`` takes (the others are the analysis defaults; the mode is embedding).
BOUNDS_FIELDS = ("model", "target", "source", "pairs", "batch_size", "seed", "device", "random_weights", "normalization")


@app.command()
@options_from(Fields(AnalyzeConfig, "given", only=BOUNDS_FIELDS, rename={"target": "data"}, build=False))
def bounds(
    given: dict[str, Any],
    out: Path = typer.Option(Path("vitplast-out/bounds"), help="Output directory."),
    plasticity: Path | None = typer.Option(
        None,
        help="A plasticity.csv (or an analyze output directory) to draw and rank instead of this command's "
        "measurement; the per-pair check always uses the pairs measured here.",
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Exit with status 1 when a measured pair exceeds a rigorous bound (for CI)."
    ),
) -> None:
    """Bound the plasticity of ln1, mha, ln2, fc1 and fc2 in every block (embedding mode, docs/diagnostics.md).

    A view on one analysis (the same pass over the images as vitplast analyze --with-bounds). Writes
    OUT/bounds.csv, check.csv, violations.csv, bounds.png and bounds.json. Prints the check of every rigorous
    bound against every measured pair and the Spearman correlation of the measured ranking with the theory's.
    Violations are reported with exit status 0, or 1 with --strict.
    """
    cfg = AnalyzeConfig(**given, mode="embedding", with_bounds=True)
    from vitplast.analysis import bounds_view, run_analysis
    from vitplast.bounds.run import plasticity_csv

    if plasticity is not None:
        plasticity_csv(plasticity)
    with rich_progress(Console(stderr=True)) as progress:
        view = bounds_view(run_analysis(cfg, progress), plasticity)
    view.save(out)
    print_summary(view, out)
    chk = view.record["check"]
    if strict and chk.get("status") == "checked" and not chk["all_hold"]:
        sys.exit(1)  # typer.Exit(code) is swallowed by main() (standalone_mode=False)


def _fmt(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and x != x) else f"{float(x):.4g}"


def print_summary(view: BoundsView, out: Path) -> None:
    from vitplast.bounds.variants import PRIMARY

    console = Console()
    record = view.record
    bnd, measured, check_t = view.check.bounds.table, view.measured, view.check.tightness
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
            _print_violations(console, view.check.violations, chk)
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
