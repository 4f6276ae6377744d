"""Trainable groups (README, "Reproducing the paper offline"): which parameters a run trains, and freezing the rest.

A run trains ``full`` (every parameter) or a set of component groups from ``embed ln1 mha ln2 fc1 fc2``,
each across all blocks (:meth:`vitplast.models.vit.ViT.param_groups`), or a component in some blocks only
(a unit set such as ``mha@8-11``, :mod:`vitplast.units`): the parameters of that group that the chosen
blocks hold (:func:`unit_params`). The ``head`` group (the final norm
and a new classifier) is always trained. Frozen parameters get ``requires_grad = False``, so autograd
computes no gradient for them and the optimizer never sees them (no state, no update).

On every model family (``docs/model-families.md``) the groups follow the component definitions: a block's
LayerScale belongs to ``mha`` (attention branch) and ``fc2`` (MLP branch); a gated MLP's value and gate
projections (and an MLP-internal norm) to ``fc1``; relative position bias tables to ``mha``; class,
distillation and register tokens, the absolute position embedding and any norm before the first block to
``embed``; final norm, pooling (attention-pool / MAP heads) and classifiers to ``head``.

``ln-control`` is the parameter-matched control of the LayerNorm groups (``docs/statistics.md``, "LayerNorms vs
a parameter-matched control"): in each block, exactly as many scalar entries as that block's ``ln1`` tensors hold
(its gamma and beta, counted from the model: the size of one LayerNorm group, each of which is trained alone),
drawn uniformly at random without replacement
from the entries of the block's ``mha``, ``fc1`` and ``fc2`` tensors (weights and biases). One
``torch.Generator`` seeded with the run's seed draws the blocks in order (:func:`control_masks`), so each seed
trains another subset and a resumed run rebuilds its mask. The tensors holding the subset get
``requires_grad = True``; the training loop zeroes the gradient of every other entry (:func:`mask_gradients`)
and the optimizer gives these tensors no weight decay, so the other entries are never changed. The group cannot
be combined with other groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vitplast.components import GROUPS, LN_CONTROL
from vitplast.components import SELECTABLE as SELECTABLE  # re-exported
from vitplast.errors import VitplastError
from vitplast.models.vit import ViT
from vitplast.train.config import parse_groups as parse_groups  # re-exported: defined without torch
from vitplast.units import resolve, split_item

#: The groups whose tensors hold ``ln-control``'s entries (a block's linear layers).
_LINEAR = ("mha", "fc1", "fc2")
#: A mask per partially trained tensor: ``(parameter, mask)``, mask of the parameter's shape, 1.0 = trained.
Masks = list[tuple[nn.Parameter, torch.Tensor]]


def trainable_groups(vit: ViT, train: Sequence[str]) -> dict[str, list[nn.Parameter]]:
    """Parameters trained by ``train`` per item (a group or a unit set such as ``mha@8-11``, checked against the
    model's depth, :func:`vitplast.units.resolve`), always including ``head``; ``full`` lists every group."""
    train = resolve(train, vit.depth, vit.name)
    groups = vit.param_groups()
    if train == (LN_CONTROL,):
        return {LN_CONTROL: [p for g in _LINEAR for p in groups[g]], "head": list(groups["head"])}
    if train == ("full",):
        return {g: list(groups[g]) for g in GROUPS}
    return {**{item: unit_params(vit, item, groups) for item in train}, "head": list(groups["head"])}


def unit_params(vit: ViT, item: str, groups: dict[str, list[nn.Parameter]] | None = None) -> list[nn.Parameter]:
    """The parameters of one canonical item: a whole group's, or those of group ``c`` (as
    :meth:`~vitplast.models.vit.ViT.param_groups` assigns them) held by the listed blocks' ``c``, in block order."""
    groups = groups if groups is not None else vit.param_groups()
    name, blocks = split_item(item)
    if blocks is None:
        return list(groups[name])
    owned = {id(p) for p in groups[name]}
    return _unique([p for b in blocks for p in vit.blocks[b].params[name] if id(p) in owned])


def freeze_except(vit: ViT, train: Sequence[str]) -> dict[str, list[nn.Parameter]]:
    """Set ``requires_grad`` True exactly on the parameters of ``trainable_groups(vit, train)``; return them."""
    selected = trainable_groups(vit, train)
    keep = {id(p) for ps in selected.values() for p in ps}
    for p in vit.module.parameters():
        p.requires_grad_(id(p) in keep)
    return selected


def _unique(params: Sequence[nn.Parameter], exclude: set[int] | None = None) -> list[nn.Parameter]:
    seen = set(exclude or ())
    out = []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def control_masks(vit: ViT, seed: int) -> Masks:
    """The ``ln-control`` subset (module docstring) as one mask per ``mha``/``fc1``/``fc2`` tensor of every block.

    Block ``b`` selects ``k_b`` = number of entries of its ``ln1`` tensors, uniformly without
    replacement from the ``N_b`` entries of its linear tensors (flattened in the block's ``mha fc1 fc2`` order),
    with ``torch.randperm(N_b, generator)[:k_b]``; the generator is seeded with ``seed`` once, before block 0.
    """
    gen = torch.Generator().manual_seed(seed)
    masks: Masks = []
    for i, block in enumerate(vit.blocks):
        norms = _unique([p for c in ("ln1", "ln2") for p in block.params[c]])
        linear = _unique([p for c in _LINEAR for p in block.params[c]], {id(p) for p in norms})
        k = sum(p.numel() for p in _unique(list(block.params["ln1"])))
        n = sum(p.numel() for p in linear)
        if k > n:  # pragma: no cover - no ViT block has more LayerNorm than linear entries
            raise VitplastError(f"{vit.name} block {i}: {k} LayerNorm entries but only {n} linear ones")
        flat = torch.zeros(n)
        flat[torch.randperm(n, generator=gen)[:k]] = 1.0
        for p, m in zip(linear, flat.split([p.numel() for p in linear]), strict=True):
            masks.append((p, m.view(p.shape).to(p.device)))
    return masks


def mask_gradients(masks: Masks) -> None:
    """Multiply each masked parameter's gradient by its mask: unselected entries get a gradient of exactly 0."""
    for p, m in masks:
        if p.grad is not None:
            p.grad.mul_(m)


def count_params(params: Sequence[nn.Parameter], masks: Masks | None = None) -> int:
    """Number of scalar parameters (each tensor counted once); a masked tensor counts its selected entries."""
    selected = {id(p): int(m.sum().item()) for p, m in masks or ()}
    seen: dict[int, int] = {id(p): selected.get(id(p), p.numel()) for p in params}
    return sum(seen.values())
