"""What :func:`~vitplast.landscape.run.compute_landscape` returns, and how it is saved and drawn.

:class:`LandscapeResult` holds one :class:`GroupLandscape` per group; its tables and
:meth:`~LandscapeResult.to_dict` are the files :meth:`LandscapeResult.save` writes, and :func:`plot_landscape`
draws its figure: one contour panel per group, shared colour scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitplast.components import DISPLAY
from vitplast.io import output_dir, versions, write_json_atomic, write_text_atomic
from vitplast.landscape.config import LandscapeConfig


@dataclass
class GroupLandscape:
    """One group's landscape: ``loss[i, j]`` at ``theta_T + alphas[i] u + betas[j] v``; the trajectory's
    coordinates ``coords[t] = ((theta_t - theta_T) . u, (theta_t - theta_T) . v)`` and its loss at ``theta_t``."""

    group: str
    n_params: int
    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    coords: np.ndarray
    trajectory_loss: np.ndarray
    explained: tuple[float, float]
    distance: float
    seconds: float

    @property
    def center_loss(self) -> float:
        """The grid's centre value: the loss at the final point."""
        return float(self.loss[len(self.alphas) // 2, len(self.betas) // 2])

    def summary(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "n_params": self.n_params,
            "explained_variance": list(self.explained),
            "explained_variance_total": sum(self.explained),
            "start_loss": float(self.trajectory_loss[0]),
            "final_loss": float(self.trajectory_loss[-1]),
            "grid_min": float(self.loss.min()),
            "grid_max": float(self.loss.max()),
            "distance_travelled": self.distance,
            "alpha_range": [float(self.alphas[0]), float(self.alphas[-1])],
            "beta_range": [float(self.betas[0]), float(self.betas[-1])],
            "seconds": round(self.seconds, 2),
        }


@dataclass
class LandscapeResult:
    """Landscapes of every group of one run; ``info`` describes the head, the evaluation set and the device."""

    config: LandscapeConfig
    groups: list[GroupLandscape]
    info: dict[str, Any] = field(default_factory=dict)

    def landscape_table(self) -> pd.DataFrame:
        """Columns ``group, alpha, beta, loss`` (one row per grid point)."""
        frames = []
        for g in self.groups:
            a, b = np.meshgrid(g.alphas, g.betas, indexing="ij")
            frames.append(pd.DataFrame({"group": g.group, "alpha": a.ravel(), "beta": b.ravel(), "loss": g.loss.ravel()}))
        return pd.concat(frames, ignore_index=True)

    def trajectory_table(self) -> pd.DataFrame:
        """Columns ``group, step, alpha, beta, loss`` (``alpha``/``beta``: the point's projections)."""
        frames = [
            pd.DataFrame({"group": g.group, "step": np.arange(len(g.coords)), "alpha": g.coords[:, 0],
                          "beta": g.coords[:, 1], "loss": g.trajectory_loss})
            for g in self.groups
        ]
        return pd.concat(frames, ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        """The content of ``landscape.json``."""
        return {
            "config": asdict(self.config),
            "groups": [g.summary() for g in self.groups],
            **self.info,
            "versions": versions(),
        }

    def save(self, out: Path) -> None:
        """Write ``landscape.csv``, ``trajectory.csv``, ``landscape.json`` and ``landscape.png`` (drawn by
        :func:`plot_landscape`) into ``out``, all or nothing."""
        with output_dir(out) as stage:
            write_text_atomic(stage / "landscape.csv", self.landscape_table().to_csv(index=False))
            write_text_atomic(stage / "trajectory.csv", self.trajectory_table().to_csv(index=False))
            write_json_atomic(stage / "landscape.json", self.to_dict())
            plot_landscape(self, stage / "landscape.png")


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


def title(group: str) -> str:
    """A panel's name as a figure writes it: ``"mha"`` -> ``"MHA"``, ``"mha@8-11+ln2"`` -> ``"MHA@8-11 + LN2"``."""
    names = (item.partition("@") for item in group.split("+"))
    return " + ".join(f"{DISPLAY.get(name, name)}{at}{blocks}" for name, at, blocks in names)


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
            f"{title(g.group)}{chr(10) if '@' in g.group else ' '}({g.n_params:,} params): loss "  # unit sets: 2 lines
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
        **({"y": 1.03} if any("@" in g.group for g in groups) else {}),  # above two-line panel titles
    )
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
