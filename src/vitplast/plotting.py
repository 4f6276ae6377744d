"""Figures shared by the commands: one colour per component everywhere (:data:`vitplast.components.COLORS`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from vitplast.components import COLORS, COMPONENTS, DISPLAY

if TYPE_CHECKING:
    from vitplast.diagnostics import Diagnostics


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


def plot_diagnostics(diag: Diagnostics, path: Path, title: str = "") -> None:
    """Three panels per layer: hidden-state RMS per stream, attention normalised entropy per stream (forward
    pass, solid; on the embedded tokens, dashed), and each LayerNorm's predicted vs measured plasticity."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=120)
    lay = diag.layers
    for stream, style in (("source", "-"), ("target", "--")):
        t = lay[lay["stream"] == stream].sort_values("layer")
        x = t["layer"].to_numpy() + 1
        axes[0].plot(x, t["hidden_rms"], style, marker="o", ms=3, color="0.2", label=f"{stream}")
        axes[1].plot(x, t["attn_entropy"], style, marker="o", ms=3, color=COLORS["mha"], label=f"{stream}, forward")
        axes[1].plot(x, t["attn_entropy_embedded"], style, marker="x", ms=3, color="0.5", label=f"{stream}, on E(x)")
    axes[0].set_ylabel("per-element RMS of the block input")
    axes[1].set_ylabel("attention entropy / log n")
    axes[1].set_ylim(0, 1.05)
    ln = diag.layernorm
    for comp in ("ln1", "ln2"):
        t = ln[ln["component"] == comp].sort_values("layer")
        x = t["layer"].to_numpy() + 1
        axes[2].plot(x, t["predicted"], "--", color=COLORS[comp], label=f"{DISPLAY[comp]} rms(γ)/σ")
        axes[2].plot(x, t["measured"], "o-", ms=3, color=COLORS[comp], label=f"{DISPLAY[comp]} measured")
    axes[2].set_ylabel("LN plasticity")
    for ax in axes:
        ax.set_xlabel("layer (block)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path, title)


def plot_embed_scale(table: pd.DataFrame, path: Path, title: str = "") -> None:
    """Each component's plasticity (mean over layers) against the embedding scale c, P (left) and R (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
    for ax, col, label in ((axes[0], "mean", "plasticity P"), (axes[1], "rel_mean", "relative plasticity R")):
        for comp in COMPONENTS:
            t = table[table["component"] == comp].groupby("scale")[col].mean()
            ax.plot(t.index, t.to_numpy(), marker="o", ms=3.5, color=COLORS[comp], label=DISPLAY[comp])
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
