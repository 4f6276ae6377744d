"""Presentation tables of the report (pivots with "mean +- std" cells) and their Markdown form."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from vitplast.report.figures import label, ordered_groups


def fmt(x: Any, digits: int = 3) -> str:
    """Numbers as short strings; NaN / None as an empty cell."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "" if math.isnan(x) else f"{x:.{digits + 1}g}"
    return str(x)


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table (no dependency on ``tabulate``)."""
    if index:
        df = df.reset_index()
    if df.empty:
        return "_(no rows)_\n"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _pivot(df: pd.DataFrame, cell: pd.Series) -> pd.DataFrame:
    t = df.assign(cell=cell)
    wide = t.pivot_table(index="dataset", columns="group", values="cell", aggfunc="first", sort=False)
    wide = wide[ordered_groups(list(wide.columns))]
    wide.columns = [label(c) for c in wide.columns]
    return wide.reindex(list(dict.fromkeys(df["dataset"]))).fillna("")


def accuracy_pivot(gains: pd.DataFrame) -> pd.DataFrame:
    """Datasets x groups: ``mean +- std`` test accuracy (%) at the best lr, plus the probe column."""
    if gains.empty:
        return pd.DataFrame()

    def cell(r: pd.Series) -> str:
        if pd.isna(r["acc_mean"]):
            return "n/a"
        s = f"{100 * r['acc_mean']:.2f}"
        return s + (f" ± {100 * r['acc_std']:.2f}" if pd.notna(r["acc_std"]) else "")

    wide = _pivot(gains, gains.apply(cell, axis=1))
    probe = gains.groupby("dataset", sort=False)["probe_acc"].first()
    wide.insert(0, "Linear probe", [f"{100 * probe[d]:.2f}" if pd.notna(probe.get(d)) else "" for d in wide.index])
    return wide


def gain_pivot(gains: pd.DataFrame) -> pd.DataFrame:
    """Datasets x groups: relative gain over the probe (%)."""
    if gains.empty:
        return pd.DataFrame()
    return _pivot(gains, gains["gain"].map(lambda g: "" if pd.isna(g) else f"{100 * g:+.2f}"))


PILOT_MARK, EDGE_MARK = " (pilot seed)", " (edge)"


def sensitivity_pivot(best: pd.DataFrame) -> pd.DataFrame:
    """Datasets x groups: lr sensitivity in accuracy points (max - min over lrs of the accuracy on the seeds
    every lr has run); marked ``(pilot seed)`` where that is fewer seeds than the best lr has (a staged design)."""
    if best.empty:
        return pd.DataFrame()

    def cell(r: pd.Series) -> str:
        if pd.isna(r["lr_sensitivity"]):
            return ""
        return f"{100 * r['lr_sensitivity']:.2f}" + (PILOT_MARK if r["lr_seeds"] < r["n_seeds"] else "")

    return _pivot(best, best.apply(cell, axis=1))


def best_lr_pivot(best: pd.DataFrame) -> pd.DataFrame:
    """Datasets x groups: the best lr, marked ``(edge)`` when it is the smallest or largest lr tried."""
    if best.empty:
        return pd.DataFrame()
    return _pivot(best, best.apply(lambda r: "" if pd.isna(r["best_lr"]) else
                                   f"{r['best_lr']:g}" + (EDGE_MARK if r["lr_on_edge"] else ""), axis=1))


def staged(best: pd.DataFrame) -> bool:
    """Whether some cell compared its lrs on fewer seeds than its best lr has (a staged design)."""
    return bool(not best.empty and (best["lr_seeds"] < best["n_seeds"]).any())


def edge_text(best: pd.DataFrame, means: pd.DataFrame) -> str:
    """One sentence listing the cells whose best lr is the smallest or largest lr tried (``lr_on_edge``)."""
    if best.empty or not best["lr_on_edge"].any():
        return "No best lr lies on the edge of its grid."
    many = best[["model", "optimizer"]].drop_duplicates().shape[0] > 1
    cells = []
    for _, r in best[best["lr_on_edge"].astype(bool)].iterrows():
        m = means[(means["model"] == r["model"]) & (means["optimizer"] == r["optimizer"])
                  & (means["dataset"] == r["dataset"]) & (means["group"] == r["group"])]
        lrs = sorted(m["lr"])
        side = "smallest" if r["best_lr"] == lrs[0] else "largest"
        scope = f"{r['model']}, {r['optimizer']}: " if many else ""
        cells.append(f"{scope}{r['dataset']} {label(str(r['group']))} {r['best_lr']:g} "
                     f"({side} of {', '.join(f'{x:g}' for x in lrs)})")
    return (f"Best lr on the edge of the grid in {len(cells)} of {len(best)} cells (the optimum may lie beyond): "
            + "; ".join(cells) + ".")
