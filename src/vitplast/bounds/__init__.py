"""Upper bounds on plasticity, checked against measurement (README, "Theory: bounds on plasticity").

The bounds are for the paper's estimator, **embedding mode** (README, "How the estimator works"): every component of every block
receives the embedded sequence X = E(x) of each image, FC2 its zero-padded copy. For a component f and
a pair (X, Y) they bound ``||f(X) - f(Y)||_F / ||X - Y||_F`` from above:

* FC1 ``||W1||_2``; FC2 ``||W2[:, :d]||_2`` (and the looser ``||W2||_2``);
* LN ``max|gamma| / sqrt(sigma_min^2 + eps)`` with sigma_min^2 the smallest token variance on the
  segments between the paired tokens (the paper's ``max(gamma)`` is reported, labelled not rigorous);
* MHA ``sum_h ||W_O^h|| ||W_V^h|| sqrt(3n + (12n+3) r^4 ||A^h||^2)`` with per-head slicing by rows of
  Q/K/V and columns of O, n the model's sequence length, r the max token norm (rigorous; the query bias
  is folded in, see :mod:`vitplast.bounds.formulas`) or the mean target token norm (paper, not rigorous).

Modules: :mod:`~vitplast.bounds.formulas` (weight-only closed forms), :mod:`~vitplast.bounds.stats` (data
quantities), :mod:`~vitplast.bounds.variants` (variant names), :mod:`~vitplast.bounds.compute` (the table),
:mod:`~vitplast.bounds.result` (result types; saving ``vitplast bounds``), :mod:`~vitplast.bounds.check`
(violations, rankings), :mod:`~vitplast.bounds.plot` (figure), :mod:`~vitplast.bounds.run` (the check on an
analysis: :func:`vitplast.analysis.run_analysis` with ``with_bounds``).
"""

from vitplast.bounds.check import bound_tightness, check_bounds, check_summary, ranking_agreement
from vitplast.bounds.compute import bounds_from_stats, compute_bounds
from vitplast.bounds.result import BoundsCheck, BoundsResult, BoundsView
from vitplast.bounds.run import check_bounds_on
from vitplast.bounds.stats import TokenStats, TokenStatsAccumulator, segment_min_variance
from vitplast.bounds.variants import PAPER, PRIMARY, VARIANTS

__all__ = [
    "PAPER",
    "PRIMARY",
    "VARIANTS",
    "BoundsCheck",
    "BoundsResult",
    "BoundsView",
    "TokenStats",
    "TokenStatsAccumulator",
    "bound_tightness",
    "bounds_from_stats",
    "check_bounds",
    "check_bounds_on",
    "check_summary",
    "compute_bounds",
    "ranking_agreement",
    "segment_min_variance",
]
