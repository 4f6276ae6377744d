"""``vitplast landscape``: loss landscapes of component groups along their own SGD trajectories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from vitplast.cli import app, fail
from vitplast.cli.options import Fields, options_from
from vitplast.cli.progress import rich_progress
from vitplast.components import SELECTABLE
from vitplast.configs import default_of
from vitplast.landscape.config import LandscapeConfig, panel
from vitplast.units import split_choices

C = LandscapeConfig


def _panels(train: str | None, groups: str | None) -> tuple[str, ...] | None:
    """``--train SET`` (one panel: ``mha@8-11,ln2`` is one set) or ``--groups`` (one panel per choice, split by
    :func:`vitplast.units.split_choices`: ``ln1@0,2,4,mha`` is two panels), each in canonical form."""
    if train is not None and groups is not None:
        raise fail("give --train SET or --groups S1,S2, not both")
    if train is not None:
        return (panel(train, "--train"),)
    if groups is None:
        return None
    chosen = tuple("+".join(items) for items in split_choices(groups, "--groups", SELECTABLE))
    if not chosen:
        raise fail(f"--groups needs one of {' '.join(SELECTABLE)}")
    return chosen


@app.command()
@options_from(Fields(C, "given", exclude=("groups",), build=False))
def landscape(
    given: dict[str, Any],
    train: str | None = typer.Option(
        None, "--train", help=f"One set to train: a group ({' '.join(SELECTABLE)}) or unit set, e.g. mha@8-11 or "
        f"mha@8-11,ln2 (one panel; default: {default_of(C, 'groups')[0]})."
    ),
    groups: str | None = typer.Option(
        None, "--groups", help="Several sets, comma-separated (e.g. mha,ln1): one panel each, shared colour scale. "
        "A comma before a block index continues a unit set, + joins a set: ln1@0,2,4,mha@8-11+ln2 is two panels."
    ),
    out: Path = typer.Option(Path("vitplast-out/landscape"), help="Output directory."),
) -> None:
    """Loss landscape of a component group along the two PCA directions of its own SGD trajectory.

    Trains the group alone (head frozen) with plain SGD, takes the two leading principal directions of the
    trajectory's offsets from its final point, and evaluates the training loss on a GRID x GRID plane of offsets
    around the final point. Writes OUT/landscape.csv (group, alpha, beta, loss), OUT/trajectory.csv (group, step,
    alpha, beta, loss), OUT/landscape.json (explained variance, grid, data, head) and OUT/landscape.png.
    See docs/landscape.md.
    """
    cfg = LandscapeConfig(**given, groups=_panels(train, groups) or default_of(C, "groups"))
    from vitplast.landscape.run import compute_landscape

    with rich_progress(Console(stderr=True)) as progress:
        result = compute_landscape(cfg, progress=progress)
    result.save(out)
    for g in result.groups:
        s = g.summary()
        print(
            f"{g.group}: loss {s['start_loss']:.4g} -> {s['final_loss']:.4g} over {cfg.steps} steps "
            f"(moved {s['distance_travelled']:.3g}); PC1 {100 * g.explained[0]:.1f} %, PC2 {100 * g.explained[1]:.1f} % "
            f"of the offsets; grid loss {s['grid_min']:.4g} .. {s['grid_max']:.4g}"
        )
    print(f"results in {out}/ (landscape.csv, trajectory.csv, landscape.json, landscape.png)")
