"""The names of the bound variants and which of them each component's figure and ranking use.

A leaf module (no imports): the computation (:mod:`~vitplast.bounds.compute`), its results
(:mod:`~vitplast.bounds.result`) and the figure (:mod:`~vitplast.bounds.plot`) all read these tables.
"""

from __future__ import annotations

#: The bound drawn and ranked for each component (a rigorous one).
PRIMARY: dict[str, str] = {
    "ln1": "sigma_min",
    "mha": "max_r_qbias",
    "ln2": "sigma_min",
    "fc1": "spectral",
    "fc2": "spectral_first_d",
}
#: The paper's variant of each component, drawn beside the primary bound.
PAPER: dict[str, str] = {"ln1": "paper_max_gamma", "ln2": "paper_max_gamma", "mha": "paper_mean_r"}
#: What each variant computes (written into ``bounds.json``).
VARIANTS: dict[str, str] = {
    "sigma_min": "max|gamma| / sqrt(sigma_min^2 + eps), sigma_min^2 over the segments between paired tokens",
    "sigma_min_endpoints": "max|gamma| / sqrt(sigma_min^2 + eps), sigma_min^2 over the paired tokens themselves",
    "paper_max_gamma": "max(gamma), signed, without 1/sigma (the paper's plot; not a bound)",
    "spectral": "||W||_2",
    "spectral_first_d": "||W2[:, :d]||_2, the block embedding mode applies",
    "spectral_full": "||W2||_2, the whole matrix (valid, looser)",
    "paper_mean_r": "sum_h ||W_O^h|| ||W_V^h|| sqrt(3n + (12n+3) r^4 ||A^h||^2), r = mean target token norm",
    "max_r": "same formula, r = max token norm of both streams, attention biases ignored",
    "max_r_qbias": "same formula on tokens [x; a_h] with the query bias folded into A^h (rigorous with biases)",
}
#: The columns of a bounds table (:class:`~vitplast.bounds.result.BoundsResult`).
COLUMNS = ["layer", "component", "variant", "bound", "rigorous", "r", "n", "sigma_min", "note"]


