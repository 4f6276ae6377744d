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
from vitplast.configs import default_of, split_list
from vitplast.landscape.config import LandscapeConfig

C = LandscapeConfig


def _group_list(flag: str, spec: str) -> tuple[str, ...]:
    names = split_list(spec, flag)
    for name in names:
        if name not in SELECTABLE:
            raise fail(f"{flag} {name!r} is not a component group: use one of {' '.join(SELECTABLE)}")
    if not names:
        raise fail(f"{flag} needs one of {' '.join(SELECTABLE)}")
    return names


@app.command()
@options_from(Fields(C, "given", exclude=("groups",), build=False))
def landscape(
    given: dict[str, Any],
    train: str | None = typer.Option(
        None, "--train", help=f"One group to train: {' '.join(SELECTABLE)} (default: {default_of(C, 'groups')[0]})."
    ),
    groups: str | None = typer.Option(
        None, "--groups", help="Several groups, comma-separated (e.g. mha,ln1): one panel each, shared colour scale."
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
    if train is not None and groups is not None:
        raise fail("give --train GROUP or --groups G1,G2, not both")
    chosen = _group_list("--train", train) if train is not None else None
    if groups is not None:
        chosen = _group_list("--groups", groups)
    cfg = LandscapeConfig(**given, groups=chosen or default_of(C, "groups"))
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
