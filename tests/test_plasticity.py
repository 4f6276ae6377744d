"""The estimator against a naive implementation of the definition, closed forms and invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.tiny_models import timm_to_hf, tiny_hf, tiny_timm
from vitplast.components import COMPONENTS
from vitplast.errors import VitplastError
from vitplast.models import as_vit
from vitplast.models.vit import ViT
from vitplast.plasticity import EmbeddingPlan, embedded_norms, measure_plasticity, measure_scales
from vitplast.reference import naive_outputs, naive_plasticity


def _images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _check_against_naive(model: torch.nn.Module, mode: str, n: int = 13, batch: int = 4) -> None:
    vit = as_vit(model)
    x, y = _images(n, seed=1), _images(n, seed=2)
    res = measure_plasticity(vit, x, y, mode=mode, batch_size=batch, keep_pairs=True)
    ref = naive_plasticity(vit, x, y, mode=mode)
    np.testing.assert_allclose(res.pairs, ref, rtol=1e-5, atol=1e-7)
    mean = res.table["mean"].to_numpy().reshape(vit.depth, 5)
    std = res.table["std"].to_numpy().reshape(vit.depth, 5)
    np.testing.assert_allclose(mean, ref.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, ref.std(0, ddof=1), rtol=1e-4)
    ci = res.table["ci95"].to_numpy().reshape(vit.depth, 5)
    np.testing.assert_allclose(ci, 1.96 * ref.std(0, ddof=1) / np.sqrt(n), rtol=1e-4)
    assert (res.table["n_pairs"] == n).all()
    assert list(res.table.columns) == ["layer", "component", "mean", "std", "ci95", "n_pairs", "rel_mean", "rel_ci95"]
    assert list(res.table["component"][:5]) == list(COMPONENTS)
    rel = res.table["rel_mean"].to_numpy().reshape(vit.depth, 5)
    np.testing.assert_allclose(rel, naive_relative(vit, x, y, mode).mean(0), rtol=1e-4)


@torch.no_grad()
def naive_relative(vit: ViT, x: torch.Tensor, y: torch.Tensor, mode: str) -> np.ndarray:
    """R per pair, literally: ratio * (||X|| + ||Y||) / (||f(X) - f(0)|| + ||f(Y) - f(0)||), f(0) computed."""
    out = np.zeros((len(x), vit.depth, 5))
    for layer, (blk, comps) in enumerate(zip(vit.blocks, naive_outputs(vit, x, y, mode), strict=True)):
        fns = {"ln1": blk.ln1, "mha": blk.mha, "ln2": blk.ln2, "fc1": blk.fc1, "fc2": blk.fc2}
        for c, comp in enumerate(COMPONENTS):
            ix, iy, ox, oy = (t.double() for t in comps[comp])
            width = blk.fc2.in_features if comp == "fc2" else ix.shape[-1]
            f0 = fns[comp](torch.zeros(1, ix.shape[1], width)).double()

            def fro(t: torch.Tensor) -> torch.Tensor:
                return torch.linalg.vector_norm(t, dim=(1, 2))

            ratio = fro(ox - oy) / fro(ix - iy)
            out[:, layer, c] = (ratio * (fro(ix) + fro(iy)) / (fro(ox - f0) + fro(oy - f0))).numpy()
    return out


@pytest.mark.parametrize("mode", ["embedding", "insitu"])
def test_embed_scale_ln_falls_as_one_over_c_linear_invariant_relative_invariant(mode: str) -> None:
    vit = as_vit(tiny_timm(dim=32, heads=4, seed=5))
    for blk in vit.blocks:
        blk.ln1.eps = blk.ln2.eps = 0.0  # LN(cX) = LN(X) exactly: P(LN) ~ 1/c without the eps correction
    x, y = _images(6, seed=3), _images(6, seed=4)
    base, *scaled = measure_scales(vit, x, y, (1.0, 3.0, 12.0), mode=mode, batch_size=4)
    for res, c in zip(scaled, (3.0, 12.0), strict=True):
        assert res.embed_scale == c
        b, t = base.table, res.table
        # in in-situ mode only the first LN1 sees the scaled embedding itself
        first = (b["layer"] == 0) & (b["component"] == "ln1")
        ln = first if mode == "insitu" else b["component"].isin(["ln1", "ln2"])
        np.testing.assert_allclose(t["mean"][ln], b["mean"][ln] / c, rtol=1e-5)
        np.testing.assert_allclose(t["rel_mean"][ln], b["rel_mean"][ln], rtol=1e-5)
        if mode == "embedding":
            lin = b["component"].isin(["fc1", "fc2"])
            np.testing.assert_allclose(t["mean"][lin], b["mean"][lin], rtol=1e-5)
            np.testing.assert_allclose(t["rel_mean"][lin], b["rel_mean"][lin], rtol=1e-5)
            assert not np.allclose(t["mean"][~lin & ~ln], b["mean"][~lin & ~ln], rtol=1e-3)  # MHA moves


@pytest.mark.parametrize("mode", ["embedding", "insitu"])
@pytest.mark.parametrize(
    ("dim", "heads", "mlp_ratio"),
    [(48, 4, 4.0), (48, 3, 2.5), (40, 5, 1.5), (64, 2, 3.0)],  # FFN width != 4d, head dims 12/16/8/32
)
def test_timm_matches_naive(mode: str, dim: int, heads: int, mlp_ratio: float) -> None:
    _check_against_naive(tiny_timm(dim=dim, heads=heads, mlp_ratio=mlp_ratio), mode)


@pytest.mark.parametrize("mode", ["embedding", "insitu"])
@pytest.mark.parametrize(("dim", "heads", "mlp"), [(48, 4, 192), (48, 6, 100), (36, 3, 36)])
def test_hf_matches_naive(mode: str, dim: int, heads: int, mlp: int) -> None:
    _check_against_naive(tiny_hf(dim=dim, heads=heads, mlp=mlp), mode)


def test_embedding_mode_uses_embedded_input_everywhere_and_zero_padded_fc2() -> None:
    """Closed form for the linear components: ratio = ||D W^T|| / ||D|| with D = E(x) - E(y), FC2 on W2[:, :d]."""
    vit = as_vit(tiny_timm(dim=48, heads=4, mlp_ratio=2.0, depth=3))
    x, y = _images(5, seed=3), _images(5, seed=4)
    res = measure_plasticity(vit, x, y, keep_pairs=True)
    with torch.no_grad():
        d = (vit.embed(x) - vit.embed(y)).double()
        for layer, blk in enumerate(vit.blocks):
            w1 = blk.fc1.weight.double()
            w2 = blk.fc2.weight.double()[:, : vit.dim]
            for col, w in ((3, w1), (4, w2)):
                expect = torch.linalg.vector_norm(d @ w.T, dim=(1, 2)) / torch.linalg.vector_norm(d, dim=(1, 2))
                np.testing.assert_allclose(res.pairs[:, layer, col], expect.numpy(), rtol=1e-6)


def test_hf_and_timm_copies_give_the_same_table() -> None:
    m = tiny_timm(dim=48, heads=4, depth=3)
    hf = timm_to_hf(m)
    x, y = _images(9, seed=5), _images(9, seed=6)
    with torch.no_grad():
        np.testing.assert_allclose(m(x).numpy(), hf(pixel_values=x).logits.numpy(), rtol=1e-4, atol=1e-5)
    for mode in ("embedding", "insitu"):
        a = measure_plasticity(m, x, y, mode=mode).table
        b = measure_plasticity(hf, x, y, mode=mode).table
        np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-4)
        np.testing.assert_allclose(a["std"], b["std"], rtol=1e-3, atol=1e-7)


def test_result_does_not_depend_on_batching_or_stream_chunking() -> None:
    vit = as_vit(tiny_timm())
    x, y = _images(11, seed=7), _images(11, seed=8)
    whole = measure_plasticity(vit, x, y, batch_size=64).table
    one = measure_plasticity(vit, x, y, batch_size=1).table
    # Source and target as iterables of batches of different sizes, with labels.
    src = [(x[i : i + 3], torch.zeros(len(x[i : i + 3]))) for i in range(0, 11, 3)]
    tgt = [y[i : i + 5] for i in range(0, 11, 5)]
    chunked = measure_plasticity(vit, src, tgt, batch_size=4).table
    for t in (one, chunked):
        np.testing.assert_allclose(t["mean"], whole["mean"], rtol=1e-6)
        np.testing.assert_allclose(t["std"], whole["std"], rtol=1e-5)


def test_zero_distance_pairs_are_skipped_and_counted() -> None:
    vit = as_vit(tiny_timm())
    x, y = _images(10, seed=9), _images(10, seed=10)
    y[[2, 7]] = x[[2, 7]]
    for mode in ("embedding", "insitu"):
        res = measure_plasticity(vit, x, y, mode=mode, batch_size=3, keep_pairs=True)
        assert res.n_skipped == 2 and res.n_pairs == 8
        assert (res.table["n_pairs"] == 8).all()
        assert np.isfinite(res.table[["mean", "std", "ci95"]].to_numpy()).all()
        assert sorted(res.pair_index.tolist()) == [0, 1, 3, 4, 5, 6, 8, 9]
        keep = [0, 1, 3, 4, 5, 6, 8, 9]
        ref = naive_plasticity(vit, x[keep], y[keep], mode=mode)
        np.testing.assert_allclose(res.pairs, ref, rtol=1e-5, atol=1e-7)


def test_max_pairs_and_shorter_stream() -> None:
    vit = as_vit(tiny_timm())
    res = measure_plasticity(vit, _images(10), _images(6, seed=3), batch_size=4)
    assert res.n_pairs == 6
    res = measure_plasticity(vit, _images(10), _images(10, seed=3), batch_size=4, max_pairs=5)
    assert res.n_pairs == 5


def test_layernorm_ratio_invariant_to_a_shared_per_token_shift() -> None:
    """LN(X + c 1^T) = LN(X) per token, and ||(X+c) - (Y+c)|| = ||X - Y||: LN ratios must not move."""
    vit = as_vit(tiny_timm(depth=3))
    plan = EmbeddingPlan(vit, torch.device("cpu"))
    x, y = _images(6, seed=11), _images(6, seed=12)
    with torch.no_grad():
        xy = vit.embed(torch.cat([x, y]))
        c = 3.0 * torch.randn(6, xy.shape[1], 1)
        shifted = xy + torch.cat([c, c])
    n0, d0 = embedded_norms(vit, plan, xy)
    n1, d1 = embedded_norms(vit, plan, shifted)
    torch.testing.assert_close(d0, d1)
    torch.testing.assert_close(n0[:, [0, 2]], n1[:, [0, 2]], rtol=1e-5, atol=1e-7)
    assert not torch.allclose(n0[:, 1], n1[:, 1], rtol=1e-3)  # MHA does move: the test can tell


def test_linear_ratio_at_most_spectral_norm() -> None:
    vit = as_vit(tiny_timm(dim=48, heads=4, mlp_ratio=3.0, depth=3))
    res = measure_plasticity(vit, _images(16, seed=13), _images(16, seed=14), keep_pairs=True)
    for layer, blk in enumerate(vit.blocks):
        s1 = torch.linalg.matrix_norm(blk.fc1.weight.double(), ord=2).item()
        s2 = torch.linalg.matrix_norm(blk.fc2.weight.double()[:, : vit.dim], ord=2).item()
        assert res.pairs[:, layer, 3].max() <= s1 * (1 + 1e-9)
        assert res.pairs[:, layer, 4].max() <= s2 * (1 + 1e-9)


def test_attained_spectral_norm_for_a_rank_one_difference() -> None:
    """If X - Y = u v^T with v the top right-singular vector of W1, the FC1 ratio equals ||W1||_2."""
    vit = as_vit(tiny_timm(depth=1))
    plan = EmbeddingPlan(vit, torch.device("cpu"))
    w1 = vit.blocks[0].fc1.weight.detach().double()
    v = torch.linalg.svd(w1).Vh[0].float()
    x = torch.randn(1, 17, vit.dim)
    u = torch.randn(1, 17, 1)
    num, den = embedded_norms(vit, plan, torch.cat([x, x + u * v]))
    assert num[0, 3, 0] / den[0] == pytest.approx(torch.linalg.matrix_norm(w1, ord=2).item(), rel=1e-5)


def test_bad_inputs() -> None:
    vit = as_vit(tiny_timm())
    with pytest.raises(VitplastError, match="mode"):
        measure_plasticity(vit, _images(4), _images(4), mode="nope")
    with pytest.raises(VitplastError, match="shape"):
        measure_plasticity(vit, _images(4), _images(4, size=8))
    narrow = tiny_timm(dim=48, mlp_ratio=0.5)
    with pytest.raises(VitplastError, match="FFN width"):
        measure_plasticity(narrow, _images(4), _images(4))
    # in-situ mode has no zero-padding and accepts a narrow FFN
    assert measure_plasticity(narrow, _images(4), _images(4, seed=1), mode="insitu").n_pairs == 4
