"""What one analysis returns (:class:`AnalysisResult`) and how it is saved (``vitplast analyze``'s files)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vitplast.analysis_config import AnalyzeConfig
from vitplast.bounds.result import BoundsCheck
from vitplast.diagnostics import Diagnostics
from vitplast.io import output_dir, write_json_atomic, write_text_atomic
from vitplast.plasticity import PlasticityResult


@dataclass
class AnalysisResult:
    """Everything one analysis produced (:func:`vitplast.analysis.run_analysis`); :meth:`save` writes the files.

    ``plasticity``: the table at the model's own scale (c = 1); ``scales``: one result per embedding scale
    (c = 1 first); ``summary``: aggregates over layers ranked by ``config.rank_by``; ``layers``: the ranking
    within each layer; ``diagnostics``: regime diagnostics (with the measured LN plasticity beside the
    prediction); ``bounds``: bounds and their check (embedding mode, ``with_bounds``); ``record``: the JSON
    (:meth:`to_dict`).
    """

    config: AnalyzeConfig
    plasticity: PlasticityResult
    scales: list[PlasticityResult]
    summary: pd.DataFrame
    relative_summary: pd.DataFrame
    layers: dict[int, list[str]]
    diagnostics: Diagnostics
    bounds: BoundsCheck | None
    record: dict[str, Any] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """The per-layer plasticity table with the model's spec in front (``plasticity.csv``)."""
        t = self.plasticity.table.copy()
        t.insert(0, "model", self.config.model)
        return t

    def scale_table(self) -> pd.DataFrame:
        """Per embedding scale c, layer and component: P and R (``embed_scale.csv``)."""
        return pd.concat(
            [r.table.assign(scale=r.embed_scale) for r in self.scales], ignore_index=True
        )[["scale", "layer", "component", "mean", "ci95", "rel_mean", "rel_ci95"]]

    def to_dict(self) -> dict[str, Any]:
        """The content of ``plasticity.json``."""
        return self.record

    def save(self, out: Path) -> None:
        """Write every output into ``out`` atomically (nothing is left behind on failure), figures included."""
        from vitplast.plotting import plot_diagnostics, plot_embed_scale, plot_plasticity

        cfg, res, diag = self.config, self.plasticity, self.diagnostics
        with output_dir(out) as stage:
            write_text_atomic(stage / "plasticity.csv", self.table().to_csv(index=False))
            title = f"{cfg.model}: {cfg.source} vs {cfg.target} ({cfg.mode} mode, {res.n_pairs} pairs)"
            plot_plasticity(res.table, stage / "plasticity.png", title)
            for name, t in (("tokens", diag.tokens), ("layers", diag.layers), ("layernorm", diag.layernorm)):
                write_text_atomic(stage / f"diagnostics_{name}.csv", t.to_csv(index=False))
            plot_diagnostics(diag, stage / "diagnostics.png", f"{cfg.model}: regime diagnostics ({cfg.mode} mode)")
            if len(self.scales) > 1:
                write_text_atomic(stage / "embed_scale.csv", self.scale_table().to_csv(index=False))
                plot_embed_scale(self.scale_table(), stage / "embed_scale.png", f"{cfg.model}: embedded tokens x c")
            if self.bounds is not None:
                b = self.bounds.bounds.table.copy()
                b.insert(0, "model", cfg.model)
                write_text_atomic(stage / "bounds.csv", b.to_csv(index=False))
            write_json_atomic(stage / "plasticity.json", self.to_dict())
