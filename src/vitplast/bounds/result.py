"""What the bounds computations return, and how ``vitplast bounds`` saves its result.

:class:`BoundsResult` is the table of :func:`~vitplast.bounds.compute.compute_bounds`; :class:`BoundsCheck`
is that table checked against measured pairs (:func:`~vitplast.bounds.run.check_bounds_on`);
:class:`BoundsView` is one analysis seen by ``vitplast bounds`` (:func:`vitplast.analysis.bounds_view`): its
:meth:`~BoundsView.to_dict` is ``bounds.json`` and :meth:`~BoundsView.save` writes every file and draws
``bounds.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vitplast.bounds.stats import TokenStats
from vitplast.bounds.variants import PRIMARY
from vitplast.io import output_dir, write_json_atomic, write_text_atomic


@dataclass
class BoundsResult:
    """Outcome of :func:`~vitplast.bounds.compute.compute_bounds`.

    ``table``: one row per (layer, component, variant) with columns :data:`~vitplast.bounds.variants.COLUMNS`
    (``r``, ``n``, ``sigma_min`` set where the bound uses them; ``note`` says why a row has no bound).
    ``stats``: the data quantities. ``heads``: per layer and head the MHA ingredients (norms of W_O^h, W_V^h, A^h, of the query-bias vector c^h and the chosen a_h).
    """

    table: pd.DataFrame
    stats: TokenStats
    heads: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)

    def rigorous(self) -> pd.DataFrame:
        """The rows that are upper bounds on every measured pair."""
        return self.table[self.table["rigorous"]].reset_index(drop=True)

    def primary(self) -> pd.DataFrame:
        """One row per (layer, component): the :data:`~vitplast.bounds.variants.PRIMARY` bound."""
        t = self.table
        keep = [PRIMARY[c] == v for c, v in zip(t["component"], t["variant"], strict=True)]
        return t[keep].reset_index(drop=True)


@dataclass
class BoundsCheck:
    """Bounds of one analysis checked against its measured pairs (embedding mode).

    ``tightness``: :func:`~vitplast.bounds.check.bound_tightness`; ``violations``: every (rigorous bound, pair)
    with the pair above the bound; ``summary``: :func:`~vitplast.bounds.check.check_summary`; ``ranking``:
    :func:`~vitplast.bounds.check.ranking_agreement` of the measured table and the bounds.
    """

    bounds: BoundsResult
    tightness: pd.DataFrame
    violations: pd.DataFrame
    summary: dict[str, Any]
    ranking: dict[str, Any]


@dataclass
class BoundsView:
    """One analysis's bounds as ``vitplast bounds`` reports them.

    ``check``: the bounds checked on the analysis's own pairs; ``measured``: the plasticity table drawn beside
    them (measured by the analysis, or read from a file); ``record``: the content of ``bounds.json`` (config,
    versions, data quantities, check summary, rankings).
    """

    check: BoundsCheck
    measured: pd.DataFrame
    record: dict[str, Any]

    def table(self) -> pd.DataFrame:
        """The bounds table with the model's spec in front (``bounds.csv``)."""
        table = self.check.bounds.table.copy()
        table.insert(0, "model", self.record["config"]["model"])
        return table

    def to_dict(self) -> dict[str, Any]:
        """The content of ``bounds.json``."""
        return self.record

    def save(self, out: Path) -> None:
        """Write ``bounds.csv``, ``violations.csv`` (header only when none), ``check.csv`` (per bound: measured
        mean, max, max/bound, pairs above it), ``bounds.png`` and ``bounds.json`` into ``out``, all or nothing."""
        from vitplast.bounds.plot import plot_bounds

        cfg, chk = self.record["config"], self.check
        with output_dir(out) as stage:
            write_text_atomic(stage / "bounds.csv", self.table().to_csv(index=False))
            write_text_atomic(stage / "violations.csv", chk.violations.to_csv(index=False))
            write_text_atomic(stage / "check.csv", chk.tightness.to_csv(index=False))
            title = (
                f"{cfg['model']}: bounds vs plasticity, {cfg['source']} vs {cfg['target']}, {self.record['pairs']} "
                "pairs (embedding mode)"
            )
            plot_bounds(chk.bounds.table, stage / "bounds.png", self.measured, chk.tightness, title)
            write_json_atomic(stage / "bounds.json", self.to_dict())
