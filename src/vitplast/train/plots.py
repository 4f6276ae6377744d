"""``curves.png`` of a run: loss, validation accuracy, learning rate and gradient norms over steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitplast.components import COLORS, DISPLAY


def plot_curves(rows: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Three panels: train/val loss, val accuracy (with lr on a twin axis), pre-clipping gradient norms
    (total and per group, log scale). Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if r.get("kind") == "train" and not r.get("diverged")]
    evals = [r for r in rows if r.get("kind") == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    if train:
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=0.8, color="#7f7f7f", label="train")
    if evals:
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", color="#000000", label="val")
    ax.set(xlabel="step", ylabel="cross-entropy", title="loss")
    ax.legend()
    ax = axes[1]
    if evals:
        ax.plot([r["step"] for r in evals], [100 * r["val_acc"] for r in evals], "o-", color="#d62728")
    ax.set(xlabel="step", ylabel="val accuracy (%)", title="validation accuracy")
    if train:
        twin = ax.twinx()
        twin.plot([r["step"] for r in train], [r["lr"] for r in train], lw=0.8, color="#1f77b4", alpha=0.5)
        twin.set_ylabel("learning rate", color="#1f77b4")
    ax = axes[2]
    if train:
        steps = [r["step"] for r in train]
        ax.plot(steps, [r["grad_norm"] for r in train], lw=1.0, color="#000000", label="total")
        for g in train[0].get("grad_norm_groups", {}):
            ax.plot(steps, [r["grad_norm_groups"][g] for r in train], lw=0.8, color=COLORS.get(g, None),
                    label=DISPLAY.get(g, g))
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set(xlabel="step", ylabel="L2 norm before clipping", title="gradient norm")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG via a temporary file and ``os.replace``."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
