"""Selector benchmark of a finished sweep (docs/selectors.md, "Benchmark").

Inputs: ``gains`` (columns ``model, optimizer, dataset, group, gain``: the relative gain over the probe of
finetuning one group alone) and ``scores`` (``model, dataset, selector, group, score``). Per target (a
``(model, optimizer, dataset)``) and selector, over the selectable groups with both a gain and a score:

* ``rho``: Spearman correlation between score and gain (NaN with < 3 groups or a constant side);
* ``hit`` and ``regret`` in expectation over the selector's ties: when several groups share the top score the
  selector picks one of them uniformly at random, so ``hit`` is the fraction of the tied top groups that have
  the largest gain and ``regret`` = largest gain - mean gain of the tied top groups (>= 0; 0 on a sure hit).

Per selector: the means over targets, each with a percentile bootstrap interval (targets resampled with
replacement, ``n_boot`` draws, fixed seed) when there are at least :data:`MIN_BOOT_TARGETS` targets. With ``n``
targets the bootstrap has only ``C(2n - 1, n)`` distinct resamples (10 for 3 targets): below that number of
targets no interval is given and the text says so. ``random (expected)`` is the exact expectation of a uniformly
random ranking on each target: rho 0, hit = (#groups at the max gain) / (#groups), regret = max - mean gain.
The winner is the selector with the lowest mean regret (then the higher mean rho); its margin over the
runner-up comes with a paired bootstrap interval of the difference in mean regret.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from vitplast.components import SELECTABLE
from vitplast.errors import VitplastError
from vitplast.progress import Progress, phase
from vitplast.reading import SCORES_TABLE, read_table

RANDOM = "random (expected)"
#: fewest targets for a bootstrap interval over targets (5 targets: 126 distinct resamples)
MIN_BOOT_TARGETS = 5
TARGET = ["model", "optimizer", "dataset"]


@dataclass
class SelectorBenchmark:
    """``per_target``: one row per (target, selector); ``summary``: one row per selector; ``text``: the verdict."""

    per_target: pd.DataFrame
    summary: pd.DataFrame
    text: str


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(sps.spearmanr(a, b).statistic)


def per_target(scores: pd.DataFrame, gains: pd.DataFrame) -> pd.DataFrame:
    """``rho``, ``hit``, ``regret``, ``top`` (chosen group), ``best`` per target and selector (module docstring)."""
    g = gains[gains["group"].isin(SELECTABLE)][[*TARGET, "group", "gain"]].dropna()
    rows = []
    for key, t in g.groupby(TARGET, sort=True):
        model, opt, ds = key
        gain = t.set_index("group")["gain"]
        s_here = scores[(scores["model"] == model) & (scores["dataset"] == ds)].dropna(subset=["score"])
        for sel, s in s_here.groupby("selector", sort=False):
            sc = s.set_index("group")["score"]
            common = [grp for grp in SELECTABLE if grp in sc.index and grp in gain.index]
            if not common:
                continue
            x, y = sc[common].to_numpy(float), gain[common].to_numpy(float)
            tied = x == x.max()  # the selector picks one of its tied top groups at random
            rows.append({"model": model, "optimizer": opt, "dataset": ds, "selector": sel, "n_groups": len(common),
                         "rho": _rho(x, y), "hit": float(np.mean(y[tied] >= y.max())),
                         "regret": float(y.max() - y[tied].mean()),
                         "top": "/".join(g for g, t in zip(common, tied, strict=True) if t),
                         "best": common[int(np.argmax(y))]})
        y = gain.to_numpy(float)
        rows.append({"model": model, "optimizer": opt, "dataset": ds, "selector": RANDOM, "n_groups": len(y),
                     "rho": 0.0, "hit": float(np.sum(y >= y.max()) / len(y)), "regret": float(y.max() - y.mean()),
                     "top": "", "best": str(gain.idxmax())})
    return pd.DataFrame(rows, columns=[*TARGET, "selector", "n_groups", "rho", "hit", "regret", "top", "best"])


def distinct_resamples(n: int) -> int:
    """Distinct bootstrap resamples (multisets) of ``n`` targets: ``C(2n - 1, n)``."""
    return math.comb(2 * n - 1, n) if n > 0 else 0


def _boot(values: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
    if len(values) < MIN_BOOT_TARGETS:
        return math.nan, math.nan  # too few distinct resamples for a percentile interval
    means = np.nanmean(values[idx], axis=1) if len(values) else np.array([math.nan])
    means = means[~np.isnan(means)]
    if not len(means):
        return math.nan, math.nan
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarize(pt: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per selector: ``targets``, mean ``rho``/``hit``/``regret`` and their 95 % bootstrap intervals."""
    rows = []
    rng = np.random.default_rng(seed)
    for sel, t in pt.groupby("selector", sort=False):
        n = len(t)
        idx = rng.integers(0, n, size=(n_boot, n))
        row: dict[str, object] = {"selector": sel, "targets": n}
        for m in ("rho", "hit", "regret"):
            v = t[m].to_numpy(float)
            row[m] = float(np.nanmean(v)) if np.any(~np.isnan(v)) else math.nan
            row[f"{m}_lo"], row[f"{m}_hi"] = _boot(v, idx)
        rows.append(row)
    cols = ["selector", "targets"] + [f"{m}{s}" for m in ("rho", "hit", "regret") for s in ("", "_lo", "_hi")]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["regret", "rho"], ascending=[True, False], na_position="last").reset_index(drop=True)


def verdict(pt: pd.DataFrame, summary: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> str:
    """One paragraph: the winner (lowest mean regret), its margin over the runner-up with a paired bootstrap
    interval, and where the baselines stand."""
    s = summary.dropna(subset=["regret"])
    if len(s) < 2:
        return "Too few selectors with results on the same targets to compare them."
    win, run = s.iloc[0], s.iloc[1]
    a = pt[pt["selector"] == win["selector"]].set_index(TARGET)["regret"]
    b = pt[pt["selector"] == run["selector"]].set_index(TARGET)["regret"]
    common = a.index.intersection(b.index)
    d = (b[common] - a[common]).to_numpy(float)
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    lo, hi = _boot(d, idx)
    pct = 100.0
    ci = lambda a, b: "" if math.isnan(a) else f"95 % CI {pct * a:.2f} to {pct * b:.2f}"  # noqa: E731
    text = (f"Over {int(win['targets'])} targets, {win['selector']} chose best: mean regret {pct * win['regret']:.2f} "
            f"points of relative gain ({ci(win['regret_lo'], win['regret_hi']) or 'no interval'}), "
            f"top-1 hit rate {pct * win['hit']:.0f} %, mean Spearman {win['rho']:.2f}. The runner-up, {run['selector']}, "
            f"lost {pct * float(np.mean(d)):.2f} points more per target (")
    if math.isnan(lo):
        text += (f"no interval: a bootstrap over {len(d)} targets has only {distinct_resamples(len(d))} distinct "
                 f"resamples, too few below {MIN_BOOT_TARGETS} targets; these data do not separate the two).")
    else:
        text += f"paired bootstrap {ci(lo, hi)}"
        text += "; the interval includes 0, so the two are not separated)." if lo <= 0 <= hi else ")."
    for base in ("params", RANDOM):
        r = s[s["selector"] == base]
        if len(r) and base != win["selector"]:
            text += f" Baseline {base}: regret {pct * float(r['regret'].iloc[0]):.2f}, hit {pct * float(r['hit'].iloc[0]):.0f} %."
    return text


def benchmark(scores: pd.DataFrame, gains: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> SelectorBenchmark:
    """:func:`per_target`, :func:`summarize` and :func:`verdict` in one result."""
    pt = per_target(scores, gains)
    summary = summarize(pt, n_boot, seed)
    return SelectorBenchmark(pt, summary, verdict(pt, summary, n_boot, seed))


def plasticity_scores(comp: pd.DataFrame) -> pd.DataFrame:
    """The sweep's own plasticity measurement as the ``plasticity`` selector's scores."""
    out = comp.rename(columns={"component": "group", "plasticity": "score"})[["model", "dataset", "group", "score"]]
    return out.assign(selector="plasticity")


SCORES_FILE = Path("selectors") / "scores.csv"


def sweep_scores(root: Path, comp: pd.DataFrame) -> pd.DataFrame:
    """Scores for the benchmark: the sweep's plasticity plus ``root/selectors/scores.csv`` when it exists
    (written by :func:`score_sweep`)."""
    parts = [plasticity_scores(comp)]
    f = Path(root) / SCORES_FILE
    if f.is_file():
        extra = read_table(f, *SCORES_TABLE)[list(SCORES_TABLE[0])]
        unknown = sorted(set(extra["group"].astype(str)) - set(SELECTABLE))
        if unknown:
            raise VitplastError(f"{f}: unknown group {unknown[0]!r} (the groups are {', '.join(SELECTABLE)})")
        parts.append(extra[extra["selector"] != "plasticity"])
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class ScoreTarget:
    """One (model, target) cell of a sweep to score: labels as in the sweep's tables, specs to load."""

    model: str
    model_spec: str
    dataset: str
    data_spec: str
    random_weights: bool = False


def plan_targets(root: Path) -> tuple[list[ScoreTarget], str]:
    """The (model, target) cells of the sweep in ``root`` (from its finetuning runs) and the source set of its
    plasticity analyses (``mini:source`` when it has none)."""
    from vitplast.sweep.kinds import ANALYSIS, FINETUNE
    from vitplast.sweep.plan import Plan

    plan = Plan.load(root)
    cells: dict[tuple[str, str], ScoreTarget] = {}
    for t in plan.of_kind(FINETUNE):
        c = t.config
        cells.setdefault((t.model, t.dataset), ScoreTarget(t.model, c["model"], t.dataset, c["data"],
                                                           bool(c.get("random_weights", False))))
    sources = [t.config["source"] for t in plan.of_kind(ANALYSIS)]
    return list(cells.values()), (sources[0] if sources else "mini:source")


def score_sweep(root: Path, targets: list[ScoreTarget], images: int = 32, seed: int = 0,
                source: str = "mini:source", progress: Progress | None = None) -> Path:
    """Run every selector but ``plasticity`` (the sweep measured it) on each target, with ``images`` training
    images (``source``: the source set of the in-situ plasticity pairs), and write ``root/selectors/scores.csv``
    (columns ``model, dataset, selector, group, score``; labels as in the sweep's tables)."""
    from vitplast.io import write_text_atomic
    from vitplast.models import load_model
    from vitplast.selectors import DEFAULT_SELECTORS, get_selector, load_selector_data

    names = [n for n in DEFAULT_SELECTORS if n != "plasticity"]
    advance = phase(progress, "selectors", len(targets) * len(names))
    rows = []
    models: dict[tuple[str, bool], Any] = {}
    for t in targets:
        key = (t.model_spec, t.random_weights)
        if key not in models:
            models[key] = load_model(t.model_spec, random_weights=t.random_weights, seed=seed)
        vit = models[key]
        data = load_selector_data(vit, t.data_spec, images, seed, source=source)
        for name in names:
            s = get_selector(name)(vit, data)
            rows += [{"model": t.model, "dataset": t.dataset, "selector": name, "group": g, "score": v}
                     for g, v in s.groups.items()]
            advance(1)
    path = Path(root) / SCORES_FILE
    write_text_atomic(path, pd.DataFrame(rows).to_csv(index=False))
    return path


def score_plan(root: Path, images: int = 32, seed: int = 0, progress: Progress | None = None) -> Path:
    """:func:`score_sweep` on every (model, target) cell of the sweep in ``root`` (:func:`plan_targets`)."""
    targets, source = plan_targets(root)
    return score_sweep(root, targets, images, seed, source, progress)


def figure(bench: SelectorBenchmark, path: Path) -> Path | None:
    """Mean Spearman and mean regret per selector with their 95 % bootstrap intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = bench.summary
    if s.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.35 * len(s) + 1.4), dpi=120, sharey=True)
    y = np.arange(len(s))
    for ax, m, label, scale in ((axes[0], "rho", "Spearman(score, gain)", 1.0),
                                (axes[1], "regret", "regret (points of relative gain)", 100.0)):
        v, lo, hi = (s[c].to_numpy(float) * scale for c in (m, f"{m}_lo", f"{m}_hi"))
        ax.errorbar(v, y, xerr=[np.nan_to_num(v - lo), np.nan_to_num(hi - v)], fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_yticks(y, s["selector"], fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle("Selector benchmark: mean over targets, 95 % bootstrap intervals", fontsize=9)
    fig.tight_layout()
    from vitplast.report.figures import save

    return save(fig, path)


NOTE = ("Scores: plasticity from this sweep's analyses; the other selectors from selectors/scores.csv when present "
        "(vitplast.report.selectors.score_sweep writes it). Gains: relative gain over the probe at the best lr. "
        "Regret in points of relative gain; hit and regret in expectation over a selector's tied top groups; intervals: 95 % "
        f"percentile bootstrap over targets, given from {MIN_BOOT_TARGETS} targets on (fewer have too few distinct "
        "resamples).")


def write(bench: SelectorBenchmark, fig_dir: Path, tab_dir: Path, draw: bool = True) -> list[tuple[Path, str]]:
    """Tables ``selector_benchmark{,_per_target}.{csv,md}`` and (``draw``) the figure; returns ``[(figure, caption)]``."""
    from vitplast.io import write_text_atomic
    from vitplast.report.tables import to_markdown

    for name, df in (("selector_benchmark", bench.summary), ("selector_benchmark_per_target", bench.per_target)):
        write_text_atomic(tab_dir / f"{name}.csv", df.to_csv(index=False))
        write_text_atomic(tab_dir / f"{name}.md", to_markdown(df))
    if not draw:
        return []
    fig_dir.mkdir(parents=True, exist_ok=True)
    p = figure(bench, fig_dir / "selector_benchmark.png")
    return [] if p is None else [(p, "Selector benchmark: mean Spearman with the measured gains and mean regret "
                                     "per selector, 95 % bootstrap intervals over targets.")]


def add_section(page: object, bench: SelectorBenchmark) -> None:
    """Append the benchmark to a report page (:class:`vitplast.report.html.Page`)."""
    from vitplast.report import html as H

    page.add("Selector benchmark", H.paragraph(bench.text), H.paragraph(NOTE, "note"),  # type: ignore[attr-defined]
             H.table(bench.summary), H.details("Per target", H.table(bench.per_target)))


def markdown(bench: SelectorBenchmark) -> str:
    from vitplast.report.tables import to_markdown

    return "\n".join(["\n## Selector benchmark\n", bench.text + "\n", NOTE + "\n", to_markdown(bench.summary)])
