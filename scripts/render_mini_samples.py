"""Render a grid of sample images of every offline mini-suite set to ``docs/mini-suite.png``.

Usage: ``python scripts/render_mini_samples.py [--out docs/mini-suite.png] [--per-row 12]``.
One row per set (two for ``mini:source``, one per corruption for ``mini:source-c`` at severity 5),
test-split images, labelled with the spec.

``--targets`` draws the graded targets of the suite (``vitplast.suites.mini.GRADED_TARGETS``) instead, to
``docs/targets.png`` by default: per target a row of train images above a row of test images, so that the
held-out source (fonts, shapes) shows.
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
from vitplast.suites.mini import GRADED_TARGETS

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
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--per-row", type=int, default=12)
    parser.add_argument("--targets", action="store_true", help="draw the graded targets to docs/targets.png")
    args = parser.parse_args()
    n = args.per_row
    rows = [(t, s, 0) for t in GRADED_TARGETS for s in ("train", "test")] if args.targets else [
        (spec, "test", offset) for spec, offset in ROWS]
    out = args.out or Path("docs/targets.png" if args.targets else "docs/mini-suite.png")
    fig, axes = plt.subplots(len(rows), 1, figsize=(n * 0.62 + 2.2, len(rows) * 0.78))
    for ax, (spec, split, offset) in zip(axes, rows, strict=True):
        data = load_data(spec)
        part = data.split(split)  # type: ignore[arg-type]
        imgs = [part[i][0].permute(1, 2, 0).numpy() for i in range(offset * n, (offset + 1) * n)]
        labels = [data.classes[part[i][1]] for i in range(offset * n, (offset + 1) * n)]
        strip = np.concatenate([np.pad(im, ((1, 1), (1, 1), (0, 0)), constant_values=255) for im in imgs], 1)
        ax.imshow(strip, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        label = (f"{spec} ({split})" if args.targets else spec) if offset == 0 else ""
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
        if args.targets or (spec in ("mini:source", "mini:novel") and offset == 0):
            ax.set_title(" | ".join(labels[:8 if args.targets else 4]) + " | ...", fontsize=6, loc="left")
    fig.subplots_adjust(left=0.2 if args.targets else 0.17, right=0.99, top=0.98, bottom=0.01, hspace=0.45)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
