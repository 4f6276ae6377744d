"""The ``analyze`` pipeline: model + two data specs -> plasticity table, JSON record and figure.

Used by ``vitplast analyze`` and by sweeps. Source and target images are drawn in a seeded random order
(SPEC 1.2), or in the data set's stored (class-sorted) order with ``order="sorted"`` to reproduce the
reference code's sampling.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vitplast.data import DataContext, IndexedSet, Transformed, load_data, make_transform
from vitplast.errors import VitplastError, warn
from vitplast.io import output_dir, versions, write_json_atomic, write_text_atomic
from vitplast.models import ViT, load_model
from vitplast.plasticity import MODES, PlasticityResult, measure_plasticity, summarize
from vitplast.plotting import plot_plasticity
from vitplast.runtime import resolve_device


@dataclass
class AnalyzeConfig:
    """Settings of one plasticity analysis (the CLI options of ``vitplast analyze``)."""

    model: str = "micro"
    source: str = "mini:source"
    target: str = "mini:digits"
    pairs: int = 256
    batch_size: int = 32
    mode: str = "embedding"
    device: str = "auto"
    seed: int = 0
    order: str = "random"
    source_split: str = "test"
    target_split: str = "test"
    workers: int = 0
    random_weights: bool = False
    with_bounds: bool = False

    def validate(self) -> None:
        if self.mode not in MODES:
            raise VitplastError(f"unknown mode {self.mode!r}: use embedding or insitu")
        if self.pairs < 2:
            raise VitplastError(f"--pairs must be >= 2, got {self.pairs}")
        if self.batch_size < 1:
            raise VitplastError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.order not in ("random", "sorted"):
            raise VitplastError(f"unknown order {self.order!r}: use random or sorted")
        if self.workers < 0:
            raise VitplastError("--workers must be >= 0")


def image_loader(
    vit: ViT, spec: str, split: str, n: int, seed: int, order: str, batch_size: int, workers: int, stream: int = 0
) -> tuple[DataLoader[Any], int]:
    """Loader over up to ``n`` images of ``spec``/``split`` preprocessed for ``vit``; returns (loader, count).

    With ``order="random"`` the images are a seeded permutation; ``stream`` makes the source and target
    orders independent. ``order="sorted"`` keeps the stored order.
    """
    bundle = load_data(spec, DataContext(input_size=vit.data_config.input_size, seed=seed))
    ds = bundle.split(split)
    total = len(ds)  # type: ignore[arg-type]
    if order == "random":
        idx = np.random.default_rng([seed, stream]).permutation(total)[:n]
    else:
        idx = np.arange(min(n, total))
    subset = Transformed(IndexedSet(ds, idx), make_transform(vit.data_config, train=False))
    loader: DataLoader[Any] = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers)
    return loader, len(idx)


def run_analyze(
    cfg: AnalyzeConfig, out: Path | None, progress: Callable[[int, int], Callable[[int], None]] | None = None
) -> tuple[PlasticityResult, dict[str, Any]]:
    """Run one analysis; write ``plasticity.csv/.json/.png`` into ``out`` (atomically) when given.

    ``progress(total)`` may return a per-batch callback (used by the CLI for its progress bar).
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    vit = load_model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed)
    src, n_src = image_loader(
        vit, cfg.source, cfg.source_split, cfg.pairs, cfg.seed, cfg.order, cfg.batch_size, cfg.workers
    )
    tgt, n_tgt = image_loader(
        vit, cfg.target, cfg.target_split, cfg.pairs, cfg.seed, cfg.order, cfg.batch_size, cfg.workers, stream=1
    )
    n = min(n_src, n_tgt, cfg.pairs)
    if n < 2:
        raise VitplastError(f"fewer than 2 pairs available (source {n_src}, target {n_tgt} images)")
    if n < cfg.pairs:
        warn(f"--pairs {cfg.pairs} is more than the data hold (source {n_src}, target {n_tgt} images): using {n}")
    callback = progress(n, 0) if progress is not None else None
    result = measure_plasticity(
        vit,
        src,
        tgt,
        mode=cfg.mode,
        batch_size=cfg.batch_size,
        device=device,
        max_pairs=n,
        keep_pairs=cfg.with_bounds,
        progress=callback,
    )
    if result.n_pairs < 2:
        raise VitplastError(
            f"fewer than 2 usable pairs ({result.n_pairs} usable, {result.n_skipped} skipped with ||X-Y|| = 0)"
        )
    table = result.table.copy()
    table.insert(0, "model", cfg.model)
    summary = summarize(result.table)
    record: dict[str, Any] = {
        "config": asdict(cfg),
        "model": {
            "spec": cfg.model,
            "library": vit.library,
            "depth": vit.depth,
            "dim": vit.dim,
            "heads": vit.num_heads,
            "mlp_dim": vit.mlp_dim,
            "seq_len": vit.seq_len(),
            "data_config": vit.data_config.to_dict(),
        },
        "device": str(device),
        "pairs_requested": cfg.pairs,
        "pairs_used": result.n_pairs,
        "pairs_skipped": result.n_skipped,
        "seconds_measure": round(result.seconds, 3),
        "seconds_total": round(time.perf_counter() - t0, 3),
        "pairs_per_second": round((result.n_pairs + result.n_skipped) / max(result.seconds, 1e-9), 2),
        "summary": summary.to_dict(orient="records"),
        "versions": versions(),
        "host": platform.node(),
    }
    if cfg.with_bounds:
        record["bounds"] = _bounds_extra(vit, cfg, result, device)
    if out is not None:
        with output_dir(out) as stage:
            write_text_atomic(stage / "plasticity.csv", table.to_csv(index=False))
            title = f"{cfg.model}: {cfg.source} vs {cfg.target} ({cfg.mode} mode, {result.n_pairs} pairs)"
            plot_plasticity(result.table, stage / "plasticity.png", title)
            if cfg.with_bounds and "table" in record["bounds"]:
                write_text_atomic(stage / "bounds.csv", record["bounds"].pop("table").to_csv(index=False))
            write_json_atomic(stage / "plasticity.json", record)
    return result, record


def _bounds_extra(vit: ViT, cfg: AnalyzeConfig, result: PlasticityResult, device: torch.device) -> dict[str, Any]:
    """Bounds and ranking agreement for ``--with-bounds`` (delegates to :mod:`vitplast.bounds`)."""
    try:
        import vitplast.bounds as B  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise VitplastError("--with-bounds needs the bounds module, which is not installed") from None
    hook = getattr(B, "analyze_extra", None)
    if hook is None:
        return {"ranking": B.ranking_agreement(result.table)}
    out: dict[str, Any] = hook(vit, cfg, result, device)
    return out
