"""Selector benchmark from a sweep's result tables (results.csv, probes.csv, plasticity.csv in one directory).

    python scripts/selector_benchmark.py docs/mini-reproduction/sweep --out docs/selector-benchmark-mini

Scores every selector on the sweep's model and target sets (the plasticity scores are the sweep's own
measurement), then writes OUT/tables/selector_benchmark*.{csv,md}, OUT/figures/selector_benchmark.png,
OUT/scores.csv and OUT/README.md (docs/selectors.md defines the metrics).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from vitplast.report import selectors as SB
from vitplast.report import stats as S
from vitplast.report.tables import to_markdown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tables", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", type=int, default=32)
    a = ap.parse_args()
    results = pd.read_csv(a.tables / "results.csv")
    runs = S.runs_frame(results)
    gains = S.relative_gain(S.best_lr(runs), S.probes_frame(pd.read_csv(a.tables / "probes.csv")))
    comp = S.component_plasticity(pd.read_csv(a.tables / "plasticity.csv"))
    models = dict(zip(results["model_label"], results["model"], strict=False))
    specs = dict(zip(results["dataset"], results["data"], strict=False))
    SB.score_sweep(a.out, models, sorted(set(specs.values())), images=a.images)
    scores = pd.read_csv(a.out / SB.SCORES_FILE)
    scores["dataset"] = scores["dataset"].map({v: k for k, v in specs.items()})
    scores.to_csv(a.out / SB.SCORES_FILE, index=False)
    bench = SB.benchmark(SB.sweep_scores(a.out, comp), gains)
    figs = SB.write(bench, a.out / "figures", a.out / "tables")
    text = [f"# Selector benchmark on {a.tables}\n", bench.text + "\n", SB.NOTE + "\n",
            f"Selector scores from {a.images} training images per target (seed 0).\n",
            to_markdown(bench.summary), "\n## Per target\n", to_markdown(bench.per_target)]
    text += [f"\n![{cap}](figures/{p.name})\n" for p, cap in figs]
    (a.out / "README.md").write_text("\n".join(text))
    print(bench.text)


if __name__ == "__main__":
    main()
