"""Upper bounds on plasticity (README, "Theory: bounds on plasticity"): closed forms against naive computations, attainment of the
LayerNorm bound, per-head slicing of attention, rigour on measured pairs, the check and the rankings."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from torch.nn.attention import SDPBackend, sdpa_kernel

from tests.tiny_models import timm_to_hf, tiny_timm
from vitplast.bounds import (
    PRIMARY,
    BoundsResult,
    TokenStats,
    bounds_from_stats,
    check_bounds,
    compute_bounds,
    ranking_agreement,
    segment_min_variance,
)
from vitplast.bounds.formulas import (
    castin_factor,
    head_terms,
    layernorm_bound,
    mha_bound,
    mha_bound_qbias,
    spectral_norm,
)
from vitplast.cli import main
from vitplast.components import COMPONENTS, THEORY_RANKING
from vitplast.errors import VitplastError
from vitplast.models import ViT, as_vit, load_model
from vitplast.plasticity import PlasticityResult, measure_plasticity


def np_spec(w: torch.Tensor | np.ndarray) -> float:
    a = w.detach().double().numpy() if isinstance(w, torch.Tensor) else w
    return float(np.linalg.svd(a, compute_uv=False)[0])


def tiny(**kw: Any) -> ViT:
    """A tiny random timm ViT whose data config states its real input size (bare timm models say 224)."""
    m = tiny_timm(**kw)
    m.pretrained_cfg = {"input_size": (3, *m.patch_embed.img_size)}
    return as_vit(m)


def fake_stats(vit: ViT, r_max: float = 5.0, r_mean: float = 3.0, s2: float = 0.25) -> TokenStats:
    return TokenStats(8, vit.seq_len(), vit.dim, r_max, r_mean, s2, s2)


def row(res: BoundsResult, layer: int, comp: str, variant: str) -> pd.Series:
    t = res.table
    sel = t[(t["layer"] == layer) & (t["component"] == comp) & (t["variant"] == variant)]
    assert len(sel) == 1
    return sel.iloc[0]


# --- linear layers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (24, 24), (96, 24)])
def test_spectral_norm_is_the_largest_singular_value(shape: tuple[int, int]) -> None:
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    assert spectral_norm(w) == pytest.approx(np_spec(w), rel=1e-12)


def test_fc_rows_are_spectral_norms_of_the_right_blocks() -> None:
    vit = tiny(dim=24, depth=2, heads=3, mlp_ratio=3.0)
    res = bounds_from_stats(vit, fake_stats(vit))
    d = vit.dim
    for layer, blk in enumerate(vit.blocks):
        assert row(res, layer, "fc1", "spectral")["bound"] == pytest.approx(np_spec(blk.fc1.weight), rel=1e-10)
        first_d = np_spec(blk.fc2.weight[:, :d])
        assert row(res, layer, "fc2", "spectral_first_d")["bound"] == pytest.approx(first_d, rel=1e-10)
        full = np_spec(blk.fc2.weight)
        assert row(res, layer, "fc2", "spectral_full")["bound"] == pytest.approx(full, rel=1e-10)
        assert first_d < full * (1 - 1e-3)  # the block matters: a test using the full matrix would fail


# --- LayerNorm --------------------------------------------------------------------------------------


def test_segment_min_variance_matches_a_dense_grid() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, dtype=torch.float64, generator=g) * torch.rand(50, 1, dtype=torch.float64, generator=g)
    y = torch.randn(50, 6, dtype=torch.float64, generator=g)
    y[:10] = -x[:10] + 0.3  # segments through a constant token: interior minimum 0, endpoints far from it
    got = segment_min_variance(x, y)
    t = torch.linspace(0, 1, 20001, dtype=torch.float64)[:, None, None]
    grid = ((1 - t) * x + t * y).var(-1, unbiased=False).min(0).values
    assert torch.all(got <= grid + 1e-12)
    assert torch.allclose(got, grid, atol=1e-6)
    ends = torch.minimum(x.var(-1, unbiased=False), y.var(-1, unbiased=False))
    assert torch.all(got[:10] < 1e-20) and torch.all(ends[:10] > 0.01)


def test_layernorm_jacobian_norm_is_at_most_max_gamma_over_sigma() -> None:
    g = torch.Generator().manual_seed(1)
    d, eps = 9, 1e-5
    for trial in range(6):
        gamma = (
            torch.randn(d, dtype=torch.float64, generator=g) if trial else torch.full((d,), -1.7, dtype=torch.float64)
        )
        x = torch.randn(d, dtype=torch.float64, generator=g) * (0.1 + trial)

        def ln(z: torch.Tensor, gamma: torch.Tensor = gamma) -> torch.Tensor:
            return torch.nn.functional.layer_norm(z, (d,), gamma, None, eps)

        jac = torch.autograd.functional.jacobian(ln, x)
        norm = float(torch.linalg.matrix_norm(jac, ord=2))
        bound = layernorm_bound(gamma, eps, float(x.var(unbiased=False)))
        assert norm <= bound * (1 + 1e-12)
        if trial == 0:  # constant gamma: the bound is the Jacobian's norm (eigenvalue 1 off span(1, x̂))
            assert norm == pytest.approx(bound, rel=1e-9)


def test_layernorm_bound_is_attained_by_a_constructed_pair() -> None:
    """Tokens of X; the one of least variance moves by a tiny step along u, orthogonal to 1 and to x̂ and
    supported where |gamma| is maximal: the ratio tends to max|gamma| / sqrt(var + eps)."""
    g = torch.Generator().manual_seed(2)
    d, n, eps = 10, 4, 1e-6
    gamma = torch.rand(d, dtype=torch.float64, generator=g) * 2 - 1
    gamma[:3] = torch.tensor([2.5, -2.5, 2.5], dtype=torch.float64)
    ln = torch.nn.LayerNorm(d, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        ln.weight.copy_(gamma)
        ln.bias.copy_(torch.randn(d, dtype=torch.float64, generator=g))
    x = torch.randn(n, d, dtype=torch.float64, generator=g) * torch.tensor([[2.0], [0.3], [1.0], [3.0]])
    k = int(x.var(-1, unbiased=False).argmin())
    xh = (x[k] - x[k].mean()) / (x[k].var(unbiased=False) + eps).sqrt()
    u3 = torch.linalg.cross(torch.ones(3, dtype=torch.float64), xh[:3])  # ⟂ 1 and ⟂ x̂ on coords 0..2
    u = torch.zeros(d, dtype=torch.float64)
    u[:3] = u3 / u3.norm()
    y = x.clone()
    y[k] += 1e-5 * u
    with torch.no_grad():
        ratio = float((ln(y) - ln(x)).norm() / (y - x).norm())
    s2 = float(segment_min_variance(x, y).min())
    assert s2 == pytest.approx(float(x[k].var(unbiased=False)), rel=1e-9)
    bound = layernorm_bound(gamma, eps, s2)
    assert ratio <= bound * (1 + 1e-9)
    assert ratio >= bound * (1 - 1e-4)


def test_layernorm_endpoint_bound_holds_on_pairs_through_the_singular_line() -> None:
    g = torch.Generator().manual_seed(3)
    d, eps = 6, 1e-4
    gamma = torch.randn(d, dtype=torch.float64, generator=g)
    x = torch.randn(2000, d, dtype=torch.float64, generator=g)
    y = -x + 0.01 * torch.randn(2000, d, dtype=torch.float64, generator=g) + 3.0  # passes near constant tokens

    def ln(z: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.layer_norm(z, (d,), gamma, None, eps)

    ratio = (ln(x) - ln(y)).norm(dim=-1) / (x - y).norm(dim=-1)
    v = torch.minimum(x.var(-1, unbiased=False), y.var(-1, unbiased=False))
    bound = gamma.abs().max() / (v + eps).sqrt()
    assert torch.all(ratio <= bound * (1 + 1e-12))


# --- attention --------------------------------------------------------------------------------------


def set_heads(vit: ViT, layer: int, heads: list[dict[str, torch.Tensor]], bias: bool = False) -> None:
    """Write per-head Q/K/V (rows, [d_h, d]) and O (columns, [d, d_h]) into the model through the ViT view."""
    att = vit.blocks[layer].attention()
    with torch.no_grad():
        att.q.copy_(torch.cat([h["q"] for h in heads]))
        att.k.copy_(torch.cat([h["k"] for h in heads]))
        att.v.copy_(torch.cat([h["v"] for h in heads]))
        att.o.copy_(torch.cat([h["o"] for h in heads], dim=1))
        for name in ("q_bias", "k_bias", "v_bias"):
            b = getattr(att, name)
            if b is not None:
                b.copy_(torch.cat([h[name[0] + "b"] for h in heads]) if bias else torch.zeros_like(b))


def random_heads(d: int, num: int, seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    dh = d // num
    out = []
    for h in range(num):
        s = 0.3 * (h + 1) ** 1.5  # heads of very different scales
        out.append(
            {
                "q": s * torch.randn(dh, d, generator=g),
                "k": torch.randn(dh, d, generator=g) / s,
                "v": s * torch.randn(dh, d, generator=g),
                "o": torch.randn(d, dh, generator=g) / (h + 1),
                "qb": torch.randn(dh, generator=g),
                "kb": torch.randn(dh, generator=g),
                "vb": torch.randn(dh, generator=g),
            }
        )
    return out


def naive_mha(x: torch.Tensor, heads: list[dict[str, torch.Tensor]], o_bias: torch.Tensor) -> torch.Tensor:
    out = o_bias.expand(*x.shape[:-1], -1).clone()
    for h in heads:
        q, k, v = x @ h["q"].T + h["qb"], x @ h["k"].T + h["kb"], x @ h["v"].T + h["vb"]
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        out = out + (p @ v) @ h["o"].T
    return out


def brute_bound(heads: list[dict[str, torch.Tensor]], n: int, r: float) -> float:
    """The section 2 formula from explicit per-head matrices; A^h from the bilinear form of the logits."""
    total = 0.0
    for h in heads:
        d = h["q"].shape[1]
        eye = torch.eye(d, dtype=torch.float64)
        a = (eye @ h["q"].double().T) @ (eye @ h["k"].double().T).T / math.sqrt(h["q"].shape[0])  # A_ab = q(e_a).k(e_b)
        total += np_spec(h["o"]) * np_spec(h["v"]) * math.sqrt(3 * n + (12 * n + 3) * r**4 * np_spec(a) ** 2)
    return total


def test_mha_bound_slices_heads_by_rows_of_qkv_and_columns_of_o() -> None:
    vit = tiny(dim=12, depth=1, heads=3)
    heads = random_heads(12, 3, seed=4)
    set_heads(vit, 0, heads, bias=True)
    x = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(5))
    o_bias = vit.blocks[0].attention().o_bias
    assert o_bias is not None
    # the packing is what the model computes (checked against an independent per-head implementation)
    torch.testing.assert_close(vit.blocks[0].mha(x), naive_mha(x, heads, o_bias.detach()), rtol=1e-4, atol=1e-5)
    n, r = vit.seq_len(), 4.0
    expected = brute_bound(heads, n, r)
    terms = head_terms(vit.blocks[0].attention())
    assert mha_bound(terms, n, r) == pytest.approx(expected, rel=1e-8)
    res = bounds_from_stats(vit, fake_stats(vit, r_max=r, r_mean=2.0))
    assert row(res, 0, "mha", "max_r")["bound"] == pytest.approx(expected, rel=1e-8)
    assert row(res, 0, "mha", "paper_mean_r")["bound"] == pytest.approx(brute_bound(heads, n, 2.0), rel=1e-8)
    assert row(res, 0, "mha", "max_r")["n"] == n == (16 // 4) ** 2 + 1
    # the reference code's mistake (input columns of Q/K/V per head) gives a different number
    att, dh = vit.blocks[0].attention(), 4
    wrong = [
        {"q": att.q[:, i * dh : (i + 1) * dh].T, "k": att.k[:, i * dh : (i + 1) * dh].T,
         "v": att.v[:, i * dh : (i + 1) * dh].T, "o": att.o[:, i * dh : (i + 1) * dh]}
        for i in range(3)
    ]  # fmt: skip
    assert abs(brute_bound(wrong, n, r) - expected) > 0.05 * expected
    # and so does the transposed product W_Q W_K^T of the nn.Linear layout (d_h x d_h)
    alt = sum(np_spec(h["o"]) * np_spec(h["v"]) * castin_factor(n, r, np_spec(h["q"] @ h["k"].T) / 2.0) for h in heads)
    assert abs(alt - expected) > 0.05 * expected


def test_query_bias_variant_equals_formula_without_bias_and_matches_stacked_norm() -> None:
    vit = tiny(dim=12, depth=1, heads=3)
    heads = random_heads(12, 3, seed=6)
    set_heads(vit, 0, heads, bias=False)
    terms = head_terms(vit.blocks[0].attention())
    assert mha_bound_qbias(terms, 65, 3.0)[0] == pytest.approx(mha_bound(terms, 65, 3.0), rel=1e-12)
    set_heads(vit, 0, heads, bias=True)
    terms = head_terms(vit.blocks[0].attention())
    for h, t in zip(heads, terms, strict=True):
        a = h["q"].double().T @ h["k"].double() / 2.0
        c = h["k"].double().T @ h["qb"].double() / 2.0
        for aug in (0.1, 1.0, 7.0):
            stacked = torch.cat([a, c[None] / aug])
            assert t.a_norm_aug(aug) == pytest.approx(np_spec(stacked), rel=1e-8)
    b, chosen = mha_bound_qbias(terms, 65, 3.0)
    assert b > mha_bound(terms, 65, 3.0) and all(a > 0 for a in chosen)


def _max_jacobian_norm(fn: Any, x0: torch.Tensor, r: float, steps: int = 60) -> float:
    """Projected gradient ascent of ||J_fn(X)||_2 over sequences with token norms <= r (float64)."""
    x = (x0 * (r / x0.norm(dim=-1, keepdim=True).clamp(min=r))).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.03)
    best = 0.0
    with sdpa_kernel(SDPBackend.MATH):  # double backward through the attention kernel
        for _ in range(steps):
            best = max(best, _ascent_step(fn, x, opt, r))
    return best


def _ascent_step(fn: Any, x: torch.Tensor, opt: torch.optim.Optimizer, r: float) -> float:
    jac = torch.autograd.functional.jacobian(fn, x, create_graph=True).reshape(x.numel(), x.numel())
    s = torch.linalg.matrix_norm(jac, ord=2)
    opt.zero_grad()
    (-s).backward()
    opt.step()
    with torch.no_grad():
        x.mul_(r / x.norm(dim=-1, keepdim=True).clamp(min=r))
    return float(s.detach())


def test_mha_bound_survives_adversarial_search_and_query_bias_needs_its_variant() -> None:
    torch.manual_seed(7)
    vit = tiny(dim=4, depth=1, heads=1)
    vit.module.double()
    blk = vit.blocks[0]
    n, r = 3, 1.5
    # no bias: the section 2 formula bounds the Jacobian wherever tokens have norm <= r
    heads = [{"q": 2 * torch.randn(4, 4), "k": torch.randn(4, 4), "v": torch.randn(4, 4), "o": torch.randn(4, 4)}]
    set_heads(vit, 0, heads)
    found = _max_jacobian_norm(lambda z: blk.mha(z[None])[0], torch.randn(n, 4, dtype=torch.float64), r)
    assert found <= mha_bound(head_terms(blk.attention()), n, r)
    # a large query bias: logits c^T x_j switch the softmax between keys, the bias-free formula fails
    q0 = {"q": torch.zeros(4, 4), "k": torch.eye(4), "v": torch.eye(4), "o": torch.eye(4),
          "qb": torch.tensor([30.0, 0, 0, 0]), "kb": torch.zeros(4), "vb": torch.zeros(4)}  # fmt: skip
    set_heads(vit, 0, [q0], bias=True)
    x = torch.tensor([[0.0, 1, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0]], dtype=torch.float64)
    found = _max_jacobian_norm(lambda z: blk.mha(z[None])[0], x, r, steps=5)
    terms = head_terms(blk.attention())
    assert found > mha_bound(terms, n, r)
    assert found <= mha_bound_qbias(terms, n, r)[0]


# --- rigour on measured pairs, and the data quantities ------------------------------------------------


def _images(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(n, 3, size, size, generator=g)
    tgt = 0.5 * torch.randn(n, 3, size, size, generator=g) + 0.2
    tgt[:2] = src[:2] + 1e-3 * torch.randn(2, 3, size, size, generator=g)  # near-identical pairs
    return src, tgt


@pytest.mark.parametrize("which", ["tiny_biased", "micro"])
def test_rigorous_bounds_hold_on_every_measured_pair(which: str) -> None:
    if which == "micro":
        vit = load_model("timm:vit_micro_patch4_32", random_weights=True, seed=3)
    else:
        m = tiny_timm(dim=24, depth=2, heads=3, seed=8)
        with torch.no_grad():
            for p in m.parameters():
                if p.ndim == 1 and p.shape[0] == 72:  # qkv biases, large, so that the query bias matters
                    p.copy_(3 * torch.randn_like(p))
        m.pretrained_cfg = {"input_size": (3, 16, 16)}
        vit = as_vit(m)
    size = vit.data_config.input_size
    src, tgt = _images(10, size, seed=9)
    res = compute_bounds(vit, src, tgt, batch_size=4)
    meas = measure_plasticity(vit, src, tgt, batch_size=3, keep_pairs=True)
    assert meas.n_pairs == 10
    violations = check_bounds(res, meas)
    assert violations.empty, violations
    if which == "tiny_biased":
        assert not row(res, 0, "mha", "max_r")["rigorous"]  # query bias present: bias-free formula not a bound
    # the data quantities are what they say
    with torch.no_grad():
        ex, ey = vit.embed(src).double(), vit.embed(tgt).double()
    st = res.stats
    assert st.seq_len == vit.seq_len() == ex.shape[1] == (size // 4) ** 2 + 1
    assert st.r_max == pytest.approx(float(torch.cat([ex, ey]).norm(dim=-1).max()), rel=1e-6)
    assert st.r_mean_target == pytest.approx(float(ey.norm(dim=-1).mean()), rel=1e-6)
    grid = min(float(((1 - t) * ex + t * ey).var(-1, unbiased=False).min()) for t in np.linspace(0, 1, 201))
    assert st.sigma2_min <= grid + 1e-12
    assert st.sigma2_min == pytest.approx(grid, rel=1e-3, abs=1e-9)
    assert row(res, 0, "mha", "max_r_qbias")["r"] == st.r_max
    assert row(res, 0, "mha", "paper_mean_r")["r"] == st.r_mean_target


def _result_with(pairs: np.ndarray, index: np.ndarray, mode: str = "embedding") -> PlasticityResult:
    return PlasticityResult(pd.DataFrame(), mode, len(pairs), 0, 0.0, pairs, index)


def test_check_reports_every_violation_with_pair_value_and_margin() -> None:
    vit = tiny(dim=12, depth=2, heads=3)
    res = bounds_from_stats(vit, fake_stats(vit))
    pairs = np.zeros((4, 2, 5))
    fc1 = float(row(res, 1, "fc1", "spectral")["bound"])
    pairs[2, 1, COMPONENTS.index("fc1")] = fc1 * 1.5
    pairs[3, 1, COMPONENTS.index("fc1")] = fc1 * (1 + 1e-7)  # within rounding tolerance
    v = check_bounds(res, _result_with(pairs, np.array([0, 1, 5, 6])))
    assert len(v) == 1
    got = v.iloc[0]
    assert (got["layer"], got["component"], got["variant"], got["pair"]) == (1, "fc1", "spectral", 5)
    assert got["value"] == pytest.approx(1.5 * fc1) and got["margin"] == pytest.approx(-0.5 * fc1)
    with pytest.raises(VitplastError, match="embedding mode"):
        check_bounds(res, _result_with(pairs, np.arange(4), mode="insitu"))
    with pytest.raises(VitplastError, match="only the first 8"):
        check_bounds(res, _result_with(pairs, np.array([0, 1, 2, 8])))


# --- rankings --------------------------------------------------------------------------------------


def _table(means: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"layer": i, "component": c, "mean": m} for c, ms in means.items() for i, m in enumerate(ms)])


def test_ranking_agreement_is_spearman_against_the_theory() -> None:
    theory = {c: [10.0 - i, 9.0 - i] for i, c in enumerate(THEORY_RANKING)}
    assert ranking_agreement(_table(theory))["spearman"] == pytest.approx(1.0)
    reverse = {c: [float(i), float(i) + 0.5] for i, c in enumerate(THEORY_RANKING)}
    rk = ranking_agreement(_table(reverse))
    assert rk["spearman"] == pytest.approx(-1.0)
    assert rk["measured"] == list(reversed(THEORY_RANKING))
    rng = np.random.default_rng(0)
    table = _table({c: list(rng.random(3)) for c in COMPONENTS})
    rk = ranking_agreement(table)
    means = table.groupby("component")["mean"].mean()
    expected = spearmanr([THEORY_RANKING.index(c) for c in COMPONENTS], [-means[c] for c in COMPONENTS]).statistic
    assert rk["spearman"] == pytest.approx(expected)
    layer0 = table[table["layer"] == 0].set_index("component")["mean"]
    exp0 = spearmanr([THEORY_RANKING.index(c) for c in COMPONENTS], [-layer0[c] for c in COMPONENTS]).statistic
    assert rk["per_layer"][0] == pytest.approx(exp0)


# --- command line ----------------------------------------------------------------------------------


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


MICRO = ["--model", "timm:vit_micro_patch4_32", "--random-weights", "--data", "random:12", "--source", "random:12"]


def test_cli_bounds_strict_exits_1_on_a_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import vitplast.bounds.run as bounds_run

    real = bounds_run.bounds_from_stats

    def shrunk(*args: Any, **kwargs: Any) -> Any:  # bounds a million times too small: every pair violates them
        res = real(*args, **kwargs)
        res.table["bound"] = res.table["bound"] * 1e-6
        return res

    monkeypatch.setattr(bounds_run, "bounds_from_stats", shrunk)
    args = ["bounds", *MICRO, "--pairs", "4", "--batch-size", "4"]
    code, stdout, _ = run([*args, "--out", str(tmp_path / "a")], capsys)
    assert code == 0 and "VIOLATIONS" in stdout and not pd.read_csv(tmp_path / "a" / "violations.csv").empty
    code, stdout, _ = run([*args, "--strict", "--out", str(tmp_path / "b")], capsys)
    assert code == 1 and "VIOLATIONS" in stdout
    monkeypatch.setattr(bounds_run, "bounds_from_stats", real)
    code, _, err = run([*args, "--strict", "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err


def test_cli_bounds_writes_table_check_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b"
    code, stdout, err = run(["bounds", *MICRO, "--pairs", "6", "--batch-size", "4", "--out", str(out)], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "bounds.csv")
    assert {"layer", "component", "variant", "bound", "rigorous", "r", "n", "sigma_min"} <= set(table.columns)
    assert set(table["component"]) == set(COMPONENTS) and table["layer"].nunique() == 6
    assert all(((table["component"] == c) & (table["variant"] == v)).sum() == 6 for c, v in PRIMARY.items())
    record = json.loads((out / "bounds.json").read_text())
    assert record["check"]["status"] == "checked" and record["check"]["all_hold"]
    assert pd.read_csv(out / "violations.csv").empty
    assert (out / "bounds.png").stat().st_size > 10_000
    assert "Spearman" in stdout and "rigorous bounds hold" in stdout
    # a plasticity table given: drawn and ranked instead of the measured one; the check uses this run's pairs
    meas = pd.read_csv(out / "check.csv")
    prim = meas[[PRIMARY[c] == v for c, v in zip(meas["component"], meas["variant"], strict=True)]]
    prim = prim.rename(columns={"measured_mean": "mean"})[["layer", "component", "mean"]]
    prim.to_csv(tmp_path / "plasticity.csv", index=False)
    code, stdout, err = run(
        ["bounds", *MICRO, "--pairs", "6", "--out", str(tmp_path / "c"), "--plasticity", str(tmp_path)], capsys
    )
    assert code == 0, err
    rec2 = json.loads((tmp_path / "c" / "bounds.json").read_text())
    assert rec2["check"]["status"] == "checked" and rec2["measured_from"].endswith("plasticity.csv")
    assert rec2["ranking"]["spearman"] == pytest.approx(record["ranking"]["spearman"])


@pytest.mark.parametrize(
    ("extra", "msg"),
    [(["--pairs", "1"], "--pairs"), (["--plasticity", "/nonexistent/p.csv"], "no plasticity table")],
)
def test_cli_bounds_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], msg: str) -> None:
    out = tmp_path / "never"
    code, _, err = run(["bounds", *MICRO, "--out", str(out), *extra], capsys)
    assert code == 2 and err.startswith("error:") and msg in err and "Traceback" not in err
    assert not out.exists()


def test_timm_and_hf_copies_have_the_same_bounds() -> None:
    m = tiny_timm(dim=24, depth=2, heads=3, seed=11)
    with torch.no_grad():
        for p in m.parameters():
            if p.ndim == 1 and p.shape[0] == 72:
                p.copy_(torch.randn_like(p))  # non-zero query biases: the q-bias variant differs from max_r
    m.pretrained_cfg = {"input_size": (3, 16, 16)}
    a, b = as_vit(m), as_vit(timm_to_hf(m))
    src, tgt = _images(4, 16, seed=12)
    ra, rb = compute_bounds(a, src, tgt), compute_bounds(b, src, tgt)
    assert ra.stats.seq_len == rb.stats.seq_len == 17
    pd.testing.assert_frame_equal(ra.table, rb.table, rtol=1e-5)


def test_analyze_with_bounds_adds_table_check_and_ranking() -> None:
    from dataclasses import replace

    from vitplast.analysis import AnalyzeConfig, run_analysis

    cfg = AnalyzeConfig(
        model="timm:vit_micro_patch4_32", random_weights=True, source="random:8", target="random:8", pairs=6,
        batch_size=4, with_bounds=True, device="cpu",
    )  # fmt: skip
    res = run_analysis(cfg)
    assert res.bounds is not None
    extra = res.record["bounds"]
    assert extra["check"]["all_hold"] and extra["check"]["n_pairs"] == res.plasticity.n_pairs
    assert extra["ranking"]["spearman"] == pytest.approx(ranking_agreement(res.plasticity.table)["spearman"])
    assert len(res.bounds.bounds.table) == 6 * 12  # 3 LN1 + 3 MHA + 3 LN2 + 1 FC1 + 2 FC2 rows per layer
    # the bounds' data quantities come from the analysis's own pass: the same as streaming the pairs again
    vit = load_model(cfg.model, random_weights=True, seed=cfg.seed)
    from vitplast.analysis import image_loader

    src, _ = image_loader(vit, cfg.source, "test", 6, 0, "random", 4, 0)
    tgt, _ = image_loader(vit, cfg.target, "test", 6, 0, "random", 4, 0, stream=1)
    again = compute_bounds(vit, src, tgt, 4, "cpu", max_pairs=6)
    pd.testing.assert_frame_equal(res.bounds.bounds.table, again.table)
    res = run_analysis(replace(cfg, mode="insitu"))
    assert res.bounds is None and "embedding mode" in res.record["bounds"]["note"]
