"""Figure of a recommendation: one panel per selector, its scores per group (at block granularity a heat map of
blocks x components), the budgeted set highlighted. Drawn from the :class:`RecommendResult` only."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitplast.components import COLORS, DISPLAY

if TYPE_CHECKING:
    from vitplast.selectors.recommend import RecommendResult


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
