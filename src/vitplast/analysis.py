"""The analysis pipeline: model + two data specs -> one :class:`AnalysisResult` from one pass over the images.

One pass embeds every (source, target) image batch once and feeds the embedded sequences to the plasticity
estimator (at every embedding scale asked for), to the regime diagnostics (:mod:`vitplast.diagnostics`) and,
with ``with_bounds`` in embedding mode, to the data quantities of the bounds (:mod:`vitplast.bounds`). Used
by ``vitplast analyze``, ``vitplast bounds`` (a view on the result) and sweeps. Source and target images are
drawn in a seeded random order, or in the data set's stored (class-sorted) order with ``order="sorted"`` to
reproduce the reference code's sampling. Definitions: docs/diagnostics.md.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torch.utils.data import DataLoader

from vitplast.analysis_config import AGGREGATES, AnalyzeConfig
from vitplast.analysis_result import AnalysisResult
from vitplast.bounds.check import ranking_agreement
from vitplast.bounds.result import BoundsView
from vitplast.bounds.run import check_bounds_on, load_plasticity_table, plasticity_csv, table_warnings
from vitplast.bounds.stats import TokenStatsAccumulator
from vitplast.bounds.variants import PRIMARY, VARIANTS
from vitplast.data import DataContext, IndexedSet, Transformed, load_data, make_transform
from vitplast.diagnostics import IMAGENET_MEAN, IMAGENET_STD, DiagnosticsAccumulator
from vitplast.errors import VitplastError, warn
from vitplast.io import versions
from vitplast.models import ViT, load_model
from vitplast.models.vit import DataConfig
from vitplast.plasticity import layer_ranking, measure_scales, summarize
from vitplast.progress import Progress, phase
from vitplast.runtime import resolve_device


def image_loader(
    vit: ViT,
    spec: str,
    split: str,
    n: int,
    seed: int,
    order: str,
    batch_size: int,
    workers: int,
    stream: int = 0,
    data_config: DataConfig | None = None,
) -> tuple[DataLoader[Any], int]:
    """Loader over up to ``n`` images of ``spec``/``split`` preprocessed for ``vit``; returns (loader, count).

    With ``order="random"`` the images are a seeded permutation; ``stream`` makes the source and target
    orders independent. ``order="sorted"`` keeps the stored order. ``data_config`` overrides the model's
    preprocessing (e.g. another normalisation).
    """
    dc = data_config or vit.data_config
    bundle = load_data(spec, DataContext(input_size=dc.input_size, seed=seed))
    ds = bundle.split(split)
    total = len(ds)  # type: ignore[arg-type]
    if order == "random":
        idx = np.random.default_rng([seed, stream]).permutation(total)[:n]
    else:
        idx = np.arange(min(n, total))
    subset = Transformed(IndexedSet(ds, idx), make_transform(dc, train=False))
    loader: DataLoader[Any] = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers)
    return loader, len(idx)


def input_config(vit: ViT, normalization: str) -> DataConfig:
    """The model's preprocessing with the normalisation named by ``normalization`` (model or imagenet)."""
    if normalization == "imagenet":
        return replace(vit.data_config, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return vit.data_config


def run_analysis(cfg: AnalyzeConfig, progress: Progress | None = None) -> AnalysisResult:
    """Run one analysis: one pass over the images, every statistic from the same embedded pairs."""
    cfg.validate()
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    vit = load_model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed)
    dc = input_config(vit, cfg.normalization)
    loaders = [
        image_loader(vit, spec, split, cfg.pairs, cfg.seed, cfg.order, cfg.batch_size, cfg.workers, k, dc)
        for k, (spec, split) in enumerate(((cfg.source, cfg.source_split), (cfg.target, cfg.target_split)))
    ]
    (src, n_src), (tgt, n_tgt) = loaders
    n = min(n_src, n_tgt, cfg.pairs)
    if n < 2:
        raise VitplastError(f"fewer than 2 pairs available (source {n_src}, target {n_tgt} images)")
    warnings = []
    if n < cfg.pairs:
        warnings.append(f"--pairs {cfg.pairs} is more than the data hold (source {n_src}, target {n_tgt} images): "
                        f"using {n}")
        warn(warnings[-1])
    with_bounds = cfg.with_bounds and cfg.mode == "embedding"
    diag = DiagnosticsAccumulator(vit, cfg.mode, forward_pairs=cfg.diag_pairs)
    token_acc = TokenStatsAccumulator() if with_bounds else None

    def observe(xy: Tensor) -> None:
        diag.update(xy)
        if token_acc is not None:
            token_acc.update_stacked(xy)

    scales = [1.0, *sorted({float(c) for c in cfg.embed_scale} - {1.0})]
    results = measure_scales(
        vit, src, tgt, scales, mode=cfg.mode, batch_size=cfg.batch_size, device=device, max_pairs=n,
        keep_pairs=with_bounds, progress=phase(progress, "measuring pairs", n), on_embedded=observe,
        precision=cfg.precision,
    )  # fmt: skip
    result = results[0]
    if result.n_pairs < 2:
        raise VitplastError(
            f"fewer than 2 usable pairs ({result.n_pairs} usable, {result.n_skipped} skipped with ||X-Y|| = 0)"
        )
    norm = {"name": cfg.normalization, "mean": list(dc.mean), "std": list(dc.std)}
    diagnostics = diag.result(norm).with_measured(result.table)
    bounds = check_bounds_on(vit, token_acc.result(), result, cfg.rtol) if token_acc is not None else None
    out = AnalysisResult(
        config=cfg,
        plasticity=result,
        scales=results,
        summary=summarize(result.table, cfg.rank_by),
        relative_summary=summarize(result.table, cfg.rank_by, value="rel_mean"),
        layers=layer_ranking(result.table),
        diagnostics=diagnostics,
        bounds=bounds,
    )
    out.record = {**_record(out, vit, str(device), time.perf_counter() - t0), "warnings": warnings}
    return out


def _record(res: AnalysisResult, vit: ViT, device: str, seconds: float) -> dict[str, Any]:
    cfg, r = res.config, res.plasticity
    record: dict[str, Any] = {
        "config": asdict(cfg),
        "model": {
            "spec": cfg.model,
            "library": vit.library,
            "depth": vit.depth,
            "dim": vit.dim,
            "heads": vit.num_heads,
            "mlp_dim": vit.mlp_dim,
            "seq_len": res.diagnostics.seq_len,
            "data_config": vit.data_config.to_dict(),
        },
        "normalization": res.diagnostics.normalization,
        "device": device,
        "pairs_requested": cfg.pairs,
        "pairs_used": r.n_pairs,
        "pairs_skipped": r.n_skipped,
        "seconds_measure": round(r.seconds, 3),
        "seconds_total": round(seconds, 3),
        "pairs_per_second": round((r.n_pairs + r.n_skipped) / max(r.seconds, 1e-9), 2),
        "aggregation": {"rank_by": cfg.rank_by, "meaning": AGGREGATES[cfg.rank_by], "aggregates": AGGREGATES},
        "summary": res.summary.to_dict(orient="records"),
        "summary_relative": res.relative_summary.to_dict(orient="records"),
        "layer_ranking": [{"layer": layer, "order": order} for layer, order in res.layers.items()],
        "diagnostics": res.diagnostics.to_dict(),
        "versions": versions(),
        "host": platform.node(),
    }
    if len(res.scales) > 1:
        record["embed_scale"] = [
            {
                "scale": s.embed_scale,
                "mean": s.table.groupby("component")["mean"].mean().to_dict(),
                "rel_mean": s.table.groupby("component")["rel_mean"].mean().to_dict(),
            }
            for s in res.scales
        ]
    if res.bounds is not None:
        b = res.bounds
        record["bounds"] = {
            "ranking": b.ranking,
            "stats": b.bounds.stats.to_dict(),
            "check": b.summary,
            "violations": b.violations.to_dict(orient="records"),
        }
    elif cfg.with_bounds:
        record["bounds"] = {
            "ranking": ranking_agreement(r.table),
            "note": "bounds apply to embedding mode (docs/diagnostics.md); not computed for in-situ mode",
        }
    return record


def bounds_view(analysis: AnalysisResult, plasticity: Path | None = None) -> BoundsView:
    """The ``vitplast bounds`` result of ``analysis`` (which must carry bounds); :meth:`BoundsView.save` writes it.

    With ``plasticity`` (a ``plasticity.csv`` or an analyze output directory), that table is drawn and ranked
    instead of the one measured by ``analysis``; the per-pair check always uses the analysis's own pairs.
    """
    chk = analysis.bounds
    if chk is None:
        raise VitplastError("this analysis has no bounds (they need embedding mode)")
    cfg = analysis.config
    measured, measured_from = analysis.plasticity.table, "measured by this command (embedding mode)"
    ranking, check = chk.ranking, dict(chk.summary)
    if plasticity is not None:
        measured, mode = load_plasticity_table(plasticity, analysis.record["model"]["depth"])
        measured_from = str(plasticity_csv(plasticity))
        ranking = ranking_agreement(measured, chk.bounds)
        check["warnings"] = table_warnings(measured, mode, cfg.model)
    record: dict[str, Any] = {
        "config": analysis.record["config"],
        "model": analysis.record["model"],
        "mode": "embedding (every component receives E(x); docs/diagnostics.md)",
        "device": analysis.record["device"],
        "pairs": analysis.plasticity.n_pairs + analysis.plasticity.n_skipped,
        "pairs_requested": analysis.record["pairs_requested"],
        "warnings": analysis.record["warnings"],
        "stats": chk.bounds.stats.to_dict(),
        "variants": VARIANTS,
        "primary": PRIMARY,
        "measured_from": measured_from,
        "check": check,
        "ranking": ranking,
        "diagnostics": analysis.record["diagnostics"],
        "seconds_total": analysis.record["seconds_total"],
        "versions": analysis.record["versions"],
    }
    return BoundsView(chk, measured, record)
