"""Figures shared by the commands: one colour per component everywhere (:data:`vitplast.components.COLORS`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from vitplast.components import COLORS, COMPONENTS, DISPLAY


def plot_plasticity(table: pd.DataFrame, path: Path, title: str = "") -> None:
    """Per-layer plasticity of each component with its 95 % confidence band; log scale if values span > 30x."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=130)
    for comp in COMPONENTS:
        t = table[table["component"] == comp].sort_values("layer")
        if t.empty:
            continue
        x = t["layer"].to_numpy() + 1
        m = t["mean"].to_numpy()
        ci = t["ci95"].fillna(0).to_numpy()
        ax.plot(x, m, marker="o", ms=3.5, lw=1.8, color=COLORS[comp], label=DISPLAY[comp])
        ax.fill_between(x, m - ci, m + ci, color=COLORS[comp], alpha=0.2, lw=0)
    positive = table["mean"][table["mean"] > 0]
    if len(positive) and positive.max() / positive.min() > 30:
        ax.set_yscale("log")
    ax.set_xlabel("layer (block)")
    ax.set_ylabel("plasticity  E[ ||f(X)-f(Y)|| / ||X-Y|| ]")
    ax.set_xticks(sorted(table["layer"].unique() + 1))
    ax.grid(alpha=0.3, which="both")
    ax.legend(ncol=5, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
