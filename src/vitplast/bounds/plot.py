"""``bounds.png``: per layer, each component's bound beside its measured plasticity (log scale).

One panel per component, in its colour from :data:`vitplast.components.COLORS`: the primary rigorous bound
(solid), the paper's variant where it has one (dashed; non-positive values cannot be drawn on a log axis
and are left out), FC2's whole-matrix norm (dotted), and the measured mean plasticity with its 95 % CI
(markers) and the largest per-pair ratio (crosses) when a measurement is given.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.lines import Line2D

from vitplast.bounds.variants import PAPER, PRIMARY
from vitplast.components import COLORS, COMPONENTS, DISPLAY
from vitplast.plotting import block_axis


def _line(ax: plt.Axes, t: pd.DataFrame, variant: str, color: str, style: str, label: str) -> None:
    rows = t[(t["variant"] == variant) & (t["bound"] > 0)].sort_values("layer")
    if len(rows):
        ax.plot(rows["layer"], rows["bound"], style, color=color, lw=1.6, ms=3, label=label)


def plot_bounds(
    bounds: pd.DataFrame,
    path: Path,
    measured: pd.DataFrame | None = None,
    pair_max: pd.DataFrame | None = None,
    title: str = "",
) -> None:
    """Draw ``bounds`` (a :class:`~vitplast.bounds.result.BoundsResult` table) and, if given, the measured
    plasticity table (``layer component mean ci95``) and per-(layer, component) maxima (``measured_max``)."""
    fig, axes = plt.subplots(1, len(COMPONENTS), figsize=(15, 3.6), dpi=120, sharex=True)
    for ax, comp in zip(axes, COMPONENTS, strict=True):
        color = COLORS[comp]
        t = bounds[bounds["component"] == comp]
        _line(ax, t, PRIMARY[comp], color, "-o", f"bound ({PRIMARY[comp]})")
        if comp in PAPER:
            _line(ax, t, PAPER[comp], color, "--", f"paper ({PAPER[comp]}, not a bound)")
        if comp == "fc2":
            _line(ax, t, "spectral_full", color, ":", "||W2||, whole matrix")
        if measured is not None:
            m = measured[measured["component"] == comp].sort_values("layer")
            ax.errorbar(
                m["layer"],
                m["mean"],
                yerr=m["ci95"].fillna(0),
                fmt="s",
                color="black",
                mfc=color,
                ms=4.5,
                lw=1,
                label="measured mean",
            )
        if pair_max is not None:
            p = pair_max[(pair_max["component"] == comp) & (pair_max["variant"] == PRIMARY[comp])]
            p = p.sort_values("layer")
            ax.plot(p["layer"], p["measured_max"], "x", color="black", ms=4, label="max over pairs")
        ax.set_yscale("log")
        ax.set_title(DISPLAY[comp], color=color, fontsize=10, fontweight="bold")
        block_axis(ax)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("rate of change  ||f(X)-f(Y)|| / ||X-Y||")
    handles = [
        Line2D([], [], color="grey", marker="o", ms=3, lw=1.6, label="rigorous bound"),
        Line2D([], [], color="grey", ls="--", lw=1.6, label="paper's variant (not a bound)"),
        Line2D([], [], color="grey", ls=":", lw=1.6, label="FC2: whole-matrix norm"),
    ]
    if measured is not None:
        handles.append(Line2D([], [], color="black", marker="s", mfc="grey", ls="", label="measured mean (95% CI)"))
    if pair_max is not None:
        handles.append(Line2D([], [], color="black", marker="x", ls="", label="largest measured pair"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path)
    plt.close(fig)
