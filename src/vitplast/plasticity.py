"""The plasticity estimator (SPEC sections 1.2 and 1.3).

For a component f and input pairs (X, Y)::

    P(f) = E[ ||f(X) - f(Y)||_F / ||X - Y||_F ]

**Embedding mode** (the paper's, default): X = E(x), Y = E(y) are the embedded sequences of a source and a
target image paired by position, and every component of every block receives that same pair. FC2 sees X
zero-padded on the feature axis to the FFN width, i.e. ``X @ W2[:, :d]^T + b``.

**In-situ mode**: each component receives what it really gets at its depth in the forward pass (LN1 the
block input, MHA the LN1 output, LN2 the post-attention stream, FC1 the LN2 output, FC2 the activation).

Implementation (memory does not grow with the number of pairs; statistics are reduced on the device):

* linear components never run twice: the bias cancels, ``f(X) - f(Y) = (X - Y) W^T``. In-situ mode reuses the
  outputs its forward pass computes anyway. In embedding mode the difference D = X - Y is shared by all layers, so ``||D W^T||_F^2 = <D^T D, W^T W>``: the Gram
  matrix ``D^T D`` is formed once per pair (float64) and contracted with each layer's precomputed ``W^T W``.
* LayerNorm(X) - LayerNorm(Y) = gamma * (x̂_X - x̂_Y): in embedding mode the normalised difference is shared
  by all LayerNorms with the same eps, and ``||gamma * Δ̂||_F^2 = sum_j gamma_j^2 sum_t Δ̂_tj^2``.
* MHA runs the model's own attention module on X and Y stacked in one batch.
* per (layer, component) the running count, mean and M2 are merged per batch (Chan et al.) in float64.

Pairs with ``||X - Y||_F = 0`` are skipped and counted, never turned into NaN or inf.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from vitplast.components import COMPONENTS, THEORY_RANKING
from vitplast.errors import VitplastError
from vitplast.models import ViT, as_vit
from vitplast.precision import resolve_precision

Mode = Literal["embedding", "insitu"]
MODES: tuple[str, ...] = ("embedding", "insitu")
ImageSource = Tensor | Iterable[Any]


@dataclass
class PlasticityResult:
    """Outcome of :func:`measure_plasticity`.

    ``table``: one row per (layer, component) with columns ``layer`` (0-based), ``component``, ``mean``,
    ``std`` (sample std, ddof=1), ``ci95`` (1.96 std / sqrt(n)), ``n_pairs``. ``pairs``: per-pair ratios
    ``[n_used, depth, 5]`` in :data:`~vitplast.components.COMPONENTS` order when ``keep_pairs`` was set;
    ``pair_index``: position of each used pair in the input streams. ``n_skipped``: pairs with X == Y.
    """

    table: pd.DataFrame
    mode: str
    n_pairs: int
    n_skipped: int
    seconds: float
    pairs: np.ndarray | None = None
    pair_index: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Per component: mean over layers of the per-layer mean, and its rank (1 = most plastic)."""
        return summarize(self.table)


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over layers of each component's plasticity, ranked (1 = most plastic), with the theory's rank."""
    s = table.groupby("component", sort=False)["mean"].mean().reindex(list(COMPONENTS)).to_frame("mean")
    s["rank"] = s["mean"].rank(ascending=False, method="min").astype(int)
    s["theory_rank"] = [THEORY_RANKING.index(c) + 1 for c in s.index]
    return s.reset_index()


class _Stats:
    """Streaming count / mean / M2 per cell of a ``[depth, 5]`` grid, merged per batch in float64."""

    def __init__(self, depth: int, device: torch.device) -> None:
        shape = (depth, len(COMPONENTS))
        self.n = torch.zeros(shape, dtype=torch.float64, device=device)
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(shape, dtype=torch.float64, device=device)

    def update(self, ratios: Tensor, valid: Tensor) -> None:
        """``ratios``: ``[depth, 5, B]``; ``valid``: bool mask of the same shape."""
        r = torch.where(valid, ratios.double(), torch.zeros((), dtype=torch.float64, device=ratios.device))
        nb = valid.sum(-1).double()
        safe = nb.clamp(min=1)
        mb = r.sum(-1) / safe
        m2b = (
            torch.where(valid, r - mb.unsqueeze(-1), torch.zeros((), dtype=torch.float64, device=r.device)) ** 2
        ).sum(-1)
        n = self.n + nb
        delta = mb - self.mean
        frac = torch.where(n > 0, nb / n.clamp(min=1), torch.zeros_like(n))
        self.mean = self.mean + delta * frac
        self.m2 = self.m2 + m2b + delta**2 * self.n * frac
        self.n = n

    def table(self) -> pd.DataFrame:
        n = self.n.cpu().numpy()
        mean = self.mean.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.where(n > 1, self.m2.cpu().numpy() / np.maximum(n - 1, 1), np.nan)
        std = np.sqrt(var)
        rows = []
        for layer in range(n.shape[0]):
            for c, comp in enumerate(COMPONENTS):
                k = int(n[layer, c])
                rows.append(
                    {
                        "layer": layer,
                        "component": comp,
                        "mean": float(mean[layer, c]) if k else float("nan"),
                        "std": float(std[layer, c]),
                        "ci95": float(1.96 * std[layer, c] / np.sqrt(k)) if k > 1 else float("nan"),
                        "n_pairs": k,
                    }
                )
        return pd.DataFrame(rows)


def _batches(src: ImageSource, batch_size: int) -> Iterator[Tensor]:
    """Yield image tensors from a tensor (chunked) or an iterable of batches / (images, labels) tuples."""
    if isinstance(src, Tensor):
        if src.ndim != 4:
            raise VitplastError(f"expected images [N,3,H,W], got shape {tuple(src.shape)}")
        yield from src.split(batch_size)
        return
    for item in src:
        x = item[0] if isinstance(item, tuple | list) else item
        if not isinstance(x, Tensor):
            raise VitplastError(f"expected batches of image tensors, got {type(x).__name__}")
        yield x.unsqueeze(0) if x.ndim == 3 else x


def paired_batches(
    source: ImageSource, target: ImageSource, batch_size: int, max_pairs: int | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Re-chunk two image streams into aligned batches of at most ``batch_size`` pairs (pair i = (x_i, y_i)).

    Stops at the end of the shorter stream or after ``max_pairs`` pairs.
    """
    it_s, it_t = _batches(source, batch_size), _batches(target, batch_size)
    buf_s: list[Tensor] = []
    buf_t: list[Tensor] = []
    n_s = n_t = 0
    done = 0
    exhausted = False
    while not exhausted:
        want = batch_size if max_pairs is None else min(batch_size, max_pairs - done)
        if want <= 0:
            return
        while n_s < want:
            nxt = next(it_s, None)
            if nxt is None:
                exhausted = True
                break
            buf_s.append(nxt)
            n_s += len(nxt)
        while n_t < want:
            nxt = next(it_t, None)
            if nxt is None:
                exhausted = True
                break
            buf_t.append(nxt)
            n_t += len(nxt)
        k = min(want, n_s, n_t)
        if k == 0:
            return
        cat_s, cat_t = torch.cat(buf_s), torch.cat(buf_t)
        if cat_s.shape[1:] != cat_t.shape[1:]:
            raise VitplastError(
                f"source and target images differ in shape: {tuple(cat_s.shape[1:])} vs {tuple(cat_t.shape[1:])}"
            )
        yield cat_s[:k], cat_t[:k]
        buf_s, buf_t = [cat_s[k:]], [cat_t[k:]]
        n_s, n_t = n_s - k, n_t - k
        done += k


def _fro(d: Tensor) -> Tensor:
    """Frobenius norm per pair of ``[B, n, m]``, in float64."""
    return torch.linalg.vector_norm(d.double(), dim=(1, 2))


class EmbeddingPlan:
    """Per-model constants of embedding mode: LayerNorm groups and the W^T W Gram matrices of FC1/FC2."""

    def __init__(self, vit: ViT, device: torch.device) -> None:
        d = vit.dim
        if vit.mlp_dim < d:
            raise VitplastError(
                f"embedding mode needs FFN width >= d for zero-padded FC2 (FFN {vit.mlp_dim} < d {d}): use mode insitu"
            )
        grams = []
        for b in vit.blocks:
            w1 = b.fc1.weight.detach().to(device, torch.float64)
            w2 = b.fc2.weight.detach()[:, :d].to(device, torch.float64)
            grams += [w1.T @ w1, w2.T @ w2]
        # [2*depth, d*d]: row 2l = FC1 of layer l, row 2l+1 = FC2 of layer l.
        self.grams = torch.stack(grams).reshape(len(grams), d * d)
        self.ln_eps: list[tuple[float, float]] = []
        g2 = []
        for b in vit.blocks:
            for ln in (b.ln1, b.ln2):
                if tuple(ln.normalized_shape) != (d,):
                    raise VitplastError("only LayerNorm over the feature axis is supported")
                w = ln.weight if ln.weight is not None else torch.ones(d, device=device)
                g2.append(w.detach().to(device, torch.float64) ** 2)
            self.ln_eps.append((float(b.ln1.eps), float(b.ln2.eps)))
        self.gamma2 = torch.stack(g2).reshape(vit.depth, 2, d)  # [depth, 2, d]


def _normalise(x: Tensor, eps: float) -> Tensor:
    """Per-token standardisation x̂ = (x - mean) / sqrt(var + eps) (biased variance, as LayerNorm)."""
    return torch.nn.functional.layer_norm(x, x.shape[-1:], eps=eps)


@torch.no_grad()
def _embedding_batch(vit: ViT, plan: EmbeddingPlan, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Numerators ``[depth, 5, B]`` and per-pair denominators ``[B]`` of one image batch in embedding mode."""
    return embedded_norms(vit, plan, vit.embed(torch.cat([x, y])).float())


@torch.no_grad()
def embedded_norms(vit: ViT, plan: EmbeddingPlan, xy: Tensor) -> tuple[Tensor, Tensor]:
    """``||f(X)-f(Y)||_F`` per layer, component and pair ``[depth, 5, B]`` and ``||X-Y||_F`` ``[B]``.

    ``xy`` stacks the embedded sequences: ``xy[:B]`` = X, ``xy[B:]`` = Y.
    """
    b = xy.shape[0] // 2
    ex, ey = xy[:b], xy[b:]
    diff = ex - ey
    den = _fro(diff)  # [B]
    depth = vit.depth
    num = torch.empty(depth, len(COMPONENTS), b, dtype=torch.float64, device=xy.device)
    # LayerNorms: share the normalised difference across layers with the same eps.
    sq_cache: dict[float, Tensor] = {}
    for layer, (eps1, eps2) in enumerate(plan.ln_eps):
        for slot, (eps, comp) in enumerate(((eps1, 0), (eps2, 2))):
            if eps not in sq_cache:
                dn = _normalise(ex, eps).double() - _normalise(ey, eps).double()
                sq_cache[eps] = (dn**2).sum(1)  # [B, d]
            num[layer, comp] = (sq_cache[eps] @ plan.gamma2[layer, slot]).clamp(min=0).sqrt()
    # FC1 / FC2 (zero-padded): Gram of the shared difference contracted with each layer's W^T W.
    dd = diff.double()
    gram = torch.einsum("bnd,bne->bde", dd, dd).reshape(b, -1)  # [B, d*d]
    lin = (gram @ plan.grams.T).clamp(min=0).sqrt()  # [B, 2*depth]
    num[:, 3] = lin[:, 0::2].T
    num[:, 4] = lin[:, 1::2].T
    # MHA: the model's attention sub-layer on both sequences at once.
    for layer, blk in enumerate(vit.blocks):
        out = blk.mha(xy).float()  # differences of 16-bit outputs are taken in float32
        num[layer, 1] = _fro(out[:b] - out[b:])
    return num, den


@torch.no_grad()
def _insitu_batch(vit: ViT, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Ratios ``[depth, 5, B]`` (numerators and denominators per component) in in-situ mode."""
    b = x.shape[0]
    h = vit.embed(torch.cat([x, y]))
    depth = vit.depth
    num = torch.empty(depth, len(COMPONENTS), b, dtype=torch.float64, device=x.device)
    den = torch.empty_like(num)

    def record(layer: int, comp: int, inp: Tensor, out: Tensor) -> None:
        den[layer, comp] = _fro(inp[:b].float() - inp[b:].float())
        num[layer, comp] = _fro(out[:b].float() - out[b:].float())

    for layer, blk in enumerate(vit.blocks):
        a = blk.ln1(h)
        record(layer, 0, h, a)
        m = blk.mha(a)
        record(layer, 1, a, m)
        h = h + m
        c = blk.ln2(h)
        record(layer, 2, h, c)
        u = blk.fc1(c)  # the forward pass needs both outputs anyway; their difference is (c_X - c_Y) W1^T
        record(layer, 3, c, u)
        g = blk.act(u)
        o = blk.fc2(g)
        record(layer, 4, g, o)
        h = h + o
    return num, den


def measure_plasticity(
    model: ViT | torch.nn.Module,
    source: ImageSource,
    target: ImageSource,
    mode: Mode | str = "embedding",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    keep_pairs: bool = False,
    max_pairs: int | None = None,
    progress: Callable[[int], None] | None = None,
    precision: str = "fp32",
) -> PlasticityResult:
    """Estimate the plasticity of every component of every block (SPEC 1.2 / 1.3).

    Args:
        model: a :class:`~vitplast.models.ViT` (from :func:`~vitplast.models.load_model`) or a timm / HF module.
        source, target: preprocessed images ``[N, 3, H, W]``, or iterables of such batches (or of
            ``(images, labels)``); pair i is (source image i, target image i).
        mode: ``"embedding"`` (paper) or ``"insitu"``.
        batch_size: pairs per forward pass (memory is bounded by it, not by the number of pairs).
        device: where to compute (default: the model's device).
        keep_pairs: also return every pair's ratios (``[n_used, depth, 5]``, a few bytes per pair).
        max_pairs: stop after this many pairs.
        progress: called with the number of pairs processed in each batch.
        precision: the model's forward passes (:mod:`vitplast.precision`; ``bf16`` is about 1e-3 relative off
            the float32 means, see ``docs/precision.md``); differences, norms and statistics stay float32/float64.

    Returns:
        A :class:`PlasticityResult`; zero-distance pairs are skipped and counted in ``n_skipped``.
    """
    if mode not in MODES:
        raise VitplastError(f"unknown mode {mode!r}: use embedding or insitu")
    if batch_size < 1:
        raise VitplastError(f"batch size must be >= 1, got {batch_size}")
    vit = as_vit(model)
    dev = torch.device(device) if device is not None else vit.device
    was_training = vit.module.training
    vit.to(dev).eval()
    prec = resolve_precision(precision, dev)
    plan = EmbeddingPlan(vit, dev) if mode == "embedding" else None
    stats = _Stats(vit.depth, dev)
    kept: list[Tensor] = []
    kept_idx: list[Tensor] = []
    n_seen = n_skipped = 0
    t0 = time.perf_counter()
    try:
        for x, y in paired_batches(source, target, batch_size, max_pairs):
            x = x.to(dev, non_blocking=True).float()
            y = y.to(dev, non_blocking=True).float()
            if plan is not None:
                with prec.forward():
                    num, den = _embedding_batch(vit, plan, x, y)
                valid_pair = den > 0
                ratios = num / den.clamp(min=torch.finfo(torch.float64).tiny)
                valid = valid_pair.expand_as(ratios)
            else:
                with prec.forward():
                    num, den = _insitu_batch(vit, x, y)
                valid_pair = den[0, 0] > 0
                valid = (den > 0) & valid_pair
                ratios = num / den.clamp(min=torch.finfo(torch.float64).tiny)
            stats.update(ratios, valid)
            n_skipped += int((~valid_pair).sum())
            if keep_pairs:
                idx = torch.nonzero(valid_pair).squeeze(1)
                kept.append(ratios[:, :, idx].permute(2, 0, 1).float().cpu())
                kept_idx.append(idx.cpu() + n_seen)
            n_seen += x.shape[0]
            if progress is not None:
                progress(x.shape[0])
    finally:
        vit.train(was_training)
    table = stats.table()
    pairs = torch.cat(kept).numpy().astype(np.float64) if keep_pairs and kept else None
    if keep_pairs and pairs is None:
        pairs = np.zeros((0, vit.depth, len(COMPONENTS)))
    return PlasticityResult(
        table=table,
        mode=str(mode),
        n_pairs=n_seen - n_skipped,
        n_skipped=n_skipped,
        seconds=time.perf_counter() - t0,
        pairs=pairs,
        pair_index=torch.cat(kept_idx).numpy() if keep_pairs and kept_idx else None,
        info={"model": vit.name, "depth": vit.depth, "dim": vit.dim, "batch_size": batch_size, "device": str(dev),
              "precision": prec.name},
    )
