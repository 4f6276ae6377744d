"""Gradient selectors: gradient norm, Fisher trace, Auto-RGN, first-order Taylor (docs/selectors.md).

All of them attach a new, seeded, randomly initialised classification head with ``data.num_classes``
outputs to a *copy* of the model (the caller's model is never changed), put the copy in eval mode
(no dropout), and differentiate the cross-entropy loss on the target images ``x_i, y_i`` (i = 1..N):

    L = (1/N) sum_i l_i,   l_i = CE(f(x_i), y_i)
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitplast.models import ViT, as_vit
from vitplast.selectors.base import Scores, SelectorData, by_group, memo, numel, total_norm
from vitplast.selectors.registry import register


def with_new_head(vit: ViT, data: SelectorData) -> ViT:
    """A copy of ``vit`` with a new ``data.num_classes``-way head initialised from ``data.seed``, in eval mode."""
    clone = as_vit(copy.deepcopy(vit.module), vit.name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(data.seed)
        clone.reset_head(data.num_classes)
    clone.eval()
    for p in clone.module.parameters():
        p.requires_grad_(True)
    return clone


def mean_gradients(vit: ViT, data: SelectorData) -> tuple[ViT, dict[int, Tensor]]:
    """``(clone, grads)``: the model with its new head and grad_theta L per parameter (keyed by ``id``)."""
    result: tuple[ViT, dict[int, Tensor]] = memo(data, vit, "grad", lambda: _mean_gradients(vit, data))
    return result


def _mean_gradients(vit: ViT, data: SelectorData) -> tuple[ViT, dict[int, Tensor]]:
    clone = with_new_head(vit, data)
    dev = clone.device
    clone.module.zero_grad(set_to_none=True)
    n = len(data.images)
    for x, y in zip(data.images.split(data.batch_size), data.labels.split(data.batch_size), strict=True):
        loss = F.cross_entropy(clone.logits(x.to(dev).float()), y.to(dev), reduction="sum") / n
        loss.backward()
    grads = {id(p): (p.grad if p.grad is not None else torch.zeros_like(p)).detach() for p in clone.module.parameters()}
    clone.module.zero_grad(set_to_none=True)
    return clone, grads


def _grad_scores(vit: ViT, data: SelectorData, name: str, per_param: bool = False) -> Scores:
    clone, g = mean_gradients(vit, data)

    def fn(ps: list[nn.Parameter]) -> float:
        norm = total_norm([g[id(p)] for p in ps])
        return norm / math.sqrt(numel(ps)) if per_param else norm

    return by_group(clone, fn, name)


@register("grad-norm", order=40, formula="||grad_{theta_g} L||_2")
def grad_norm(vit: ViT, data: SelectorData) -> Scores:
    """Gradient norm with a new head: ``s(g) = ||grad_{theta_g} L||_2`` over all tensors of group g."""
    return _grad_scores(vit, data, "grad-norm")


@register("grad-norm-param", order=50, formula="||grad_{theta_g} L||_2 / sqrt(|theta_g|)")
def grad_norm_per_param(vit: ViT, data: SelectorData) -> Scores:
    """Gradient norm per parameter: ``s(g) = ||grad_{theta_g} L||_2 / sqrt(|theta_g|)`` (RMS gradient entry)."""
    return _grad_scores(vit, data, "grad-norm-param", per_param=True)


def _rgn(vit: ViT, data: SelectorData, name: str, weights_only: bool) -> Scores:
    clone, g = mean_gradients(vit, data)

    def fn(ps: list[nn.Parameter]) -> float:
        ratios = [
            total_norm([g[id(p)]]) / w
            for p in ps
            if (p.ndim >= 2 or not weights_only) and (w := total_norm([p.detach()])) > 0
        ]
        return sum(ratios) / len(ratios) if ratios else math.nan

    return by_group(clone, fn, name)


@register("auto-rgn", order=70, formula="mean_{W in g, W a matrix} ||grad_W L|| / ||W||")
def auto_rgn(vit: ViT, data: SelectorData) -> Scores:
    """Auto-RGN (relative gradient norm), weights only: ``s(g) = mean_{W in g, W.ndim >= 2} ||grad_W L|| / ||W||``.

    Biases and LayerNorm vectors are left out, so the LayerNorm groups (which hold none) score NaN.
    """
    return _rgn(vit, data, "auto-rgn", weights_only=True)


@register("auto-rgn-all", order=80, formula="mean_{T in g} ||grad_T L|| / ||T||")
def auto_rgn_all(vit: ViT, data: SelectorData) -> Scores:
    """Auto-RGN over all tensors: ``s(g) = mean_{T in g} ||grad_T L|| / ||T||`` (tensors with ||T|| = 0 skipped)."""
    return _rgn(vit, data, "auto-rgn-all", weights_only=False)


@register("taylor", order=90, formula="sum_{theta in g} |theta * dL/dtheta|")
def taylor(vit: ViT, data: SelectorData) -> Scores:
    """First-order Taylor sensitivity (SPT, GPS): ``s(g) = sum_{theta in g} |theta * dL/dtheta|``.

    Each term estimates the loss change from zeroing one parameter, to first order.
    """
    clone, g = mean_gradients(vit, data)
    return by_group(clone, lambda ps: sum(float((p.detach() * g[id(p)]).abs().double().sum()) for p in ps), "taylor")


#: Float32 entries of per-sample gradients held at once (800 MB): bounds the vmap chunk on large models.
PER_SAMPLE_ENTRIES = 200_000_000


def per_sample_sq_norms(vit: ViT, data: SelectorData, chunk: int | None = None) -> tuple[ViT, dict[int, float]]:
    """``(clone, S)`` with ``S[id(theta)] = sum_i ||grad_theta l_i||^2`` from per-sample gradients (torch.func),
    ``chunk`` samples at a time (default: ``data.batch_size``, fewer if that would exceed
    :data:`PER_SAMPLE_ENTRIES` gradient entries)."""
    from torch.func import functional_call, grad, vmap

    clone = with_new_head(vit, data)
    n_params = sum(p.numel() for p in clone.module.parameters())
    chunk = chunk or max(1, min(data.batch_size, PER_SAMPLE_ENTRIES // n_params))
    dev = clone.device
    module = clone.module
    names = [n for n, _ in module.named_parameters()]
    params = {n: p.detach() for n, p in module.named_parameters()}

    def loss_one(theta: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        logits = functional_call(_Logits(clone), {f"inner.{k}": v for k, v in theta.items()}, (x.unsqueeze(0),))
        return F.cross_entropy(logits, y.unsqueeze(0))

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    sums = {n: 0.0 for n in names}
    with warnings.catch_warnings():  # torch has no batching rule for some fused attention kernels: slower, correct
        warnings.filterwarnings("ignore", message="There is a performance drop")
        for x, y in zip(data.images.split(chunk), data.labels.split(chunk), strict=True):
            gs = per_sample(params, x.to(dev).float(), y.to(dev))
            for n in names:
                sums[n] += float(gs[n].double().pow(2).sum())
    by_name = dict(module.named_parameters())
    return clone, {id(by_name[n]): s for n, s in sums.items()}


class _Logits(nn.Module):
    """The view's logits as an ``nn.Module`` whose parameters are the model's (for ``functional_call``)."""

    def __init__(self, vit: ViT) -> None:
        super().__init__()
        self.inner = vit.module
        self._vit = [vit]  # a list so that nn.Module does not register it

    def forward(self, x: Tensor) -> Tensor:
        return self._vit[0].logits(x)


@register("fisher", order=60, formula="(1/N) sum_i ||grad_{theta_g} l_i||_2^2")
def fisher(vit: ViT, data: SelectorData) -> Scores:
    """Fisher trace from per-sample gradients: ``s(g) = (1/N) sum_i ||grad_{theta_g} l_i||_2^2``.

    The empirical Fisher's trace restricted to group g (labels are the true labels).
    """
    clone, sq = per_sample_sq_norms(vit, data)
    n = len(data.images)
    return by_group(clone, lambda ps: sum(sq[id(p)] for p in ps) / n, "fisher")
