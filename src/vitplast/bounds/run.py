"""Bounds checked on one analysis (``vitplast bounds`` and ``vitplast analyze --with-bounds``).

The analysis pipeline (:func:`vitplast.analysis.run_analysis`) streams the images once; the bounds' data
quantities are collected from the same embedded pairs the plasticity is measured on, and :func:`check_bounds_on`
turns them into the bounds table, the per-pair check and the rankings. A plasticity table measured earlier
can be read back (:func:`load_plasticity_table`) to be drawn and ranked instead. The files of ``vitplast
bounds`` come from the analysis by :func:`vitplast.analysis.bounds_view` and are written by
:meth:`vitplast.bounds.result.BoundsView.save`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vitplast.bounds.check import (
    DEFAULT_RTOL,
    bound_tightness,
    check_bounds,
    check_summary,
    ranking_agreement,
)
from vitplast.bounds.compute import bounds_from_stats
from vitplast.bounds.result import BoundsCheck
from vitplast.bounds.stats import TokenStats
from vitplast.components import COMPONENTS
from vitplast.errors import VitplastError
from vitplast.models import ViT
from vitplast.plasticity import PlasticityResult
from vitplast.reading import PLASTICITY_TABLE, read_json, read_table

__all__ = ["DEFAULT_RTOL", "check_bounds_on", "load_plasticity_table", "plasticity_csv",
           "table_warnings"]


def check_bounds_on(vit: ViT, stats: TokenStats, result: PlasticityResult, rtol: float = DEFAULT_RTOL) -> BoundsCheck:
    """Bounds from the weights and the streamed ``stats``, checked against the per-pair ratios of ``result``."""
    if result.n_pairs < 1:
        raise VitplastError(f"no usable pairs ({result.n_skipped} skipped with ||X-Y|| = 0)")
    bounds = bounds_from_stats(vit, stats)
    violations = check_bounds(bounds, result, rtol)
    tight = bound_tightness(bounds, result, rtol)
    summary = {"status": "checked"} | check_summary(tight, violations, rtol)
    summary["pairs_skipped"] = result.n_skipped
    return BoundsCheck(bounds, tight, violations, summary, ranking_agreement(result.table, bounds))


def plasticity_csv(path: Path) -> Path:
    """The ``plasticity.csv`` named by ``path`` (the file itself or an analyze output directory)."""
    p = path / "plasticity.csv" if path.is_dir() else path
    if not p.is_file():
        raise VitplastError(f"no plasticity table at {path} (give a plasticity.csv or an analyze output directory)")
    read_table(p, *PLASTICITY_TABLE)  # its layout is checked before any work
    return p


def load_plasticity_table(path: Path, depth: int) -> tuple[pd.DataFrame, str | None]:
    """Read a plasticity table (columns layer, component, mean[, ci95]) and the mode of its run if recorded."""
    csv = plasticity_csv(path)
    table = read_table(csv, *PLASTICITY_TABLE)
    if "model" in table and table["model"].nunique() > 1:
        raise VitplastError(f"{csv} holds several models; give one model's table")
    if set(table["layer"]) != set(range(depth)) or not set(table["component"]) <= set(COMPONENTS):
        raise VitplastError(f"{csv} does not describe a model of depth {depth} with components {list(COMPONENTS)}")
    if "ci95" not in table:
        table["ci95"] = float("nan")
    mode = None
    meta = csv.with_suffix(".json")
    if meta.is_file():
        config = read_json(meta).get("config")
        mode = config.get("mode") if isinstance(config, dict) else None
    return table, mode


def table_warnings(table: pd.DataFrame, mode: str | None, model: str) -> list[str]:
    """Why a plasticity table read from a file may not fit the bounds of ``model`` (mode, model)."""
    out = []
    if mode is not None and mode != "embedding":
        out.append(f"the plasticity table was measured in {mode} mode; the bounds hold for embedding mode")
    if "model" in table and len(table) and str(table["model"].iloc[0]) != model:
        out.append(f"the plasticity table is of model {table['model'].iloc[0]!r}, the bounds of {model!r}")
    return out
