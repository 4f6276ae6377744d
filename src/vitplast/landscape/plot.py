"""Figure of :class:`~vitplast.landscape.run.LandscapeResult`: one contour panel per group, shared colour scale."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitplast.components import DISPLAY

if TYPE_CHECKING:
    from vitplast.landscape.run import LandscapeResult


def shared_levels(result: LandscapeResult, n: int = 21) -> np.ndarray:
    """Contour levels common to every panel: from the lowest to the highest loss of all grids (log-spaced when
    the range spans more than a factor 10)."""
    lo = min(float(g.loss.min()) for g in result.groups)
    hi = max(float(g.loss.max()) for g in result.groups)
    if hi <= lo:
        hi = lo + 1e-6
    if lo > 0 and hi / lo > 10:
        return np.geomspace(lo, hi, n)
    return np.linspace(lo, hi, n)


def plot_landscape(result: LandscapeResult, path: Path) -> None:
    """Contours of each group's loss on its two PCA directions with the projected SGD trajectory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm
    from matplotlib.ticker import MaxNLocator

    groups = result.groups
    levels = shared_levels(result)
    norm = BoundaryNorm(levels, ncolors=256)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.4 * len(groups) + 0.8, 4.2), dpi=130, squeeze=False)
    cs = None
    for ax, g in zip(axes[0], groups, strict=True):
        a, b = np.meshgrid(g.alphas, g.betas, indexing="ij")
        cs = ax.contourf(a, b, g.loss, levels=levels, norm=norm, cmap="viridis", extend="neither")
        ax.contour(a, b, g.loss, levels=levels, colors="white", linewidths=0.3, alpha=0.5)
        ax.plot(g.coords[:, 0], g.coords[:, 1], "-o", color="#d62728", ms=2.5, lw=1.2, label="SGD trajectory")
        ax.plot(g.coords[0, 0], g.coords[0, 1], "s", color="white", mec="black", ms=6, label="start")
        ax.plot(0, 0, "*", color="white", mec="black", ms=11, label="final point")
        for axis in (ax.xaxis, ax.yaxis):  # few, short tick labels: the panels' scales differ and labels overlapped
            axis.set_major_locator(MaxNLocator(nbins=5))
        ax.tick_params(labelsize=7)
        ax.set_xlabel(f"PC1 ({100 * g.explained[0]:.1f} % of offsets)")
        ax.set_ylabel(f"PC2 ({100 * g.explained[1]:.1f} %)")
        ax.set_title(
            f"{DISPLAY.get(g.group, g.group)} ({g.n_params:,} params): loss "
            f"{g.trajectory_loss[0]:.3g} -> {g.trajectory_loss[-1]:.3g}",
            fontsize=9,
        )
    assert cs is not None
    axes[0][0].legend(fontsize=7, loc="lower right", framealpha=0.8)
    fig.colorbar(cs, ax=axes[0].tolist(), label="train loss (fixed evaluation set)", shrink=0.9)
    cfg = result.config
    fig.suptitle(
        f"{cfg.model} on {cfg.data}: {cfg.steps} SGD steps (lr {cfg.lr:g}, batch {cfg.batch_size}), "
        f"{cfg.grid}x{cfg.grid} grid, span {cfg.span:g}",
        fontsize=9,
    )
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
