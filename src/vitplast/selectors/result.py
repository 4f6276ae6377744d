"""What :func:`~vitplast.selectors.recommend.recommend` returns, and how it is saved and drawn.

:class:`RecommendResult` holds each selector's scores and budgeted set (and the pilot's runs);
:meth:`~RecommendResult.save` writes its record, its table and the figure :func:`plot_recommend` draws from it: one
panel per selector, its scores per group (at block granularity a heat map of blocks x components), the budgeted
set highlighted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vitplast.components import COLORS, DISPLAY
from vitplast.io import output_dir, write_json_atomic, write_text_atomic
from vitplast.selectors.base import Scores
from vitplast.selectors.config import RecommendConfig
from vitplast.selectors.registry import selector_index
from vitplast.units import split_item


def set_params(items: tuple[str, ...], sizes: dict[str, int], unit_sizes: dict[str, list[int]]) -> int:
    """Parameters of a set of groups and unit sets: ``sizes[g]`` for a whole group ``g``, ``sum_b
    unit_sizes[c][b]`` for a unit set ``c@blocks``."""
    total = 0
    for item in items:
        c, blocks = split_item(item)
        total += sizes[c] if blocks is None else sum(unit_sizes[c][b] for b in blocks)
    return total


@dataclass
class RecommendResult:
    """Scores, rankings and budgeted sets per selector; the pilot's runs and winner when it ran. ``sizes``:
    parameters per group; ``unit_sizes[c][b]``: parameters of component ``c`` in block ``b``; ``skipped``: the
    selectors that cannot score at the granularity, with the reason."""

    config: RecommendConfig
    scores: dict[str, Scores]
    sizes: dict[str, int]
    budget: int
    sets: dict[str, tuple[str, ...]]
    pilot: list[dict[str, Any]] = field(default_factory=list)
    winner: tuple[str, ...] | None = None
    images_used: int | None = None
    warnings: list[str] = field(default_factory=list)
    unit_sizes: dict[str, list[int]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def recommended(self) -> tuple[str, ...]:
        """The pilot's winner, or else the set of the first selector that ran."""
        return self.winner if self.winner is not None else self.sets[next(iter(self.scores))]

    @property
    def blockwise(self) -> bool:
        return self.config.granularity == "block"

    def params_of(self, items: tuple[str, ...]) -> int:
        """Parameters of a set of groups and unit sets (:func:`set_params`)."""
        return set_params(items, self.sizes, self.unit_sizes)

    def chosen_units(self, name: str) -> set[tuple[str, int]]:
        """The ``(component, block)`` units of selector ``name``'s set."""
        depth = len(next(iter(self.unit_sizes.values())))
        return {(c, b) for c, blocks in (split_item(i) for i in self.sets[name]) if c in self.unit_sizes
                for b in (range(depth) if blocks is None else blocks)}

    def table(self) -> pd.DataFrame:
        """One row per (selector, group): ``score``, ``rank`` (1 = train first; NaN unscored), ``params``, ``chosen``;
        at block granularity one row per (selector, component, block), with a ``block`` column."""
        rows = []
        for name, s in self.scores.items():
            if self.blockwise:
                chosen = self.chosen_units(name)
                for rank, (c, b) in enumerate(s.unit_ranking(), 1):
                    v = s.blocks[c][b]
                    rows.append({"selector": name, "group": c, "block": b, "score": v,
                                 "rank": math.nan if math.isnan(v) else rank, "params": self.unit_sizes[c][b],
                                 "chosen": (c, b) in chosen})
                continue
            ranking = s.ranking()
            for g in ranking:
                ok = not math.isnan(s.groups[g])
                rows.append({"selector": name, "group": g, "score": s.groups[g],
                             "rank": ranking.index(g) + 1 if ok else math.nan, "params": self.sizes[g],
                             "chosen": g in self.sets[name]})
        cols = ["selector", "group", *(["block"] if self.blockwise else []), "score", "rank", "params", "chosen"]
        return pd.DataFrame(rows, columns=cols)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "budget_params": self.budget,
            "backbone_params": sum(self.sizes.values()),
            "group_params": self.sizes,
            "unit_params": self.unit_sizes,
            "selectors": {n: {"formula": selector_index()[n].formula, "scores": s.groups, "per_block": s.blocks,
                              "ranking": s.ranking(), "set": list(self.sets[n]), "set_params": self.params_of(
                                  self.sets[n])} for n, s in self.scores.items()},
            "skipped": self.skipped,
            "pilot": self.pilot,
            "winner": list(self.winner) if self.winner is not None else None,
            "recommended": list(self.recommended),
            "images_used": self.images_used,
            "warnings": self.warnings,
        }

    def save(self, out: Path) -> list[Path]:
        """Write ``recommend.json`` (:meth:`to_dict`), ``recommend.csv`` (:meth:`table`) and ``recommend.png``
        (:func:`plot_recommend`) into ``out`` atomically (nothing is left behind on failure); return the paths."""
        names = ["recommend.json", "recommend.csv", "recommend.png"]
        with output_dir(out) as stage:
            write_json_atomic(stage / names[0], self.to_dict())
            write_text_atomic(stage / names[1], self.table().to_csv(index=False))
            plot_recommend(self, stage / names[2])
        return [out / n for n in names]


def plot_recommend(result: RecommendResult, path: Path) -> None:
    """Scores normalised by each selector's largest |score| (bars in ranking order; chosen groups opaque; at
    block granularity a heat map, chosen units framed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.scores)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.3 * rows), dpi=120, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        _mark_winner(ax, result, name)
        if result.blockwise:
            _heat_map(ax, result, name)
            continue
        s = result.scores[name]
        order = s.ranking()
        vals = [s.groups[g] for g in order]
        top = max((abs(v) for v in vals if not math.isnan(v)), default=1.0) or 1.0
        chosen = result.sets[name]
        ax.barh(range(len(order)), [0 if math.isnan(v) else v / top for v in vals],
                color=[COLORS[g] for g in order], alpha=1.0, edgecolor="black",
                linewidth=[1.5 if g in chosen else 0 for g in order])
        for i, g in enumerate(order):
            if g not in chosen:
                ax.patches[i].set_alpha(0.35)
        ax.set_yticks(range(len(order)), [DISPLAY[g] + (" *" if g in chosen else "") for g in order], fontsize=7)
        ax.invert_yaxis()
        ax.tick_params(axis="x", labelsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    mark = "framed" if result.blockwise else "* ="
    won = "" if result.winner is None else f"\npilot winner: {','.join(result.winner)} (its selectors' titles in green)"
    fig.suptitle(f"{result.config.model} on {result.config.data}: scores / max ({mark} in the set under a budget of "
                 f"{result.budget:,} parameters){won}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _heat_map(ax: Any, result: RecommendResult, name: str) -> None:
    """Blocks (rows, 0 at the top) x components: score / max |score| (NaN blank); chosen units framed."""
    import numpy as np
    from matplotlib.patches import Rectangle

    s = result.scores[name]
    comps = list(s.blocks)
    grid = np.array([s.blocks[c] for c in comps], dtype=float).T
    top = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    ax.imshow(grid / (top or 1.0), cmap="viridis", aspect="auto", vmin=min(0.0, float(np.nanmin(grid / (top or 1.0)))),
              vmax=1.0)
    for c, b in result.chosen_units(name):
        ax.add_patch(Rectangle((comps.index(c) - 0.5, b - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    ax.set_xticks(range(len(comps)), [DISPLAY[c] for c in comps], fontsize=6)
    ax.set_yticks(range(grid.shape[0]), [str(b) for b in range(grid.shape[0])], fontsize=6)
    ax.set_ylabel("block", fontsize=6)


def _mark_winner(ax: Any, result: RecommendResult, name: str) -> None:
    """The panel's title: the selector's name, in bold green with "pilot winner" when the pilot chose its set."""
    if result.winner is not None and tuple(result.sets[name]) == tuple(result.winner):
        ax.set_title(f"{name}: pilot winner", fontsize=8, color="#2ca02c", fontweight="bold")
    else:
        ax.set_title(name, fontsize=8)
