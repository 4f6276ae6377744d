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


def sensitivity_pivot(best: pd.DataFrame) -> pd.DataFrame:
    """Datasets x groups: lr sensitivity in accuracy points (max - min of the seed means over lrs)."""
    if best.empty:
        return pd.DataFrame()
    return _pivot(best, best["lr_sensitivity"].map(lambda v: "" if pd.isna(v) else f"{100 * v:.2f}"))


def best_lr_pivot(best: pd.DataFrame) -> pd.DataFrame:
    if best.empty:
        return pd.DataFrame()
    return _pivot(best, best["best_lr"].map(lambda v: "" if pd.isna(v) else f"{v:g}"))
