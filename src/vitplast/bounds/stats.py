"""Data quantities the data-dependent bounds use, streamed over the embedded pairs (README, "How the estimator works" and "Theory: bounds on plasticity").

In embedding mode every component sees ``X = E(x)`` and ``Y = E(y)``; the mean-value inequality runs over
the segment ``Z(t) = (1 - t) X + t Y``, ``t in [0, 1]``. Per pair and token:

* token norms: ``||z(t)|| <= max(||x||, ||y||)`` (convexity), so ``r_max`` = the max token norm over both
  streams bounds every token on every segment (rigorous r of the MHA bound). ``r_mean`` = mean token norm
  of the embedded target images (the paper's r, not a bound on the domain).
* token variance along the segment: with ``c = x - mean(x)`` and ``e = (y - x) - mean(y - x)``,
  ``var(z(t)) = ||c + t e||^2 / d`` is a convex quadratic in t, minimal at ``t* = clip(-<c, e> / ||e||^2, 0, 1)``.
  ``sigma2_min`` = the minimum of that over all tokens of all pairs (rigorous sigma_min^2 of the LN bound);
  ``sigma2_min_endpoints`` = the minimum token variance of the images themselves (for information).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from vitplast.errors import VitplastError


def segment_min_variance(x: Tensor, y: Tensor) -> Tensor:
    """Minimum over ``t in [0, 1]`` of the (biased) feature variance of ``(1 - t) x + t y``, per token.

    ``x``, ``y``: ``[..., d]``; returns ``[...]`` in float64 (closed form of the quadratic, never negative).
    """
    x = x.double()
    c = x - x.mean(-1, keepdim=True)
    diff = y.double() - x
    e = diff - diff.mean(-1, keepdim=True)
    ee = (e * e).sum(-1)
    ce = (c * e).sum(-1)
    t = torch.where(ee > 0, (-ce / ee.clamp(min=torch.finfo(torch.float64).tiny)).clamp(0, 1), torch.zeros_like(ee))
    z = c + t.unsqueeze(-1) * e
    return (z * z).mean(-1)


@dataclass
class TokenStats:
    """Statistics of the embedded pairs (see module docstring); ``n_pairs`` counts every pair seen."""

    n_pairs: int
    seq_len: int
    dim: int
    r_max: float
    r_mean_target: float
    sigma2_min: float
    sigma2_min_endpoints: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenStatsAccumulator:
    """Streams :class:`TokenStats` over embedded pairs: ``update(X, Y)`` per batch, then ``result()``."""

    def __init__(self) -> None:
        self.n_pairs = 0
        self.n_tokens = 0
        self.r_max = 0.0
        self.sum_t = 0.0
        self.s2_seg = float("inf")
        self.s2_end = float("inf")
        self.shape: tuple[int, int] = (0, 0)

    def update(self, ex: Tensor, ey: Tensor) -> None:
        nx = torch.linalg.vector_norm(ex.double(), dim=-1)
        ny = torch.linalg.vector_norm(ey.double(), dim=-1)
        self.r_max = max(self.r_max, float(nx.max()), float(ny.max()))
        self.sum_t += float(ny.sum())
        self.n_tokens += nx.numel()
        self.n_pairs += ex.shape[0]
        self.s2_seg = min(self.s2_seg, float(segment_min_variance(ex, ey).min()))
        ends = torch.cat([ex.double().var(-1, unbiased=False), ey.double().var(-1, unbiased=False)])
        self.s2_end = min(self.s2_end, float(ends.min()))
        self.shape = (int(ex.shape[1]), int(ex.shape[2]))

    def update_stacked(self, xy: Tensor) -> None:
        """``update`` from stacked sequences ``[2B, n, d]`` (``[:B]`` source, ``[B:]`` target)."""
        if xy.device.type == "mps":  # no float64 there: reduce on the CPU
            xy = xy.cpu()
        b = xy.shape[0] // 2
        self.update(xy[:b], xy[b:])

    def result(self) -> TokenStats:
        if self.n_pairs == 0:
            raise VitplastError("no image pairs to compute the data-dependent bounds on")
        return TokenStats(
            n_pairs=self.n_pairs,
            seq_len=self.shape[0],
            dim=self.shape[1],
            r_max=self.r_max,
            r_mean_target=self.sum_t / self.n_tokens,
            sigma2_min=self.s2_seg,
            sigma2_min_endpoints=self.s2_end,
        )

