"""The report's figures, saved as PNG (and PDF with :data:`WITH_PDF`); one colour per component
(:data:`vitplast.components.COLORS`).

Every function takes tidy tables (see :mod:`vitplast.report.stats`), draws one figure and returns the
PNG path (a PDF, when asked for, sits beside it), or ``None`` when the tables hold nothing to draw.
"""

from __future__ import annotations

import contextvars
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vitplast.components import COLORS, COMPONENTS, DISPLAY
from vitplast.plotting import block_axis, step_axis

GROUP_ORDER = ["full", "embed", "ln1", "mha", "ln2", "fc1", "fc2"]


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def ordered_groups(groups: Sequence[str]) -> list[str]:
    known = [g for g in GROUP_ORDER if g in set(groups)]
    return known + sorted(set(groups) - set(known))


def color(group: str) -> str:
    return COLORS.get(group, "#555555")


def label(group: str) -> str:
    return DISPLAY.get(group, group.upper())


#: Whether figures are also written as PDF (``vitplast report --pdf``); PNG only by default.
WITH_PDF: contextvars.ContextVar[bool] = contextvars.ContextVar("with_pdf", default=False)


def save(fig: Any, path: Path) -> Path:
    """Write ``path`` (PNG), and the same figure as PDF when :data:`WITH_PDF` is set; close the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    if WITH_PDF.get():
        fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
    plt.close(fig)
    return path


def _grid(n: int, ncols: int = 3, size: tuple[float, float] = (4.6, 3.4), sharey: bool = False) -> tuple[Any, list[Any]]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False, sharey=sharey)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def plasticity_figure(plast: pd.DataFrame, path: Path) -> Path | None:
    """Per (model, dataset) panel: mean plasticity per layer of each component with its 95 % CI band."""
    if plast.empty:
        return None
    panels = list(plast.groupby(["model_label", "dataset"], sort=False))
    fig, axes = _grid(len(panels))
    for ax, ((model, ds), t) in zip(axes, panels, strict=True):
        for comp in COMPONENTS:
            c = t[t["component"] == comp].sort_values("layer")
            if c.empty:
                continue
            x, m, ci = c["layer"].to_numpy(), c["mean"].to_numpy(), c["ci95"].fillna(0).to_numpy()
            ax.plot(x, m, "o-", ms=3, lw=1.6, color=COLORS[comp], label=DISPLAY[comp])
            ax.fill_between(x, m - ci, m + ci, color=COLORS[comp], alpha=0.2, lw=0)
        pos = t["mean"][t["mean"] > 0]
        if len(pos) and pos.max() / pos.min() > 30:
            ax.set_yscale("log")
        ax.set(title=f"{ds}" + (f" ({model})" if plast["model_label"].nunique() > 1 else ""), ylabel="plasticity")
        block_axis(ax)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, ncol=2)
    fig.suptitle("Plasticity per layer: E[||f(X) - f(Y)|| / ||X - Y||] (source vs target pairs)")
    fig.tight_layout()
    return save(fig, path)


def bounds_figures(bounds: pd.DataFrame, plast: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One ``bounds_<dataset>.png`` per (model, dataset) analysis (``vitplast.bounds.plot.plot_bounds``)."""
    if bounds.empty:
        return []
    from vitplast.bounds.plot import plot_bounds

    paths = []
    for (model, ds), t in bounds.groupby(["model_label", "dataset"], sort=False):
        meas = plast[(plast["model_label"] == model) & (plast["dataset"] == ds)]
        name = f"bounds_{slug(str(ds))}" + (f"_{slug(str(model))}" if bounds["model_label"].nunique() > 1 else "")
        tb = t.copy()
        tb["rigorous"] = tb["rigorous"].astype(str).str.lower() == "true"
        for ext in (".png", ".pdf") if WITH_PDF.get() else (".png",):
            plot_bounds(tb, out_dir / f"{name}{ext}", measured=meas if not meas.empty else None,
                        title=f"Bounds and measured plasticity: {model} on {ds}")
        paths.append(out_dir / f"{name}.png")
    return paths


def accuracy_figure(gains: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Per dataset: best-lr test accuracy (mean +- std over seeds) of each group; the probe as a dashed line.

    Error bars are drawn only for a dataset where some group has a std (two or more seeds).
    """
    if gains.empty:
        return None
    datasets = list(dict.fromkeys(gains["dataset"]))
    fig, axes = _grid(len(datasets), ncols=3, size=(4.6, 3.3))
    for ax, ds in zip(axes, datasets, strict=True):
        t = gains[gains["dataset"] == ds].set_index("group")
        groups = ordered_groups(list(t.index))
        x = np.arange(len(groups))
        std = t.loc[groups, "acc_std"]
        ax.bar(x, 100 * t.loc[groups, "acc_mean"], color=[color(g) for g in groups],
               yerr=100 * std.fillna(0) if std.notna().any() else None, capsize=3)
        probe = t["probe_acc"].dropna()
        if len(probe):
            ax.axhline(100 * probe.iloc[0], ls="--", color="black", lw=1, label="linear probe")
            ax.legend(fontsize=8, loc="best", framealpha=0.8)
        ax.set_xticks(x, [label(g) for g in groups], rotation=30)
        ax.set(title=ds, ylabel="test accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def gain_figure(gains: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Heat map of the relative gain over the probe (%), datasets x groups."""
    g = gains.dropna(subset=["gain"])
    if g.empty:
        return None
    wide = g.pivot_table(index="dataset", columns="group", values="gain", sort=False)
    wide = wide[ordered_groups(list(wide.columns))].reindex(list(dict.fromkeys(g["dataset"])))
    v = 100 * wide.to_numpy()
    fig, ax = plt.subplots(figsize=(1.1 * wide.shape[1] + 2.5, 0.5 * wide.shape[0] + 1.6))
    lim = np.nanmax(np.abs(v)) if np.isfinite(v).any() else 1.0
    im = ax.imshow(v, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for (i, j), val in np.ndenumerate(v):
        if np.isfinite(val):
            ax.text(j, i, f"{val:+.1f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(wide.shape[1]), [label(c) for c in wide.columns])
    ax.set_yticks(range(wide.shape[0]), list(wide.index))
    fig.colorbar(im, ax=ax, label="(acc - probe) / probe (%)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def lr_figure(means: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Per dataset: test accuracy against the learning rate, one line per group, averaged over the seeds every
    lr of the group has run (``acc_shared``: the pilot seed in a staged design, so that the chosen lr's extra
    seeds do not move its point); ``None`` when no group has more than one lr (nothing to show)."""
    if means.empty or means.groupby(["dataset", "group"])["lr"].nunique().max() < 2:
        return None
    datasets = list(dict.fromkeys(means["dataset"]))
    fig, axes = _grid(len(datasets), ncols=3, size=(4.4, 3.2))
    for ax, ds in zip(axes, datasets, strict=True):
        t = means[means["dataset"] == ds]
        for g in ordered_groups(list(t["group"].unique())):
            c = t[t["group"] == g].sort_values("lr")
            ax.plot(c["lr"], 100 * c["acc_shared" if "acc_shared" in c else "acc_mean"], "o-", ms=3, color=color(g),
                    label=label(g))
        ax.set_xscale("log")
        ax.set(title=ds, xlabel="learning rate", ylabel="test accuracy (%)")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def curves_figure(curves: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Two rows (pre-clipping gradient norm of the trained group; validation loss) x datasets, at each
    group's best lr, averaged over seeds. ``curves``: dataset, group, kind (grad/val_loss), step, value."""
    if curves.empty:
        return None
    datasets = list(dict.fromkeys(curves["dataset"]))
    n = len(datasets)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6.4), squeeze=False)
    for j, ds in enumerate(datasets):
        for i, (kind, ylab) in enumerate((("grad", "gradient norm (pre-clip)"), ("val_loss", "validation loss"))):
            ax = axes[i][j]
            t = curves[(curves["dataset"] == ds) & (curves["kind"] == kind)]
            for g in ordered_groups(list(t["group"].unique())):
                c = t[t["group"] == g].groupby("step")["value"].mean()
                ax.plot(c.index, c.to_numpy(), "-" if kind == "grad" else "o-", ms=3, lw=1.2, color=color(g),
                        label=label(g))
            if kind == "grad":
                ax.set_yscale("log")
                ax.set_title(ds)
            ax.set(ylabel=ylab)
            step_axis(ax)
            ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def plasticity_gain_figure(comp: pd.DataFrame, gains: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Scatter of component plasticity (mean over layers) against the relative gain of finetuning it alone."""
    g = gains[gains["group"].isin(COMPONENTS)].dropna(subset=["gain"])
    m = g.merge(comp.rename(columns={"component": "group"}), on=["model", "dataset", "group"])
    if m.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    markers = "osD^v<>PX*"
    for k, ds in enumerate(dict.fromkeys(m["dataset"])):
        t = m[m["dataset"] == ds]
        ax.scatter(t["plasticity"], 100 * t["gain"], c=[color(x) for x in t["group"]], marker=markers[k % 10],
                   s=45, edgecolors="black", linewidths=0.5)
        ax.scatter([], [], marker=markers[k % 10], c="white", edgecolors="black", label=ds)
    for comp_name in COMPONENTS:
        ax.scatter([], [], c=color(comp_name), label=DISPLAY[comp_name])
    if (m["plasticity"] > 0).all() and m["plasticity"].max() / m["plasticity"].min() > 30:
        ax.set_xscale("log")
    ax.set(xlabel="plasticity (mean over layers)", ylabel="relative gain over the probe (%)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return save(fig, path)
