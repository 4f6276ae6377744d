"""Settings of one analysis (``vitplast analyze``; ``vitplast bounds`` uses a subset) and the names they use.

This module imports no numerical library, so the command line can build its options (defaults and help come from
:class:`AnalyzeConfig`'s fields) and refuse a bad option without loading torch. The measurement itself is
:func:`vitplast.analysis.run_analysis`; the definitions are in ``docs/diagnostics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from vitplast.configs import MODEL_HELP, device_option, option, seed_option, validate
from vitplast.precision import PRECISION_HELP, PRECISIONS

#: Estimator modes: every component fed the embedded input (the paper's) or its real input in the forward pass.
MODES: tuple[str, ...] = ("embedding", "insitu")
#: Aggregates of a per-layer table over layers, by the name a ranking declares (``--rank-by``).
AGGREGATES: dict[str, str] = {
    "mean": "mean over all layers",
    "median": "median over all layers",
    "mean_l1": "mean over layers >= 1 (layer 0 excluded)",
    "median_l1": "median over layers >= 1 (layer 0 excluded)",
}
#: Input normalisations: the model's own mean/std, or ImageNet's (as the reference code applies to in21k weights).
NORMALIZATIONS: tuple[str, ...] = ("model", "imagenet")
#: Relative tolerance of the bounds check (float32 rounding of the measured ratios).
DEFAULT_RTOL = 1e-5


@dataclass
class AnalyzeConfig:
    """Settings of one analysis (the options of ``vitplast analyze``; ``vitplast bounds`` uses a subset)."""

    model: str = option("micro-long", help=MODEL_HELP)
    source: str = option(
        "mini:source", help="Source (pretraining-like) data spec, e.g. mini:source, folder:PATH, imagenet-val:DIR."
    )
    target: str = option("mini:digits", help="Target (downstream) data spec, e.g. mini:digits, folder:PATH, cifar10.")
    pairs: int = option(256, help="Number of (source, target) image pairs.", ge=2)
    batch_size: int = option(32, help="Pairs per forward pass (bounds memory).", ge=1)
    mode: str = option(
        "embedding",
        help="embedding (paper: every component sees the embedded input) or insitu (each sees its real input).",
        choices=MODES,
    )
    device: str = device_option()
    seed: int = seed_option(help="Seed of the random image order.")
    order: str = option(
        "random", help="random (seeded) or sorted (stored, class-sorted order, as the reference code).",
        choices=("random", "sorted"),
    )
    source_split: str = option("test", help="Split of the source set: train, val, test or all.")
    target_split: str = option("test", help="Split of the target set: train, val, test or all.")
    workers: int = option(0, help="Data-loading worker processes.", ge=0)
    random_weights: bool = option(False, help="Build the architecture with random weights (offline).")
    with_bounds: bool = option(False, help="Also compute the theoretical bounds, check them and compare rankings.")
    normalization: str = option(
        "model",
        help="Input normalisation: model (the model's own mean/std) or imagenet (ImageNet mean/std, as the "
        "reference code applies to in21k weights; raises the token scale).",
        choices=NORMALIZATIONS,
    )
    rank_by: str = option(
        "mean", help="Aggregate over layers the ranking uses: mean, median, mean_l1 or median_l1 (layers >= 1).",
        choices=tuple(AGGREGATES),
    )
    embed_scale: tuple[float, ...] = option(
        (), help="Also re-measure with the embedded tokens scaled by each c (e.g. 1,3,6,12).", gt=0
    )
    diag_pairs: int = option(
        64, help="Pairs whose forward pass gives the per-layer diagnostics (token statistics use every pair).", ge=1
    )
    precision: str = option(
        "fp32", help=f"Forward passes of the estimator: {PRECISION_HELP}; statistics stay float64.",
        choices=PRECISIONS,
    )
    rtol: float = option(DEFAULT_RTOL, help="Relative tolerance of the bounds check (float32 rounding).", ge=0)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        validate(self)
