"""Regime diagnostics: the scale of the embedded tokens, the LayerNorm gains and the attention (docs/diagnostics.md).

Plasticity values depend on the regime a model is in: LN plasticity is about ``rms(gamma) / sigma`` (sigma the
per-token std of what the LayerNorm receives), MHA plasticity on how far attention is from uniform. These
statistics are streamed over the same embedded sequences the plasticity is measured on
(:class:`DiagnosticsAccumulator` is fed by :func:`vitplast.plasticity.measure_scales`), per stream:

* embedded tokens ``x_t`` (d features), patch tokens and prefix (class / register) tokens separately: per-element
  RMS ``sqrt(mean_{t,j} x_tj^2)``, mean per-token std ``mean_t std_j(x_tj)``, token norm ``||x_t||`` (mean and max);
* per layer, in the model's forward pass: the block input's per-element RMS and mean per-token std (the in-situ
  hidden scale; LN1's sigma), the mean per-token std of LN2's input, the attention's normalised entropy
  ``H(row) / log(n)`` averaged over rows and heads and the mean over rows of the row's max weight; the same
  attention statistics on the embedded sequence itself (what MHA receives in embedding mode);
* per layer, regime indicators of the forward pass: the per-element RMS of LN1's output and the ratio
  ``RMS(E(x)) / RMS(LN1 output)`` (how small the embedded tokens the embedding-mode estimator feeds every
  component are, against what the block's MHA really receives), the mean attention distance (patch-grid units,
  :func:`attention_distance`), and the residual growth ``RMS(block output) / RMS(block input)``;
* per LayerNorm (weights only): ``rms(gamma)``, ``max|gamma|``, ``rms(gamma - 1)``, and the closed-form
  prediction ``rms(gamma) / sigma`` of its plasticity with sigma the mean per-token std of its input in the
  analysis's mode (both streams pooled).

Attention weights are recomputed from the view's projection weights: ``softmax((a W_Q^T + b_Q)(a W_K^T + b_K)^T /
sqrt(d_h))`` per head (models with a norm on queries / keys are not covered).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from vitplast.models import ViT

STREAMS: tuple[str, str] = ("source", "target")
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: What the paper reports of its regime (ViT-B/16 in21k, CIFAR-10 target, ImageNet mean/std normalisation).
PAPER_REFERENCE: dict[str, Any] = {
    "model": "ViT-B/16 ImageNet-21k",
    "data": "CIFAR-10 (embedded target images)",
    "normalization": "imagenet",
    "dim": 768,
    "r_mean": 19.4,
    "rms_per_element": round(19.4 / math.sqrt(768), 3),
}


def prefix_token_count(vit: ViT, seq_len: int) -> int:
    """Class / register tokens in front of the patch tokens: the view's ``num_prefix_tokens`` when it has one,
    else the smallest k with ``seq_len - k`` a square number (a square patch grid)."""
    k = getattr(vit, "num_prefix_tokens", None)
    if isinstance(k, int):
        return k
    for k in range(seq_len):
        if math.isqrt(seq_len - k) ** 2 == seq_len - k:
            return k
    return 0


def attention_probs(a: Tensor, q_w: Tensor, q_b: Tensor | None, k_w: Tensor, k_b: Tensor | None, heads: int) -> Tensor:
    """Attention probabilities ``[B, H, n, n]`` of the tokens ``a`` ``[B, n, d]`` (rows: queries)."""
    b, n, _ = a.shape
    bias = None if q_b is None and k_b is None else torch.cat([_bias(q_b, q_w), _bias(k_b, k_w)])
    qk = torch.nn.functional.linear(a, torch.cat([q_w, k_w]), bias).reshape(b, n, 2, heads, -1).permute(2, 0, 3, 1, 4)
    q, k = qk[0], qk[1]
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)


def patch_distances(grid: int) -> Tensor:
    """``[g^2, g^2]`` Euclidean distances between the cells of a ``g x g`` patch grid (row-major), in patches."""
    r, c = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    pos = torch.stack([r.flatten(), c.flatten()], 1).double()
    return torch.cdist(pos, pos)


def attention_distance(p: Tensor, prefix: int) -> tuple[float, int]:
    """Sum over patch-token query rows of the mean attention distance ``sum_k p_qk d_qk / sum_k p_qk`` (``k`` over
    patch keys, ``d`` the grid distance of :func:`patch_distances`), and the row count; ``(nan, 0)`` when the patch
    tokens do not form a square grid. Uniform attention gives the grid's mean pairwise distance."""
    n = p.shape[-1] - prefix
    grid = math.isqrt(n)
    if n <= 0 or grid * grid != n:
        return math.nan, 0
    pp = p[..., prefix:, prefix:].double()
    d = patch_distances(grid).to(pp.device)
    per_row = (pp * d).sum(-1) / pp.sum(-1).clamp_min(1e-300)
    return float(per_row.sum()), int(per_row.numel())


def _bias(b: Tensor | None, w: Tensor) -> Tensor:
    return b if b is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)


def _root(x: float) -> float:
    return math.sqrt(x) if x == x else math.nan  # nan (no forward pairs) stays nan


def attention_stats(p: Tensor) -> tuple[float, float, int]:
    """Sums over rows of the normalised entropy ``H(row) / log(n)`` and of the row max, and the row count."""
    n = p.shape[-1]
    ent = -torch.special.xlogy(p, p).sum(-1) / math.log(n) if n > 1 else torch.zeros_like(p[..., 0])
    return float(ent.double().sum()), float(p.max(-1).values.double().sum()), int(ent.numel())


class _Sums:
    """Named running sums and maxima."""

    def __init__(self) -> None:
        self.s: dict[str, float] = {}
        self.m: dict[str, float] = {}

    def add(self, key: str, value: float) -> None:
        self.s[key] = self.s.get(key, 0.0) + value

    def max(self, key: str, value: float) -> None:
        self.m[key] = max(self.m.get(key, float("-inf")), value)

    def ratio(self, num: str, den: str) -> float:
        d = self.s.get(den, 0.0)
        return self.s.get(num, 0.0) / d if d else float("nan")


@dataclass
class Diagnostics:
    """Regime diagnostics of one analysis (module docstring).

    ``tokens``: per stream and token group (patch, prefix, all): ``n_tokens``, ``rms``, ``std``, ``r_mean``,
    ``r_max``. ``layers``: per layer and stream: ``hidden_rms``, ``hidden_std``, ``ln2_in_std``,
    ``attn_entropy``, ``attn_max`` (forward pass), ``attn_entropy_embedded``, ``attn_max_embedded``, and the
    regime indicators ``ln1_out_rms``, ``embed_ln1_ratio`` (layer 0's ``hidden_rms``, i.e. RMS(E(x)), over
    ``ln1_out_rms``), ``attn_distance`` (forward pass), ``out_rms``, ``residual_growth`` = out_rms / hidden_rms.
    ``layernorm``: per layer and LN: ``gamma_rms``, ``gamma_max_abs``, ``gamma_dev_rms``, ``sigma``,
    ``predicted`` = gamma_rms / sigma, and ``measured`` (the LN plasticity of the analysis, when joined).
    """

    tokens: pd.DataFrame
    layers: pd.DataFrame
    layernorm: pd.DataFrame
    mode: str
    prefix_tokens: int
    seq_len: int
    normalization: dict[str, Any] = field(default_factory=dict)

    def with_measured(self, table: pd.DataFrame) -> Diagnostics:
        """A copy with the measured LN plasticity (per-layer ``mean`` of a plasticity table) beside the prediction."""
        m = table[table["component"].isin(["ln1", "ln2"])][["layer", "component", "mean"]]
        ln = self.layernorm.drop(columns=["measured"], errors="ignore").merge(
            m.rename(columns={"mean": "measured"}), on=["layer", "component"], how="left"
        )
        return Diagnostics(self.tokens, self.layers, ln, self.mode, self.prefix_tokens, self.seq_len, self.normalization)

    @property
    def vitb_scale(self) -> float:
        """The embedding scale ``c`` that gives the source tokens ViT-B/16's per-element RMS (``--embed-scale c``)."""
        t = self.tokens
        rms = float(t[(t["stream"] == "source") & (t["tokens"] == "all")]["rms"].iloc[0])
        return float(PAPER_REFERENCE["rms_per_element"] / rms) if rms > 0 else math.nan

    @property
    def uniform_attn_distance(self) -> float:
        """Mean attention distance of uniform attention over this model's patch grid (nan if not square)."""
        n = self.seq_len - self.prefix_tokens
        g = math.isqrt(max(n, 0))
        return float(patch_distances(g).mean()) if n > 0 and g * g == n else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "vitb_scale": self.vitb_scale,
            "uniform_attn_distance": self.uniform_attn_distance,
            "mode": self.mode,
            "prefix_tokens": self.prefix_tokens,
            "seq_len": self.seq_len,
            "normalization": self.normalization,
            "paper_reference": PAPER_REFERENCE,
            "tokens": self.tokens.to_dict(orient="records"),
            "layers": self.layers.to_dict(orient="records"),
            "layernorm": self.layernorm.to_dict(orient="records"),
        }


class DiagnosticsAccumulator:
    """Streams the diagnostics over embedded batches ``[2B, n, d]`` (``[:B]`` source, ``[B:]`` target).

    Token statistics use every pair; the per-layer forward-pass statistics use the first ``forward_pairs``
    pairs (all when None), as they cost a forward pass and two attention maps per layer and stream.
    """

    def __init__(self, vit: ViT, mode: str = "embedding", forward_pairs: int | None = None) -> None:
        self.vit = vit
        self.mode = mode
        self.forward_left = forward_pairs if forward_pairs is not None else -1  # -1: every pair
        self.sums = _Sums()
        self.seq_len = 0
        self.prefix = 0
        self.attn = [blk.attention() for blk in vit.blocks]

    def _tokens(self, stream: str, z: Tensor) -> None:
        groups = {"patch": z[:, self.prefix :], "prefix": z[:, : self.prefix], "all": z}
        for g, t in groups.items():
            if t.shape[1] == 0:
                continue
            key = f"{stream}/{g}"
            norms = torch.linalg.vector_norm(t, dim=-1)
            self.sums.add(key + "/sq", float((t * t).sum()))
            self.sums.add(key + "/el", float(t.numel()))
            self.sums.add(key + "/std", float(t.std(-1, unbiased=False).sum()))
            self.sums.add(key + "/norm", float(norms.sum()))
            self.sums.add(key + "/tok", float(norms.numel()))
            self.sums.max(key + "/norm", float(norms.max()))

    def _attention(self, key: str, layer: int, a: Tensor, distance: bool = False) -> None:
        w = self.attn[layer]
        p = attention_probs(a, w.q, w.q_bias, w.k, w.k_bias, w.num_heads)
        ent, mx, rows = attention_stats(p)
        self.sums.add(key + "/ent", ent)
        self.sums.add(key + "/max", mx)
        self.sums.add(key + "/rows", rows)
        if distance:
            dist, drows = attention_distance(p, self.prefix)
            self.sums.add(key + "/dist", dist)
            self.sums.add(key + "/drows", drows)

    @torch.no_grad()
    def update(self, xy: Tensor) -> None:
        """Add one batch of embedded sequences."""
        if not self.seq_len:
            self.seq_len = int(xy.shape[1])
            self.prefix = prefix_token_count(self.vit, self.seq_len)
        b = xy.shape[0] // 2
        k = b if self.forward_left < 0 else min(b, self.forward_left)
        self.forward_left -= k if self.forward_left >= 0 else 0
        for stream, z in zip(STREAMS, (xy[:b], xy[b:]), strict=True):
            self._tokens(stream, z.double())
            if k > 0:
                self._forward(stream, z[:k])

    def _forward(self, stream: str, z: Tensor) -> None:
        """Per-layer statistics of the model's forward pass on the embedded sequences ``z`` of one stream."""
        h = z
        for layer, blk in enumerate(self.vit.blocks):
            key = f"{stream}/{layer}"
            hd = h.double()
            self.sums.add(key + "/hsq", float((hd * hd).sum()))
            self.sums.add(key + "/hel", float(hd.numel()))
            self.sums.add(key + "/hstd", float(hd.std(-1, unbiased=False).sum()))
            self.sums.add(key + "/htok", float(hd.shape[0] * hd.shape[1]))
            if self.mode == "embedding":
                self._attention(key + "/embedded", layer, z)
            a = blk.ln1(h)
            self.sums.add(key + "/ln1sq", float(a.double().pow(2).sum()))
            self._attention(key + "/forward", layer, a, distance=True)
            h = h + blk.mha(a)
            self.sums.add(key + "/ln2std", float(h.double().std(-1, unbiased=False).sum()))
            h = h + blk.fc2(blk.act(blk.fc1(blk.ln2(h))))
            self.sums.add(key + "/osq", float(h.double().pow(2).sum()))

    def result(self, normalization: dict[str, Any] | None = None) -> Diagnostics:
        """The diagnostics of everything added so far."""
        s = self.sums
        tokens = []
        for stream in STREAMS:
            for g in ("patch", "prefix", "all"):
                k = f"{stream}/{g}"
                if not s.s.get(k + "/tok"):
                    continue
                tokens.append(
                    {
                        "stream": stream,
                        "tokens": g,
                        "n_tokens": int(s.s[k + "/tok"]),
                        "rms": math.sqrt(s.ratio(k + "/sq", k + "/el")),
                        "std": s.ratio(k + "/std", k + "/tok"),
                        "r_mean": s.ratio(k + "/norm", k + "/tok"),
                        "r_max": s.m[k + "/norm"],
                    }
                )
        layers = []
        for layer in range(self.vit.depth):
            for stream in STREAMS:
                k = f"{stream}/{layer}"
                layers.append(
                    {
                        "layer": layer,
                        "stream": stream,
                        "hidden_rms": math.sqrt(s.ratio(k + "/hsq", k + "/hel")) if s.s.get(k + "/hel") else math.nan,
                        "hidden_std": s.ratio(k + "/hstd", k + "/htok"),
                        "ln2_in_std": s.ratio(k + "/ln2std", k + "/htok"),
                        "attn_entropy": s.ratio(k + "/forward/ent", k + "/forward/rows"),
                        "attn_max": s.ratio(k + "/forward/max", k + "/forward/rows"),
                        "attn_entropy_embedded": s.ratio(k + "/embedded/ent", k + "/embedded/rows"),
                        "attn_max_embedded": s.ratio(k + "/embedded/max", k + "/embedded/rows"),
                        "ln1_out_rms": _root(s.ratio(k + "/ln1sq", k + "/hel")),
                        "attn_distance": s.ratio(k + "/forward/dist", k + "/forward/drows"),
                        "out_rms": _root(s.ratio(k + "/osq", k + "/hel")),
                    }
                )
        lay = pd.DataFrame(layers)
        if len(lay):
            embedded = lay["stream"].map(lay[lay["layer"] == 0].set_index("stream")["hidden_rms"])
            lay["embed_ln1_ratio"] = embedded / lay["ln1_out_rms"]
            lay["residual_growth"] = lay["out_rms"] / lay["hidden_rms"]
        return Diagnostics(
            tokens=pd.DataFrame(tokens),
            layers=lay,
            layernorm=self._layernorm(lay),
            mode=self.mode,
            prefix_tokens=self.prefix,
            seq_len=self.seq_len,
            normalization=normalization or {},
        )

    def _layernorm(self, layers: pd.DataFrame) -> pd.DataFrame:
        s = self.sums
        pooled = sum(s.s.get(f"{st}/all/std", 0.0) for st in STREAMS) / max(
            sum(s.s.get(f"{st}/all/tok", 0.0) for st in STREAMS), 1.0
        )
        per_layer = layers.groupby("layer")[["hidden_std", "ln2_in_std"]].mean().to_dict()  # equal tokens per stream
        rows = []
        for layer, blk in enumerate(self.vit.blocks):
            for comp, ln, col in (("ln1", blk.ln1, "hidden_std"), ("ln2", blk.ln2, "ln2_in_std")):
                g = (ln.weight if ln.weight is not None else torch.ones(self.vit.dim)).detach().double().cpu()
                sigma = pooled if self.mode == "embedding" else float(per_layer[col][layer])
                rms = float(g.pow(2).mean().sqrt())
                rows.append(
                    {
                        "layer": layer,
                        "component": comp,
                        "gamma_rms": rms,
                        "gamma_max_abs": float(g.abs().max()),
                        "gamma_dev_rms": float((g - 1).pow(2).mean().sqrt()),
                        "sigma": sigma,
                        "predicted": rms / sigma if sigma > 0 else math.nan,
                        "measured": math.nan,
                    }
                )
        return pd.DataFrame(rows)
