"""Render a grid of sample images of every offline mini-suite set to ``docs/mini-suite.png``.

Usage: ``python scripts/render_mini_samples.py [--out docs/mini-suite.png] [--per-row 12]``.
One row per set (two for ``mini:source``, one per corruption for ``mini:source-c`` at severity 5),
test-split images, labelled with the spec.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from vitplast.data import load_data
from vitplast.data.mini.corruptions import CORRUPTIONS

ROWS = [
    ("mini:source", 0),
    ("mini:source", 1),
    ("mini:novel", 0),
    ("mini:digits", 0),
    ("mini:textures", 0),
    ("mini:faces", 0),
    *[(f"mini:source-c:{name}:5", 0) for name in CORRUPTIONS],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/mini-suite.png"))
    parser.add_argument("--per-row", type=int, default=12)
    args = parser.parse_args()
    n = args.per_row
    fig, axes = plt.subplots(len(ROWS), 1, figsize=(n * 0.62 + 2.2, len(ROWS) * 0.78))
    for ax, (spec, offset) in zip(axes, ROWS, strict=True):
        data = load_data(spec)
        test = data.test
        imgs = [test[i][0].permute(1, 2, 0).numpy() for i in range(offset * n, (offset + 1) * n)]
        labels = [data.classes[test[i][1]] for i in range(offset * n, (offset + 1) * n)]
        strip = np.concatenate([np.pad(im, ((1, 1), (1, 1), (0, 0)), constant_values=255) for im in imgs], 1)
        ax.imshow(strip, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        label = spec if offset == 0 else ""
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
        if spec in ("mini:source", "mini:novel") and offset == 0:
            ax.set_title(" | ".join(labels[:4]) + " | ...", fontsize=6, loc="left")
    fig.subplots_adjust(left=0.17, right=0.99, top=0.98, bottom=0.01, hspace=0.45)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
