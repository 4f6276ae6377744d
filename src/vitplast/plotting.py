"""Figures shared by the commands: one colour per component everywhere (:data:`vitplast.components.COLORS`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vitplast.components import COLORS, COMPONENTS, DISPLAY

if TYPE_CHECKING:
    from vitplast.diagnostics import Diagnostics


def block_axis(ax: Axes) -> None:
    """Label the x axis as the blocks, numbered from 0 as in every CSV and in the unit syntax (``mha@0-3``),
    with integer ticks."""
    ax.set_xlabel("block (from 0)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def step_axis(ax: Axes) -> None:
    """Label the x axis as training steps, with integer ticks."""
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_plasticity(table: pd.DataFrame, path: Path, title: str = "") -> None:
    """Per-layer plasticity of each component with its 95 % confidence band; log scale if values span > 30x."""
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=130)
    for comp in COMPONENTS:
        t = table[table["component"] == comp].sort_values("layer")
        if t.empty:
            continue
        x = t["layer"].to_numpy()
        m = t["mean"].to_numpy()
        ci = t["ci95"].fillna(0).to_numpy()
        ax.plot(x, m, marker="o", ms=3.5, lw=1.8, color=COLORS[comp], label=DISPLAY[comp])
        ax.fill_between(x, m - ci, m + ci, color=COLORS[comp], alpha=0.2, lw=0)
    positive = table["mean"][table["mean"] > 0]
    if len(positive) and positive.max() / positive.min() > 30:
        ax.set_yscale("log")
    block_axis(ax)
    ax.set_ylabel("plasticity  E[ ||f(X)-f(Y)|| / ||X-Y|| ]")
    ax.grid(alpha=0.3, which="both")
    ax.legend(ncol=5, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_diagnostics(diag: Diagnostics, path: Path, title: str = "") -> None:
    """Three panels per layer: hidden-state RMS per stream, attention normalised entropy per stream (forward
    pass, solid; on the embedded tokens, dashed), and each LayerNorm's predicted vs measured plasticity."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=120)
    lay = diag.layers
    for stream, style in (("source", "-"), ("target", "--")):
        t = lay[lay["stream"] == stream].sort_values("layer")
        x = t["layer"].to_numpy()
        _series(axes[0], x, t["hidden_rms"], style, marker="o", ms=3, color="0.2", label=f"{stream}")
        _series(axes[1], x, t["attn_entropy"], style, marker="o", ms=3, color=COLORS["mha"], label=f"{stream}, forward")
        _series(axes[1], x, t["attn_entropy_embedded"], style, marker="x", ms=3, color="0.5",
                label=f"{stream}, on E(x)")
    axes[0].set_ylabel("per-element RMS of the block input")
    axes[1].set_ylabel("attention entropy / log n")
    axes[1].set_ylim(0, 1.05)
    ln = diag.layernorm
    for comp in ("ln1", "ln2"):
        t = ln[ln["component"] == comp].sort_values("layer")
        x = t["layer"].to_numpy()
        _series(axes[2], x, t["predicted"], "--", color=COLORS[comp], label=f"{DISPLAY[comp]} rms(γ)/σ")
        _series(axes[2], x, t["measured"], "o-", ms=3, color=COLORS[comp], label=f"{DISPLAY[comp]} measured")
    axes[2].set_ylabel("LN plasticity")
    for ax in axes:
        block_axis(ax)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    _save(fig, path, title)


def _series(ax: Axes, x: Any, y: pd.Series, *args: Any, **kwargs: Any) -> None:
    """Plot ``y`` against ``x`` only when it has a finite value, so a legend lists only series that are drawn."""
    if pd.to_numeric(y, errors="coerce").notna().any():
        ax.plot(x, y, *args, **kwargs)


def plot_embed_scale(table: pd.DataFrame, path: Path, title: str = "") -> None:
    """Each component's plasticity (mean over layers) against the embedding scale c, P (left) and R (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    for ax, col, label in ((axes[0], "mean", "plasticity P"), (axes[1], "rel_mean", "relative plasticity R")):
        for comp in COMPONENTS:
            t = table[table["component"] == comp].groupby("scale")[col].mean()
            # LN1 and LN2 often coincide: LN1 is drawn last, dashed, with hollow markers, so both stay visible
            ln1 = comp == "ln1"
            ax.plot(t.index, t.to_numpy(), "--" if ln1 else "-", marker="s" if ln1 else "o", ms=6 if ln1 else 3.5,
                    mfc="none" if ln1 else COLORS[comp], color=COLORS[comp], label=DISPLAY[comp],
                    zorder=3 if ln1 else 2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("scale c of the embedded tokens")
        ax.set_ylabel(f"{label} (mean over layers)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    _save(fig, path, title)


def _save(fig: Figure, path: Path, title: str) -> None:
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
