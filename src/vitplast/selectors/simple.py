"""Baseline and plasticity selectors (docs/selectors.md)."""

from __future__ import annotations

import math

import torch

from vitplast.errors import VitplastError
from vitplast.models import ViT
from vitplast.plasticity import measure_plasticity
from vitplast.selectors.base import (
    Scores,
    SelectorData,
    block_params,
    by_group,
    generator,
    group_params,
    numel,
)
from vitplast.selectors.registry import register


@register("params", order=100, formula="|theta_g|")
def param_count(vit: ViT, data: SelectorData) -> Scores:
    """Parameter count: ``s(g) = |theta_g|``, the number of scalar parameters of group g."""
    return by_group(vit, lambda ps: float(numel(ps)), "params")


@register("random", order=130, formula="U(0, 1) i.i.d.")
def random_scores(vit: ViT, data: SelectorData) -> Scores:
    """Random: ``s(g) ~ U(0, 1)`` i.i.d., drawn from ``data.seed`` (groups first, then blocks, in canonical order)."""
    gen = generator(data.seed)
    groups = {g: float(torch.rand((), generator=gen)) for g in group_params(vit)}
    blocks = {c: [float(torch.rand((), generator=gen)) for _ in per] for c, per in block_params(vit).items()}
    return Scores("random", groups, blocks)


def _whole_blocks(vit: ViT, name: str, later_first: bool) -> Scores:
    depth = vit.depth
    blocks = {c: [float(b + 1 if later_first else depth - b) for b in range(depth)] for c in block_params(vit)}
    return Scores(name, {g: math.nan for g in group_params(vit)}, blocks, whole_blocks=True)


@register("last-k", order=110, formula="b + 1 for every unit of block b (0 = input side)", block_only=True)
def last_k(vit: ViT, data: SelectorData) -> Scores:
    """Last-k (freeze tuning): every unit of block ``b`` scores ``b + 1``, and sets take whole blocks, so the
    budget is filled with the last blocks, all components, as many as fit. Scores no group (NaN)."""
    return _whole_blocks(vit, "last-k", later_first=True)


@register("first-k", order=120, formula="D - b for every unit of block b of D", block_only=True)
def first_k(vit: ViT, data: SelectorData) -> Scores:
    """First-k: every unit of block ``b`` scores ``L - b`` (``L`` blocks), sets take whole blocks, so the budget
    is filled with the first blocks, all components, as many as fit. Scores no group (NaN)."""
    return _whole_blocks(vit, "first-k", later_first=False)


def _plasticity(vit: ViT, x: torch.Tensor, y: torch.Tensor, mode: str, name: str, batch_size: int) -> Scores:
    res = measure_plasticity(vit, x, y, mode=mode, batch_size=batch_size)
    t = res.table
    blocks = {c: [float(v) for v in t[t["component"] == c].sort_values("layer")["mean"]] for c in block_params(vit)}
    groups = {g: (sum(blocks[g]) / len(blocks[g]) if g in blocks else math.nan) for g in group_params(vit)}
    return Scores(name, groups, blocks)


def _need_source(data: SelectorData, name: str) -> torch.Tensor:
    if data.source is None:
        raise VitplastError(f"selector {name} needs source images (pairs of a source and a target image)")
    return data.source


@register("plasticity", order=10,
          formula="(1/D) sum_l P_l(g), P_l(g) = E[ ||f(X) - f(Y)||_F / ||X - Y||_F ]", needs_source=True)
def plasticity(vit: ViT, data: SelectorData) -> Scores:
    """Plasticity, embedding mode: ``s(c) = (1/L) sum_l P_l(c)`` with ``P_l(c) = E[||f(X)-f(Y)||_F / ||X-Y||_F]``,
    X, Y the embedded source image i and target image i (docs/selectors.md). ``embed`` is not scored (NaN)."""
    return _plasticity(vit, _need_source(data, "plasticity"), data.images, "embedding", "plasticity", data.batch_size)


@register("plasticity-insitu", order=20,
          formula="(1/D) sum_l P_l(g), P_l(g) = E[ ||f(X) - f(Y)||_F / ||X - Y||_F ]", needs_source=True)
def plasticity_insitu(vit: ViT, data: SelectorData) -> Scores:
    """Plasticity, in-situ mode: as :func:`plasticity`, each component receiving its real input at its depth."""
    src = _need_source(data, "plasticity-insitu")
    return _plasticity(vit, src, data.images, "insitu", "plasticity-insitu", data.batch_size)


@register("plasticity-target", order=30,
          formula="(1/D) sum_l P_l(g), P_l(g) = E[ ||f(X) - f(Y)||_F / ||X - Y||_F ]")
def plasticity_target(vit: ViT, data: SelectorData) -> Scores:
    """Plasticity, target only: embedding mode on pairs (x_i, x_{i+N/2}) of target images, i < N/2."""
    half = len(data.images) // 2
    return _plasticity(vit, data.images[:half], data.images[half : 2 * half], "embedding", "plasticity-target",
                       data.batch_size)
