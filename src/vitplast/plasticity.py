"""The plasticity estimator (README, "How the estimator works").

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

Beside P, every cell carries the scale-invariant **relative plasticity** (docs/diagnostics.md)::

    R(f) = E[ ||f(X) - f(Y)||_F / ||X - Y||_F * (||X||_F + ||Y||_F) / (||f(X) - f(0)||_F + ||f(Y) - f(0)||_F) ]

which is unchanged when the inputs are scaled (X, Y) -> (cX, cY) for every positively homogeneous f - f(0)
(LayerNorm with eps -> 0, linear maps), whereas P(LN) ~ 1/c. ``embed_scale`` multiplies the embedded
sequences by c before measuring (the scale-robustness experiment).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Unpack

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from vitplast.analysis_config import AGGREGATES, MODES
from vitplast.components import COMPONENTS, THEORY_RANKING
from vitplast.errors import VitplastError
from vitplast.models import ViT, as_vit
from vitplast.precision import resolve_precision

Mode = Literal["embedding", "insitu"]
ImageSource = Tensor | Iterable[Any]


@dataclass
class PlasticityResult:
    """Outcome of :func:`measure_plasticity`.

    ``table``: one row per (layer, component) with columns ``layer`` (0-based), ``component``, ``mean``,
    ``std`` (sample std, ddof=1), ``ci95`` (1.96 std / sqrt(n)), ``n_pairs``, and the relative plasticity R
    (module docstring) as ``rel_mean``, ``rel_ci95``. ``embed_scale``: the factor c applied to E(x). ``pairs``: per-pair ratios
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
    embed_scale: float = 1.0

    def summary(self, rank_by: str = "mean") -> pd.DataFrame:
        """Per component: :data:`AGGREGATES` over layers of the per-layer mean, ranked by ``rank_by``."""
        return summarize(self.table, rank_by)


#: Summaries over layers of the per-layer means; the ranking uses one of them, declared before measuring.


def summarize(table: pd.DataFrame, rank_by: str = "mean", value: str = "mean") -> pd.DataFrame:
    """Each component's per-layer ``value`` aggregated over layers (columns :data:`AGGREGATES`), ranked.

    ``rank`` (1 = most plastic) orders the components by the ``rank_by`` column; ``theory_rank`` is the
    theory's (docs/diagnostics.md). An aggregate over an empty set of layers is NaN and ranks 0.
    """
    if rank_by not in AGGREGATES:
        raise VitplastError(f"unknown aggregate {rank_by!r}: use one of {', '.join(AGGREGATES)}")
    comps = list(COMPONENTS)
    later = table[table["layer"] >= 1]
    s = pd.DataFrame(index=pd.Index(comps, name="component"))
    for name, src in (("", table), ("_l1", later)):
        g = src.groupby("component", sort=False)[value]
        s["mean" + name] = g.mean().reindex(comps)
        s["median" + name] = g.median().reindex(comps)
    s["rank"] = s[rank_by].rank(ascending=False, method="min").fillna(0).astype(int)
    s["theory_rank"] = [THEORY_RANKING.index(c) + 1 for c in comps]
    return s.reset_index()


def layer_ranking(table: pd.DataFrame, value: str = "mean") -> dict[int, list[str]]:
    """Per layer: the components ordered by ``value``, most plastic first."""
    out: dict[int, list[str]] = {}
    for rec in table.dropna(subset=[value]).sort_values(["layer", value], ascending=[True, False]).to_dict("records"):
        out.setdefault(int(rec["layer"]), []).append(str(rec["component"]))
    return out


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


def _fill(batches: Iterator[Tensor], buf: list[Tensor], have: int, want: int) -> tuple[int, bool]:
    """Append batches from ``batches`` to ``buf`` until it holds ``want`` images; returns (images held, whether
    the stream ended first)."""
    while have < want:
        nxt = next(batches, None)
        if nxt is None:
            return have, True
        buf.append(nxt)
        have += len(nxt)
    return have, False


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
        n_s, end_s = _fill(it_s, buf_s, n_s, want)
        n_t, end_t = _fill(it_t, buf_t, n_t, want)
        exhausted = end_s or end_t
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
def embedded_norms(vit: ViT, plan: EmbeddingPlan, xy: Tensor) -> tuple[Tensor, Tensor]:
    """``||f(X)-f(Y)||_F`` per layer, component and pair ``[depth, 5, B]`` and ``||X-Y||_F`` ``[B]``.

    ``xy`` stacks the embedded sequences: ``xy[:B]`` = X, ``xy[B:]`` = Y.
    """
    num, den, _ = _embedding_terms(vit, plan, xy)
    return num, den


def _zero_output(fn: Callable[[Tensor], Tensor], like: Tensor) -> Tensor:
    """f(0) for one sequence shaped like ``like[:1]`` (the offset removed by the relative plasticity)."""
    return fn(torch.zeros_like(like[:1]))


@torch.no_grad()
def _embedding_terms(vit: ViT, plan: EmbeddingPlan, xy: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`embedded_norms` plus ``||f(Z) - f(0)||_F`` ``[depth, 5, 2B]`` for every sequence Z of ``xy``."""
    b = xy.shape[0] // 2
    ex, ey = xy[:b], xy[b:]
    diff = ex - ey
    den = _fro(diff)  # [B]
    depth = vit.depth
    num = torch.empty(depth, len(COMPONENTS), b, dtype=torch.float64, device=xy.device)
    out = torch.empty(depth, len(COMPONENTS), 2 * b, dtype=torch.float64, device=xy.device)
    # LayerNorms: share the normalised sequences across layers with the same eps; LN(0) = beta, so
    # ||LN(Z) - LN(0)||^2 = sum_j gamma_j^2 sum_t zhat_tj^2.
    sq_cache: dict[float, tuple[Tensor, Tensor]] = {}
    for layer, (eps1, eps2) in enumerate(plan.ln_eps):
        for slot, (eps, comp) in enumerate(((eps1, 0), (eps2, 2))):
            if eps not in sq_cache:
                nz = _normalise(xy, eps).double()
                sq_cache[eps] = (((nz[:b] - nz[b:]) ** 2).sum(1), (nz**2).sum(1))  # [B, d], [2B, d]
            sq_diff, sq_self = sq_cache[eps]
            num[layer, comp] = (sq_diff @ plan.gamma2[layer, slot]).clamp(min=0).sqrt()
            out[layer, comp] = (sq_self @ plan.gamma2[layer, slot]).clamp(min=0).sqrt()
    # FC1 / FC2 (zero-padded): Gram of the shared difference contracted with each layer's W^T W; the bias
    # is f(0), so ||f(Z) - f(0)||^2 = <Z^T Z, W^T W> likewise.
    for grams_of, target in ((diff, num), (xy, out)):
        zd = grams_of.double()
        gram = torch.einsum("bnd,bne->bde", zd, zd).reshape(zd.shape[0], -1)
        lin = (gram @ plan.grams.T).clamp(min=0).sqrt()  # [*, 2*depth]
        target[:, 3] = lin[:, 0::2].T
        target[:, 4] = lin[:, 1::2].T
    # MHA: the model's attention sub-layer on both sequences at once.
    for layer, blk in enumerate(vit.blocks):
        o = blk.mha(xy).float()  # differences of 16-bit outputs are taken in float32
        num[layer, 1] = _fro(o[:b] - o[b:])
        out[layer, 1] = _fro(o - _zero_output(blk.mha, xy).float())
    return num, den, out


@torch.no_grad()
def _insitu_batch(vit: ViT, h: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """In-situ mode on the embedded sequences ``h`` (``h[:B]`` = X, ``h[B:]`` = Y).

    Returns numerators and denominators ``[depth, 5, B]``, and ``||f(Z) - f(0)||_F`` and ``||Z||_F``
    ``[depth, 5, 2B]`` of every component's real input Z.
    """
    b = h.shape[0] // 2
    depth = vit.depth
    num = torch.empty(depth, len(COMPONENTS), b, dtype=torch.float64, device=h.device)
    den = torch.empty_like(num)
    out = torch.empty(depth, len(COMPONENTS), 2 * b, dtype=torch.float64, device=h.device)
    inp = torch.empty_like(out)

    def record(layer: int, comp: int, z: Tensor, fz: Tensor, f: Callable[[Tensor], Tensor]) -> None:
        z, fz = z.float(), fz.float()  # differences of 16-bit activations are taken in float32
        den[layer, comp] = _fro(z[:b] - z[b:])
        num[layer, comp] = _fro(fz[:b] - fz[b:])
        inp[layer, comp] = _fro(z)
        out[layer, comp] = _fro(fz - _zero_output(f, z).float())

    for layer, blk in enumerate(vit.blocks):
        a = blk.ln1(h)
        record(layer, 0, h, a, blk.ln1)
        m = blk.mha(a)
        record(layer, 1, a, m, blk.mha)
        h = h + m
        c = blk.ln2(h)
        record(layer, 2, h, c, blk.ln2)
        u = blk.fc1(c)  # the forward pass needs both outputs anyway; their difference is (c_X - c_Y) W1^T
        record(layer, 3, c, u, blk.fc1)
        g = blk.act(u)
        o = blk.fc2(g)
        record(layer, 4, g, o, blk.fc2)
        h = h + o
    return num, den, out, inp


def _relative(ratios: Tensor, out: Tensor, inp: Tensor) -> tuple[Tensor, Tensor]:
    """R = ratio * (||X|| + ||Y||) / (||f(X)-f(0)|| + ||f(Y)-f(0)||) per cell, and where it is defined."""
    b = ratios.shape[-1]
    o = out[..., :b] + out[..., b:]
    i = inp[..., :b] + inp[..., b:]
    return ratios * i / o.clamp(min=torch.finfo(torch.float64).tiny), o > 0


class _Run:
    """The streaming state of one embedding scale c."""

    def __init__(self, scale: float, depth: int, device: torch.device) -> None:
        self.scale = scale
        self.stats = _Stats(depth, device)
        self.rel = _Stats(depth, device)
        self.kept: list[Tensor] = []
        self.kept_idx: list[Tensor] = []
        self.n_skipped = 0


class MeasureOptions(TypedDict, total=False):
    """The keyword options :func:`measure_plasticity` passes on to :func:`measure_scales` (defaults there)."""

    batch_size: int
    device: str | torch.device | None
    keep_pairs: bool
    max_pairs: int | None
    progress: Callable[[int], None] | None
    precision: str


def measure_plasticity(
    model: ViT | torch.nn.Module,
    source: ImageSource,
    target: ImageSource,
    mode: Mode | str = "embedding",
    *,
    embed_scale: float = 1.0,
    **options: Unpack[MeasureOptions],
) -> PlasticityResult:
    """Estimate the plasticity of every component of every block (docs/diagnostics.md for R).

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
        embed_scale: multiply the embedded sequences by this factor c > 0 before measuring.
        precision: the model's forward passes (:mod:`vitplast.precision`; ``bf16`` is about 1e-3 relative off
            the float32 means, see ``docs/precision.md``); differences, norms and statistics stay float32/float64.

    Returns:
        A :class:`PlasticityResult`; zero-distance pairs are skipped and counted in ``n_skipped``.
    """
    return measure_scales(model, source, target, (embed_scale,), mode, **options)[0]


def measure_scales(
    model: ViT | torch.nn.Module,
    source: ImageSource,
    target: ImageSource,
    scales: Sequence[float] = (1.0,),
    mode: Mode | str = "embedding",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    keep_pairs: bool = False,
    max_pairs: int | None = None,
    progress: Callable[[int], None] | None = None,
    on_embedded: Callable[[Tensor], None] | None = None,
    precision: str = "fp32",
) -> list[PlasticityResult]:
    """:func:`measure_plasticity` at every embedding scale c of ``scales``, from one pass over the images.

    Each image batch is embedded once; ``on_embedded`` (if given) receives the unscaled embedded sequences
    ``[2B, n, d]`` (``[:B]`` source, ``[B:]`` target) of every batch, so that other statistics (bounds, regime
    diagnostics) share the pass. Returns one result per scale, in the order of ``scales``.
    """
    if mode not in MODES:
        raise VitplastError(f"unknown mode {mode!r}: use embedding or insitu")
    if batch_size < 1:
        raise VitplastError(f"batch size must be >= 1, got {batch_size}")
    if not scales or any(not (float(c) > 0) for c in scales):
        raise VitplastError(f"embedding scales must be > 0, got {list(scales)}")
    vit = as_vit(model)
    dev = torch.device(device) if device is not None else vit.device
    was_training = vit.module.training
    vit.to(dev).eval()
    prec = resolve_precision(precision, dev)
    plan = EmbeddingPlan(vit, dev) if mode == "embedding" else None
    runs = [_Run(float(c), vit.depth, dev) for c in scales]
    n_seen = 0
    tiny = torch.finfo(torch.float64).tiny
    t0 = time.perf_counter()
    try:
        for x, y in paired_batches(source, target, batch_size, max_pairs):
            b = x.shape[0]
            with torch.no_grad(), prec.forward():
                xy = vit.embed(torch.cat([x, y]).to(dev, non_blocking=True).float()).float()
            if on_embedded is not None:
                on_embedded(xy)
            for run in runs:
                z = xy if run.scale == 1.0 else xy * run.scale
                if plan is not None:
                    with prec.forward():
                        num, den, out = _embedding_terms(vit, plan, z)
                    inp = _fro(z).expand_as(out)
                    valid_pair = den > 0
                    ratios = num / den.clamp(min=tiny)
                    valid = valid_pair.expand_as(ratios)
                else:
                    with prec.forward():
                        num, den, out, inp = _insitu_batch(vit, z)
                    valid_pair = den[0, 0] > 0
                    valid = (den > 0) & valid_pair
                    ratios = num / den.clamp(min=tiny)
                run.stats.update(ratios, valid)
                rel, rel_ok = _relative(ratios, out, inp)
                run.rel.update(rel, valid & rel_ok)
                run.n_skipped += int((~valid_pair).sum())
                if keep_pairs:
                    idx = torch.nonzero(valid_pair).squeeze(1)
                    run.kept.append(ratios[:, :, idx].permute(2, 0, 1).float().cpu())
                    run.kept_idx.append(idx.cpu() + n_seen)
            n_seen += b
            if progress is not None:
                progress(b)
    finally:
        vit.train(was_training)
    seconds = time.perf_counter() - t0
    info = {"model": vit.name, "depth": vit.depth, "dim": vit.dim, "batch_size": batch_size, "device": str(dev),
            "precision": prec.name}
    results = []
    for run in runs:
        table = run.stats.table()
        rel_t = run.rel.table()
        table["rel_mean"] = rel_t["mean"].to_numpy()
        table["rel_ci95"] = rel_t["ci95"].to_numpy()
        pairs = torch.cat(run.kept).numpy().astype(np.float64) if keep_pairs and run.kept else None
        if keep_pairs and pairs is None:
            pairs = np.zeros((0, vit.depth, len(COMPONENTS)))
        results.append(
            PlasticityResult(
                table=table,
                mode=str(mode),
                n_pairs=n_seen - run.n_skipped,
                n_skipped=run.n_skipped,
                seconds=seconds,
                pairs=pairs,
                pair_index=torch.cat(run.kept_idx).numpy() if keep_pairs and run.kept_idx else None,
                info=dict(info),
                embed_scale=run.scale,
            )
        )
    return results
