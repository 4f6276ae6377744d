"""The geometry of a loss landscape along a trajectory (``docs/landscape.md``), independent of any model.

A trajectory ``theta_0 .. theta_T`` (rows of a ``[T+1, p]`` tensor) ends at ``theta_T``. Its offsets
``M_t = theta_t - theta_T`` (``t < T``) form a ``[T, p]`` matrix with singular values ``s_1 >= s_2 >= ...``.
The two leading right singular vectors ``u, v`` are orthonormal directions through the final point (PCA of the
offsets about the final point, without re-centring). ``explained_i = s_i^2 / sum_j s_j^2`` is the fraction of
the offsets' total squared length along direction ``i``, so that::

    sum_t ||M_t - (M_t . u) u - (M_t . v) v||^2  =  (1 - explained_1 - explained_2) * sum_t ||M_t||^2

The landscape is ``L(theta_T + a u + b v)`` on a grid of ``(a, b)``; ``a`` and ``b`` are distances in parameter
space because ``u`` and ``v`` are unit vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vitplast.errors import VitplastError
from vitplast.progress import Progress, phase


@dataclass(frozen=True)
class Directions:
    """Two orthonormal directions ``[2, p]`` (float64, CPU) and the fraction of squared offset length on each."""

    vectors: Tensor
    explained: tuple[float, float]


def pca_directions(trajectory: Tensor) -> Directions:
    """The two leading principal directions of ``trajectory``'s offsets from its last row (module docstring).

    Signs are fixed so that the start ``theta_0`` projects to a coordinate <= 0 on each direction. Raises
    :class:`VitplastError` when the trajectory has fewer than 3 points or does not move.
    """
    if trajectory.ndim != 2 or trajectory.shape[0] < 3:
        raise VitplastError("a landscape needs a trajectory of at least 3 points (--steps >= 3)")
    offsets = (trajectory[:-1] - trajectory[-1]).double().cpu()
    _, s, vh = torch.linalg.svd(offsets, full_matrices=False)
    total = float((s**2).sum())
    if total == 0.0:
        raise VitplastError("the trajectory did not move (zero gradients or --lr too small): no directions to plot")
    vecs = vh[:2].clone()
    start = offsets[0] @ vecs.T
    vecs[start > 0] *= -1
    return Directions(vecs, (float(s[0] ** 2) / total, float(s[1] ** 2) / total))


def project(trajectory: Tensor, directions: Directions) -> np.ndarray:
    """Coordinates ``[T+1, 2]`` of each point's offset from the last point on the two directions."""
    offsets = (trajectory - trajectory[-1]).double().cpu()
    coords: np.ndarray = (offsets @ directions.vectors.T).numpy()
    return coords


def grid_axes(coords: np.ndarray, k: int, span: float) -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, betas)``: ``k`` evenly spaced values each, symmetric about 0 (``k`` odd: 0 is the centre).

    The half-width along each direction is ``span`` times the largest absolute coordinate of the trajectory on
    it (so ``span > 1`` shows the whole trajectory); a direction the trajectory does not extend along borrows
    the other direction's half-width.
    """
    if k < 3 or k % 2 == 0:
        raise VitplastError(f"--grid must be an odd number >= 3, got {k}")
    reach = np.abs(coords).max(axis=0)
    if reach[1] == 0.0:
        reach[1] = reach[0]
    steps = np.arange(-(k // 2), k // 2 + 1, dtype=np.float64) / (k // 2)
    return span * reach[0] * steps, span * reach[1] * steps


def loss_surface(
    loss_at: Callable[[Tensor], float],
    center: Tensor,
    directions: Directions,
    alphas: np.ndarray,
    betas: np.ndarray,
    progress: Progress | None = None,
    label: str = "landscape grid",
) -> np.ndarray:
    """``loss[i, j] = loss_at(center + alphas[i] * u + betas[j] * v)``, shape ``[len(alphas), len(betas)]``.

    ``center`` is the flat parameter vector of the final point; the directions are cast to its dtype and device.
    """
    u, v = (d.to(dtype=center.dtype, device=center.device) for d in directions.vectors)
    out = np.empty((len(alphas), len(betas)), dtype=np.float64)
    advance = phase(progress, label, out.size)
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            out[i, j] = loss_at(center + float(a) * u + float(b) * v)
            advance(1)
    return out
