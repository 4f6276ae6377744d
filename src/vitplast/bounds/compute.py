"""Per-layer upper bounds B(f) >= P(f) of every component in embedding mode (README, "How the estimator works" and "Theory: bounds on plasticity").

The bounds hold for the paper's estimator, where every component receives the embedded sequence X = E(x)
of each image (FC2 its zero-padded copy, i.e. ``X W2[:, :d]^T``); the data-dependent ones (LN, MHA) hold
for the pairs they were computed on. Variants (column ``variant``; ``rigorous`` says which are bounds):

=====  ===================  =========  ======================================================================
comp   variant              rigorous   value
=====  ===================  =========  ======================================================================
ln*    sigma_min            yes        max|gamma| / sqrt(sigma_min^2 + eps), sigma_min^2 = min token variance
                                       on the segments between paired tokens
ln*    sigma_min_endpoints  yes        the same with the minimum over the tokens themselves (tighter; proof in
                                       :mod:`~vitplast.bounds.formulas`)
ln*    paper_max_gamma      no         max(gamma), signed, no 1/sigma (what the paper plots)
fc1    spectral             yes        ||W1||_2
fc2    spectral_first_d     yes        ||W2[:, :d]||_2 (what embedding mode applies)
fc2    spectral_full        yes        ||W2||_2 (>= the block's norm; the bound for the full FFN input)
mha    paper_mean_r         no         section 2 formula, r = mean token norm of the embedded target images
mha    max_r                if no      section 2 formula, r = max token norm of both streams, biases ignored
                            q bias
mha    max_r_qbias          yes        same with the query bias folded in (formulas module docstring)
=====  ===================  =========  ======================================================================

Model families (``docs/model-families.md``): a LayerScale ``s`` is part of ``mha`` and ``fc2``, so the
bounds use ``diag(s) W_O`` and ``diag(s) W2`` (norms at most ``max|s|`` times the unscaled ones) and stay
rigorous; a gated MLP's FC1 is the stacked linear map ``[W_value; W_gate]``, bounded by its spectral norm.
Attention outside the softmax bound's theory (qk-norm, rotary embedding, relative position bias, a norm
inside attention, gated attention; :attr:`~vitplast.models.vit.Block.mha_unbounded`) gets every ``mha``
variant as a "no rigorous bound" row: ``bound`` NaN, ``rigorous`` False and the reason in ``note``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from vitplast.bounds.formulas import (
    gamma_of,
    head_terms,
    layernorm_bound,
    layernorm_paper,
    linear_bounds,
    mha_bound,
    mha_bound_qbias,
)
from vitplast.bounds.result import BoundsResult
from vitplast.bounds.stats import TokenStats, TokenStatsAccumulator
from vitplast.bounds.variants import COLUMNS
from vitplast.errors import VitplastError
from vitplast.models import Block, ViT, as_vit
from vitplast.plasticity import ImageSource, paired_batches


def bounds_from_stats(vit: ViT, stats: TokenStats) -> BoundsResult:
    """All variants of every layer from the weights and the data quantities ``stats``."""
    # n: tokens per embedded sequence as the model produced them for these images (= ViT.seq_len() at the
    # model's input size; taken from the data so that a model whose config misstates its size still works).
    n = stats.seq_len
    if stats.dim != vit.dim:
        raise VitplastError(f"token statistics of width {stats.dim} do not fit the model (d = {vit.dim})")
    if vit.mlp_dim < vit.dim:
        raise VitplastError(f"embedding mode needs FFN width >= d (FFN {vit.mlp_dim} < d {vit.dim})")
    sigma_min = stats.sigma2_min**0.5
    sigma_min_end = stats.sigma2_min_endpoints**0.5
    rows: list[dict[str, Any]] = []
    head_rows: list[dict[str, Any]] = []

    def add(layer: int, comp: str, variant: str, bound: float, rigorous: bool, note: str = "", **q: float) -> None:
        rows.append(
            {"layer": layer, "component": comp, "variant": variant, "bound": bound, "rigorous": rigorous}
            | {k: q.get(k, float("nan")) for k in ("r", "n", "sigma_min")}
            | {"note": note}
        )

    def add_ln(layer: int, comp: str, ln: torch.nn.LayerNorm) -> None:
        gamma = gamma_of(ln)
        bound = layernorm_bound(gamma, float(ln.eps), stats.sigma2_min)
        add(layer, comp, "sigma_min", bound, True, sigma_min=sigma_min)
        bound_end = layernorm_bound(gamma, float(ln.eps), stats.sigma2_min_endpoints)
        add(layer, comp, "sigma_min_endpoints", bound_end, True, sigma_min=sigma_min_end)
        add(layer, comp, "paper_max_gamma", layernorm_paper(gamma), False)

    def add_linear(layer: int, blk: Block) -> None:
        lin = linear_bounds(blk.fc1, blk.fc2, vit.dim)
        add(layer, "fc1", "spectral", lin["fc1"], True)
        add(layer, "fc2", "spectral_first_d", lin["fc2_first_d"], True)
        add(layer, "fc2", "spectral_full", lin["fc2_full"], True)

    for layer, blk in enumerate(vit.blocks):
        add_ln(layer, "ln1", blk.ln1)
        if blk.mha_unbounded is not None:
            note = f"no rigorous bound: {blk.mha_unbounded} is outside the softmax-attention theory"
            for variant in ("paper_mean_r", "max_r", "max_r_qbias"):
                add(layer, "mha", variant, float("nan"), False, note, n=n)
            add_ln(layer, "ln2", blk.ln2)
            add_linear(layer, blk)
            continue
        heads = head_terms(blk.attention())
        qbias = any(t.c_norm > 0 for t in heads)
        r_mean = stats.r_mean_target
        add(layer, "mha", "paper_mean_r", mha_bound(heads, n, r_mean), False, r=r_mean, n=n)
        add(layer, "mha", "max_r", mha_bound(heads, n, stats.r_max), not qbias, r=stats.r_max, n=n)
        b_q, chosen = mha_bound_qbias(heads, n, stats.r_max)
        add(layer, "mha", "max_r_qbias", b_q, True, r=stats.r_max, n=n)
        for h, (t, a) in enumerate(zip(heads, chosen, strict=True)):
            head_rows.append(
                {
                    "layer": layer,
                    "head": h,
                    "o_norm": t.o_norm,
                    "v_norm": t.v_norm,
                    "a_norm": t.a_norm,
                    "c_norm": t.c_norm,
                    "a_aug": a,
                }
            )
        add_ln(layer, "ln2", blk.ln2)
        add_linear(layer, blk)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return BoundsResult(
        table=table,
        stats=stats,
        heads=pd.DataFrame(head_rows),
        info={
            "model": vit.name,
            "depth": vit.depth,
            "dim": vit.dim,
            "heads": vit.num_heads,
            "seq_len": n,
            "mode": "embedding",
        },
    )


def compute_bounds(
    model: ViT | torch.nn.Module,
    source: ImageSource,
    target: ImageSource,
    batch_size: int = 32,
    device: torch.device | str | None = None,
    max_pairs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> BoundsResult:
    """Bounds of every component of every block for the pairs ``(source[i], target[i])`` (embedding mode).

    ``source``/``target`` are what :func:`~vitplast.plasticity.measure_plasticity` takes (preprocessed image
    tensors or iterables of batches), paired the same way, so that the data-dependent bounds cover exactly
    the pairs it measures (the data quantities are those of :class:`~vitplast.bounds.stats.TokenStats`).
    Weight-only norms are computed in float64 on the CPU.
    """
    vit = as_vit(model)
    dev = torch.device(device) if device is not None else vit.device
    was_training = vit.module.training
    vit.to(dev).eval()
    acc = TokenStatsAccumulator()
    try:
        with torch.no_grad():
            for x, y in paired_batches(source, target, batch_size, max_pairs):
                acc.update_stacked(vit.embed(torch.cat([x, y]).to(dev).float()))
                if progress is not None:
                    progress(x.shape[0])
    finally:
        vit.train(was_training)
    return bounds_from_stats(vit, acc.result())
