"""``vitplast recommend`` (which groups to finetune) and ``vitplast export`` (a choice, for your own training)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from vitplast.cli import app
from vitplast.cli.options import Fields, options_from
from vitplast.cli.progress import rich_progress
from vitplast.components import DISPLAY
from vitplast.errors import VitplastError
from vitplast.selectors.config import RecommendConfig

if TYPE_CHECKING:
    from vitplast.selectors.result import RecommendResult

C = RecommendConfig


@app.command()
@options_from(Fields(C, "cfg"))
def recommend(
    cfg: RecommendConfig,
    out: Path = typer.Option(Path("vitplast-out/recommend"), help="Output directory."),
    export: Path | None = typer.Option(None, help="Also export the recommended set here (see `vitplast export`)."),
) -> None:
    """Rank the trainable groups (embed ln1 mha ln2 fc1 fc2), or with --granularity block the units of single
    blocks (mha@11), with each selector and recommend a set.

    Prints each selector's ranking and its set under the parameter budget; with --pilot, short finetunes of
    the candidate sets (successive halving) pick the winner. Writes OUT/recommend.json, OUT/recommend.csv and
    OUT/recommend.png.
    """
    from vitplast.selectors.recommend import recommend as run_recommend

    with rich_progress(Console(stderr=True)) as progress:
        result = run_recommend(cfg, progress=progress)
    if export is not None and not result.recommended:
        raise VitplastError(f"nothing to export: nothing fits in the budget of {result.budget:,} parameters")
    result.save(out)
    print_result(result)
    if export is not None:
        _export(cfg.model, cfg.random_weights, cfg.seed, result.recommended, export)
    Console().print(f"results in {out}/")


def print_result(result: RecommendResult) -> None:
    console = Console()
    total = sum(result.sizes.values())
    t = Table(title=f"Selectors on {result.config.model} / {result.config.data} ({len(result.scores)} selectors, "
                    f"budget {result.budget:,} of {total:,} backbone parameters)")
    t.add_column("selector")
    t.add_column("ranking (score), best first")
    t.add_column("set under budget")
    for name, s in result.scores.items():
        if result.blockwise:
            top = [u for u in s.unit_ranking() if not math.isnan(s.blocks[u[0]][u[1]])][:5]
            ranked = " > ".join(f"{DISPLAY[c]}@{b} {s.blocks[c][b]:.3g}" for c, b in top) + " > ..."
        else:
            ranked = " > ".join(f"{DISPLAY[g]} {s.groups[g]:.3g}" for g in s.ranking() if not math.isnan(s.groups[g]))
        t.add_row(name, ranked, ",".join(result.sets[name]) or "(none fits)")
    console.print(t)
    for name, why in result.skipped.items():
        console.print(f"skipped {name}: it {why}")
    if result.pilot:
        p = Table(title="Pilot: successive halving (best validation accuracy)")
        for col in ("round", "steps", "groups", "val acc", "test acc", "kept"):
            p.add_column(col)
        for r in result.pilot:
            test = "" if r["test_acc"] is None else f"{100 * r['test_acc']:.1f} %"
            p.add_row(str(r["round"]), str(r["steps"]), r["groups"], f"{100 * r['val_acc']:.1f} %", test,
                      "yes" if r["kept"] else "")
        console.print(p)
    how = "won the pilot" if result.winner is not None else f"by {next(iter(result.scores))}"
    console.print(f"recommended: train {','.join(result.recommended) or 'the head only'} ({how}), "
                  f"{result.params_of(result.recommended):,} parameters + the head")


def _export(model: str, random_weights: bool, seed: int, groups: tuple[str, ...] | str, out: Path) -> None:
    from vitplast.export import write_export
    from vitplast.models import load_model

    vit = load_model(model, random_weights=random_weights, seed=seed)
    paths = write_export(vit.module, groups, out)
    Console().print("exported: " + ", ".join(str(p) for p in paths))


@app.command("export")
@options_from(Fields(C, "given", only=("model", "random_weights"), build=False))
def export_cmd(
    given: dict[str, Any],
    groups: str = typer.Option(..., "--train", help="Groups to train: a comma list of embed ln1 mha ln2 fc1 fc2, "
                               "each but embed optionally in some blocks only (mha@8-11,ln2; docs/selectors.md)."),
    out: Path = typer.Option(..., help="Output directory."),
) -> None:
    """Write a group choice for your own training: OUT/trainable_parameters.txt (names to leave trainable;
    everything else frozen) and, with peft installed, OUT/peft/adapter_config.json (LoRA on the chosen linear
    layers, LayerNorm tuning, the head trained in full; load with peft.PeftConfig.from_pretrained(OUT/peft))."""
    _export(given["model"], given["random_weights"], 0, groups, out)
