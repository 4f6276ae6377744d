"""``vitplast analyze``: per-layer plasticity of every component of a ViT, with regime diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from vitplast.analysis_config import AGGREGATES, AnalyzeConfig
from vitplast.cli import app
from vitplast.cli.options import Fields, options_from
from vitplast.cli.progress import rich_progress
from vitplast.components import DISPLAY

if TYPE_CHECKING:
    from vitplast.analysis_result import AnalysisResult


@app.command()
@options_from(Fields(AnalyzeConfig, "cfg", exclude=("diag_pairs", "rtol")))
def analyze(
    cfg: AnalyzeConfig,
    out: Path = typer.Option(Path("vitplast-out/analyze"), help="Output directory."),
) -> None:
    """Measure the plasticity of ln1, mha, ln2, fc1 and fc2 in every block, with regime diagnostics.

    Writes OUT/plasticity.csv (layer, component, mean, std, ci95, n_pairs, rel_mean, rel_ci95), plasticity.json,
    plasticity.png, diagnostics_{tokens,layers,layernorm}.csv, diagnostics.png (and embed_scale.csv/.png with
    --embed-scale, bounds.csv with --with-bounds). Prints the per-layer ranking, the aggregates over layers
    (the ranking uses --rank-by) and the diagnostics that explain the numbers (docs/diagnostics.md).
    """
    with rich_progress(Console(stderr=True)) as progress:
        from vitplast.analysis import run_analysis

        res = run_analysis(cfg, progress)
    res.save(out)
    print_summary(res, out)


def _f(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and x != x) else f"{float(x):.4g}"


def print_summary(res: AnalysisResult, out: Path) -> None:
    console = Console(width=max(Console().width, 120))
    rec, cfg = res.record, res.config
    print_layers(console, res)
    t = Table(
        title=f"Plasticity of {cfg.model} ({cfg.mode} mode, {rec['pairs_used']} pairs, {rec['pairs_skipped']} "
        f"skipped): aggregates over layers; rank by {cfg.rank_by} = {AGGREGATES[cfg.rank_by]}"
    )
    for col in ("component", "mean", "median", "mean l>=1", "median l>=1", "rank", "theory rank", "R mean"):
        t.add_column(col, justify="left" if col == "component" else "right")
    rel = res.relative_summary.set_index("component")["mean"]
    for row in res.summary.sort_values("rank").to_dict("records"):
        c = row["component"]
        t.add_row(
            DISPLAY[c], _f(row["mean"]), _f(row["median"]), _f(row["mean_l1"]), _f(row["median_l1"]),
            str(row["rank"]), str(row["theory_rank"]), _f(rel[c]),
        )  # fmt: skip
    console.print(t)
    order = " > ".join(DISPLAY[c] for c in res.summary.sort_values("rank")["component"])
    console.print(f"ranking by {cfg.rank_by} ({AGGREGATES[cfg.rank_by]}): {order}")
    print_diagnostics(console, res)
    if len(res.scales) > 1:
        print_scales(console, res)
    if "bounds" in rec:
        b = rec["bounds"]
        console.print(f"Spearman(measured ranking by mean, theory ranking) = {_f(b['ranking'].get('spearman'))}")
        chk = b.get("check")
        if chk is not None:
            verdict = "all hold" if chk["all_hold"] else f"[bold red]{chk['violations']} VIOLATIONS[/bold red] (plasticity.json)"
            console.print(f"bounds: {chk['rigorous_bounds_checked']} rigorous bounds vs {chk['n_pairs']} pairs: {verdict}")
        elif "note" in b:
            console.print(b["note"])
    console.print(
        f"{rec['seconds_measure']:.1f} s, {rec['pairs_per_second']:.1f} pairs/s on {rec['device']}; results in {out}/"
    )


def print_layers(console: Console, res: AnalysisResult) -> None:
    """The per-layer table (primary): each component's plasticity and the order within the layer."""
    comps = list(res.summary["component"])
    t = _component_table("Per layer (primary): plasticity P and the order within the layer", "layer", comps, "order")
    tab = res.plasticity.table
    for layer, order in res.layers.items():
        vals = tab[tab["layer"] == layer].set_index("component")["mean"].to_dict()
        t.add_row(str(layer), *(_f(vals.get(c)) for c in comps), " > ".join(DISPLAY[c] for c in order))
    console.print(t)


def print_diagnostics(console: Console, res: AnalysisResult) -> None:
    """Token scale per stream, then per layer: hidden scale, attention, LN gains and the LN prediction."""
    d = res.diagnostics
    from vitplast.diagnostics import PAPER_REFERENCE as ref

    t = Table(
        title=f"Embedded tokens (normalisation: {d.normalization.get('name')}; {d.prefix_tokens} prefix tokens); "
        f"paper: {ref['model']}, r_mean {ref['r_mean']} at d = {ref['dim']}, RMS ~ {ref['rms_per_element']}"
    )
    for col in ("stream", "tokens", "RMS", "std", "r mean", "r max"):
        t.add_column(col, justify="left" if col in ("stream", "tokens") else "right")
    for r in d.tokens.to_dict("records"):
        t.add_row(r["stream"], r["tokens"], _f(r["rms"]), _f(r["std"]), _f(r["r_mean"]), _f(r["r_max"]))
    console.print(t)
    t = Table(title=f"Per layer: hidden scale, attention (1 = uniform) and LayerNorms ({d.mode} mode)")
    cols = ("layer", "hidden RMS src/tgt", "attn entropy src/tgt", "attn max src/tgt", "attn entropy on E(x)",
            "LN1 rms γ / max|γ|", "LN1 rms(γ)/σ", "LN1 P", "LN2 rms γ / max|γ|", "LN2 rms(γ)/σ", "LN2 P")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="right")
    lay, ln = d.layers, d.layernorm
    for layer in sorted(lay["layer"].unique()):
        s = lay[(lay["layer"] == layer) & (lay["stream"] == "source")].iloc[0]
        g = lay[(lay["layer"] == layer) & (lay["stream"] == "target")].iloc[0]
        cells = [str(layer), f"{_f(s.hidden_rms)} / {_f(g.hidden_rms)}", f"{_f(s.attn_entropy)} / {_f(g.attn_entropy)}",
                 f"{_f(s.attn_max)} / {_f(g.attn_max)}", _f((s.attn_entropy_embedded + g.attn_entropy_embedded) / 2)]  # fmt: skip
        for comp in ("ln1", "ln2"):
            r = ln[(ln["layer"] == layer) & (ln["component"] == comp)].iloc[0]
            cells += [f"{_f(r.gamma_rms)} / {_f(r.gamma_max_abs)}", _f(r.predicted), _f(r.measured)]
        t.add_row(*cells)
    console.print(t)
    t = Table(title=f"Regime indicators, source / target (docs/diagnostics.md); ViT-B token scale at c = "
                    f"{_f(d.vitb_scale)}, uniform attention distance {_f(d.uniform_attn_distance)}")
    for col in ("layer", "RMS(E(x)) / RMS(LN1 out)", "attn distance (patches)", "residual growth"):
        t.add_column(col, justify="right")
    for layer in sorted(lay["layer"].unique()):
        s = lay[(lay["layer"] == layer) & (lay["stream"] == "source")].iloc[0]
        g = lay[(lay["layer"] == layer) & (lay["stream"] == "target")].iloc[0]
        t.add_row(str(layer), *(f"{_f(s[k])} / {_f(g[k])}" for k in ("embed_ln1_ratio", "attn_distance", "residual_growth")))
    console.print(t)


def print_scales(console: Console, res: AnalysisResult) -> None:
    """P and R (mean over layers) of each component at each embedding scale c."""
    comps = list(res.summary["component"])
    t = _component_table("Embedded tokens scaled by c: P (R) as mean over layers", "c", comps, "order by P")
    for s in res.scales:
        p = s.table.groupby("component")["mean"].mean()
        r = s.table.groupby("component")["rel_mean"].mean()
        order = " > ".join(DISPLAY[c] for c in p.sort_values(ascending=False).index)
        t.add_row(f"{s.embed_scale:g}", *(f"{_f(p[c])} ({_f(r[c])})" for c in comps), order)
    console.print(t)


def _component_table(title: str, first: str, comps: list[str], last: str) -> Table:
    """A table with a ``first`` column, one column per component and a ``last`` column."""
    t = Table(title=title)
    t.add_column(first, justify="right")
    for c in comps:
        t.add_column(DISPLAY[c], justify="right")
    t.add_column(last)
    return t
