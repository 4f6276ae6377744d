"""The ``bounds`` pipeline: model + data -> bounds, measurement, check, ranking, files (``vitplast bounds``).

Images are drawn exactly as ``vitplast analyze`` draws them (same seed, order and splits give the same
pairs), so a ``plasticity.csv`` of an analyze run with the same settings belongs to the same pairs.
Outputs in ``OUT``: ``bounds.csv`` (the bounds table), ``check.csv`` (per bound: measured mean, max,
max/bound, pairs above it), ``violations.csv`` (rigorous bound < a measured pair; header only when none),
``bounds.png`` and ``bounds.json`` (config, versions, data quantities, check summary, rankings).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from vitplast.analysis import AnalyzeConfig, image_loader
from vitplast.bounds.check import (
    DEFAULT_RTOL,
    VIOLATION_COLUMNS,
    bound_tightness,
    check_bounds,
    check_summary,
    ranking_agreement,
)
from vitplast.bounds.compute import PRIMARY, VARIANTS, BoundsResult, compute_bounds
from vitplast.bounds.plot import plot_bounds
from vitplast.components import COMPONENTS
from vitplast.errors import VitplastError
from vitplast.io import output_dir, versions, write_json_atomic, write_text_atomic
from vitplast.models import ViT, load_model
from vitplast.plasticity import PlasticityResult, measure_plasticity
from vitplast.runtime import resolve_device

Progress = Callable[[str, int], Callable[[int], None]]


@dataclass
class BoundsConfig:
    """Settings of ``vitplast bounds`` (defaults as ``vitplast analyze``)."""

    model: str = "micro"
    data: str = "mini:digits"
    source: str = "mini:source"
    pairs: int = 256
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    plasticity: str | None = None
    random_weights: bool = False
    order: str = "random"
    source_split: str = "test"
    target_split: str = "test"
    rtol: float = DEFAULT_RTOL

    def validate(self) -> None:
        if self.pairs < 2:
            raise VitplastError(f"--pairs must be >= 2, got {self.pairs}")
        if self.batch_size < 1:
            raise VitplastError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.rtol < 0:
            raise VitplastError(f"the tolerance must be >= 0, got {self.rtol}")
        if self.order not in ("random", "sorted"):
            raise VitplastError(f"unknown order {self.order!r}: use random or sorted")
        if self.plasticity is not None:
            plasticity_csv(Path(self.plasticity))


def plasticity_csv(path: Path) -> Path:
    """The ``plasticity.csv`` named by ``path`` (the file itself or an analyze output directory)."""
    p = path / "plasticity.csv" if path.is_dir() else path
    if not p.is_file():
        raise VitplastError(f"no plasticity table at {path} (give a plasticity.csv or an analyze output directory)")
    return p


def load_plasticity_table(path: Path, depth: int) -> tuple[pd.DataFrame, str | None]:
    """Read a plasticity table (columns layer, component, mean[, ci95]) and the mode of its run if recorded."""
    csv = plasticity_csv(path)
    try:
        table = pd.read_csv(csv)
    except (OSError, ValueError) as exc:
        raise VitplastError(f"unreadable plasticity table {csv}: {exc}") from None
    missing = {"layer", "component", "mean"} - set(table.columns)
    if missing:
        raise VitplastError(f"{csv} lacks the columns {sorted(missing)}")
    if "model" in table and table["model"].nunique() > 1:
        raise VitplastError(f"{csv} holds several models; give one model's table")
    if set(table["layer"]) != set(range(depth)) or not set(table["component"]) <= set(COMPONENTS):
        raise VitplastError(f"{csv} does not describe a model of depth {depth} with components {list(COMPONENTS)}")
    if "ci95" not in table:
        table["ci95"] = float("nan")
    mode = None
    meta = csv.with_suffix(".json")
    if meta.is_file():
        import json

        try:
            mode = json.loads(meta.read_text()).get("config", {}).get("mode")
        except (OSError, ValueError):
            mode = None
    return table, mode


def run_bounds(cfg: BoundsConfig, out: Path | None, progress: Progress | None = None) -> dict[str, Any]:
    """Compute, check and (when ``out`` is given) write everything; returns the JSON record plus tables.

    The returned dict holds the JSON record, with the data frames under ``"_tables"`` (not written to JSON).
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    vit = load_model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed)
    src, tgt, n = _loaders(
        vit, cfg.source, cfg.source_split, cfg.data, cfg.target_split, cfg.pairs, cfg.seed, cfg.order, cfg.batch_size
    )
    bounds = compute_bounds(
        vit,
        src,
        tgt,
        cfg.batch_size,
        device,
        max_pairs=n,
        progress=progress("embedding pairs", n) if progress else None,
    )
    t_bounds = time.perf_counter() - t0
    violations = pd.DataFrame(columns=VIOLATION_COLUMNS)
    tight: pd.DataFrame | None = None
    measured_from: str
    if cfg.plasticity is not None:
        measured, mode = load_plasticity_table(Path(cfg.plasticity), vit.depth)
        measured_from = str(plasticity_csv(Path(cfg.plasticity)))
        check: dict[str, Any] = {
            "status": "skipped: per-pair ratios are not in a plasticity table (run without "
            "--plasticity to measure and check)",
            "table_mode": mode,
            "warnings": _table_warnings(measured, mode, cfg.model),
        }
    else:
        result = measure_plasticity(
            vit,
            src,
            tgt,
            mode="embedding",
            batch_size=cfg.batch_size,
            device=device,
            keep_pairs=True,
            max_pairs=n,
            progress=progress("measuring pairs", n) if progress else None,
        )
        if result.n_pairs < 1:
            raise VitplastError(f"no usable pairs ({result.n_skipped} skipped with ||X-Y|| = 0)")
        measured, measured_from = result.table, "measured by this command (embedding mode)"
        violations = check_bounds(bounds, result, cfg.rtol)
        tight = bound_tightness(bounds, result, cfg.rtol)
        check = {"status": "checked"} | check_summary(tight, violations, cfg.rtol)
        check["pairs_skipped"] = result.n_skipped
    ranking = ranking_agreement(measured, bounds)
    record: dict[str, Any] = {
        "config": asdict(cfg),
        "model": _model_info(vit, cfg.model),
        "mode": "embedding (every component receives E(x); SPEC 1.2)",
        "device": str(device),
        "pairs": n,
        "stats": bounds.stats.to_dict(),
        "variants": VARIANTS,
        "primary": PRIMARY,
        "measured_from": measured_from,
        "check": check,
        "ranking": ranking,
        "seconds_bounds": round(t_bounds, 3),
        "seconds_total": round(time.perf_counter() - t0, 3),
        "versions": versions(),
    }
    table = bounds.table.copy()
    table.insert(0, "model", cfg.model)
    if out is not None:
        with output_dir(out) as stage:
            write_text_atomic(stage / "bounds.csv", table.to_csv(index=False))
            write_text_atomic(stage / "violations.csv", violations.to_csv(index=False))
            if tight is not None:
                write_text_atomic(stage / "check.csv", tight.to_csv(index=False))
            title = f"{cfg.model}: bounds vs plasticity, {cfg.source} vs {cfg.data}, {n} pairs (embedding mode)"
            plot_bounds(bounds.table, stage / "bounds.png", measured, tight, title)
            write_json_atomic(stage / "bounds.json", record)
    record["_tables"] = {"bounds": table, "violations": violations, "check": tight, "measured": measured}
    return record


def _table_warnings(table: pd.DataFrame, mode: str | None, model: str) -> list[str]:
    out = []
    if mode is not None and mode != "embedding":
        out.append(f"the plasticity table was measured in {mode} mode; the bounds hold for embedding mode")
    if "model" in table and len(table) and str(table["model"].iloc[0]) != model:
        out.append(f"the plasticity table is of model {table['model'].iloc[0]!r}, the bounds of {model!r}")
    return out


def _model_info(vit: ViT, spec: str) -> dict[str, Any]:
    return {
        "spec": spec,
        "library": vit.library,
        "depth": vit.depth,
        "dim": vit.dim,
        "heads": vit.num_heads,
        "mlp_dim": vit.mlp_dim,
        "seq_len": vit.seq_len(),
    }


def _loaders(
    vit: ViT,
    source: str,
    source_split: str,
    target: str,
    target_split: str,
    pairs: int,
    seed: int,
    order: str,
    batch_size: int,
) -> tuple[Any, Any, int]:
    src, n_src = image_loader(vit, source, source_split, pairs, seed, order, batch_size, 0)
    tgt, n_tgt = image_loader(vit, target, target_split, pairs, seed, order, batch_size, 0, stream=1)
    n = min(n_src, n_tgt, pairs)
    if n < 2:
        raise VitplastError(f"fewer than 2 pairs available (source {n_src}, target {n_tgt} images)")
    return src, tgt, n


def analyze_extra(vit: ViT, cfg: AnalyzeConfig, result: PlasticityResult, device: torch.device) -> dict[str, Any]:
    """What ``vitplast analyze --with-bounds`` adds to its record: bounds table, check, ranking agreement.

    Returns ``{"ranking", "table", "check", "violations", "stats"}`` (``table`` is a DataFrame the caller
    writes as ``bounds.csv``). The bounds hold in embedding mode; in in-situ mode only the ranking is given.
    """
    if result.mode != "embedding":
        return {
            "ranking": ranking_agreement(result.table),
            "note": "bounds apply to embedding mode (SPEC 1.2); not computed for in-situ mode",
        }
    n_seen = result.n_pairs + result.n_skipped
    src, tgt, _ = _loaders(
        vit, cfg.source, cfg.source_split, cfg.target, cfg.target_split, cfg.pairs, cfg.seed, cfg.order, cfg.batch_size
    )
    bounds: BoundsResult = compute_bounds(vit, src, tgt, cfg.batch_size, device, max_pairs=n_seen)
    table = bounds.table.copy()
    table.insert(0, "model", cfg.model)
    out: dict[str, Any] = {
        "ranking": ranking_agreement(result.table, bounds),
        "table": table,
        "stats": bounds.stats.to_dict(),
    }
    if result.pairs is not None:
        violations = check_bounds(bounds, result)
        out["check"] = check_summary(bound_tightness(bounds, result), violations)
        out["violations"] = violations.to_dict(orient="records")
    return out
