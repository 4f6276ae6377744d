"""Trainable groups (README, "Reproducing the paper offline"): which parameters a run trains, and freezing the rest.

A run trains ``full`` (every parameter) or a set of component groups from ``embed ln1 mha ln2 fc1 fc2``,
each across all blocks (:meth:`vitplast.models.vit.ViT.param_groups`). The ``head`` group (the final norm
and a new classifier) is always trained. Frozen parameters get ``requires_grad = False``, so autograd
computes no gradient for them and the optimizer never sees them (no state, no update).

On every model family (``docs/model-families.md``) the groups follow the component definitions: a block's
LayerScale belongs to ``mha`` (attention branch) and ``fc2`` (MLP branch); a gated MLP's value and gate
projections (and an MLP-internal norm) to ``fc1``; relative position bias tables to ``mha``; class,
distillation and register tokens, the absolute position embedding and any norm before the first block to
``embed``; final norm, pooling (attention-pool / MAP heads) and classifiers to ``head``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from vitplast.components import GROUPS
from vitplast.components import SELECTABLE as SELECTABLE  # re-exported
from vitplast.models.vit import ViT
from vitplast.train.config import parse_groups as parse_groups  # re-exported: defined without torch


def trainable_groups(vit: ViT, train: Sequence[str]) -> dict[str, list[nn.Parameter]]:
    """Parameters trained by ``train`` per group (always including ``head``); ``full`` lists every group."""
    groups = vit.param_groups()
    chosen = GROUPS if tuple(train) == ("full",) else (*train, "head")
    return {g: list(groups[g]) for g in GROUPS if g in chosen}


def freeze_except(vit: ViT, train: Sequence[str]) -> dict[str, list[nn.Parameter]]:
    """Set ``requires_grad`` True exactly on the parameters of ``trainable_groups(vit, train)``; return them."""
    selected = trainable_groups(vit, train)
    keep = {id(p) for ps in selected.values() for p in ps}
    for p in vit.module.parameters():
        p.requires_grad_(id(p) in keep)
    return selected


def count_params(params: Sequence[nn.Parameter]) -> int:
    """Number of scalar parameters (each tensor counted once)."""
    seen: dict[int, int] = {id(p): p.numel() for p in params}
    return sum(seen.values())
