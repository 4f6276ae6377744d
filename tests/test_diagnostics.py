"""Regime diagnostics and aggregation against naive computations of their definitions (docs/diagnostics.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from tests.test_cli_analyze import MICRO, make_folder, run
from tests.tiny_models import tiny_timm
from vitplast.components import COMPONENTS
from vitplast.diagnostics import Diagnostics, DiagnosticsAccumulator, attention_probs, prefix_token_count
from vitplast.models import ViT, as_vit
from vitplast.plasticity import layer_ranking, measure_scales, summarize


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _diagnose(vit_mode: str = "embedding") -> tuple[ViT, torch.Tensor, torch.Tensor, Diagnostics]:
    vit = as_vit(tiny_timm(dim=32, heads=4, seed=7))
    x, y = _images(7, 1), _images(7, 2)
    acc = DiagnosticsAccumulator(vit, vit_mode)
    measure_scales(vit, x, y, mode=vit_mode, batch_size=3, on_embedded=acc.update)  # batches of 3, 3, 1
    return vit, x, y, acc.result()


@torch.no_grad()
def test_token_statistics_match_a_naive_computation() -> None:
    vit, x, y, d = _diagnose()
    assert d.prefix_tokens == 1 and d.seq_len == 17
    for stream, img in (("source", x), ("target", y)):
        e = vit.embed(img).double().numpy()
        for group, t in (("patch", e[:, 1:]), ("prefix", e[:, :1]), ("all", e)):
            row = d.tokens[(d.tokens["stream"] == stream) & (d.tokens["tokens"] == group)].iloc[0]
            norms = np.sqrt((t**2).sum(-1))
            assert row["n_tokens"] == t.shape[0] * t.shape[1]
            assert row["rms"] == pytest.approx(math.sqrt((t**2).mean()), rel=1e-6)
            assert row["std"] == pytest.approx(t.std(-1).mean(), rel=1e-6)
            assert row["r_mean"] == pytest.approx(norms.mean(), rel=1e-6)
            assert row["r_max"] == pytest.approx(norms.max(), rel=1e-6)


@torch.no_grad()
def test_attention_probabilities_reproduce_the_models_attention_output() -> None:
    vit = as_vit(tiny_timm(dim=32, heads=4, seed=3))
    a = torch.randn(2, 17, 32)
    for blk in vit.blocks:
        w = blk.attention()
        p = attention_probs(a, w.q, w.q_bias, w.k, w.k_bias, w.num_heads)
        assert torch.allclose(p.sum(-1), torch.ones(2, 4, 17), atol=1e-6)
        heads = [p[:, h] @ (a @ w.head(h)[2].T + w.v_bias[h * 8 : (h + 1) * 8]) for h in range(4)]  # type: ignore[index]
        out = sum(hv @ w.head(h)[3].T for h, hv in enumerate(heads)) + w.o_bias
        torch.testing.assert_close(out, blk.mha(a), rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_attention_entropy_hidden_scale_and_layernorm_match_naive_loops() -> None:
    vit, x, y, d = _diagnose("insitu")
    for stream, img in (("source", x), ("target", y)):
        h = vit.embed(img)
        for layer, blk in enumerate(vit.blocks):
            row = d.layers[(d.layers["layer"] == layer) & (d.layers["stream"] == stream)].iloc[0]
            assert row["hidden_rms"] == pytest.approx(float(h.double().pow(2).mean().sqrt()), rel=1e-6)
            assert row["hidden_std"] == pytest.approx(float(h.double().std(-1, unbiased=False).mean()), rel=1e-6)
            w = blk.attention()
            a = blk.ln1(h)
            ents, maxes = [], []
            for b in range(len(img)):
                for hd in range(w.num_heads):
                    q_w, k_w, _, _ = w.head(hd)
                    sl = slice(hd * w.head_dim, (hd + 1) * w.head_dim)
                    q = a[b] @ q_w.T + w.q_bias[sl]  # type: ignore[index]
                    k = a[b] @ k_w.T + w.k_bias[sl]  # type: ignore[index]
                    for i in range(a.shape[1]):
                        row_p = torch.softmax(q[i] @ k.T / math.sqrt(w.head_dim), 0).double()
                        ents.append(float(-(row_p * row_p.log()).sum()) / math.log(a.shape[1]))
                        maxes.append(float(row_p.max()))
            assert row["attn_entropy"] == pytest.approx(np.mean(ents), rel=1e-5)
            assert row["attn_max"] == pytest.approx(np.mean(maxes), rel=1e-5)
            h = blk.forward(h)
    for layer, blk in enumerate(vit.blocks):
        for comp, ln in (("ln1", blk.ln1), ("ln2", blk.ln2)):
            row = d.layernorm[(d.layernorm["layer"] == layer) & (d.layernorm["component"] == comp)].iloc[0]
            g = ln.weight.double()
            assert row["gamma_rms"] == pytest.approx(float(g.pow(2).mean().sqrt()))
            assert row["gamma_max_abs"] == pytest.approx(float(g.abs().max()))
            assert row["gamma_dev_rms"] == pytest.approx(float((g - 1).pow(2).mean().sqrt()))
            col = "hidden_std" if comp == "ln1" else "ln2_in_std"
            sigma = d.layers[d.layers["layer"] == layer][col].mean()  # in-situ: the std of the LN's own input
            assert row["predicted"] == pytest.approx(row["gamma_rms"] / sigma)


@torch.no_grad()
def test_regime_indicators_match_naive_loops() -> None:
    """LN1-output RMS, RMS(E(x)) / RMS(LN1 output), residual growth and attention distance against a literal
    computation (explicit loops over images, heads, queries and keys; grid positions from the token index)."""
    vit, x, y, d = _diagnose("embedding")
    g = 4  # 16 px images, patch 4: a 4 x 4 grid after one class token
    for stream, img in (("source", x), ("target", y)):
        h = vit.embed(img).double()
        rms_e = float(h.pow(2).mean().sqrt())
        for layer, blk in enumerate(vit.blocks):
            row = d.layers[(d.layers["layer"] == layer) & (d.layers["stream"] == stream)].iloc[0]
            a = blk.ln1(h.float()).double()
            out = blk.forward(h.float()).double()
            assert row["ln1_out_rms"] == pytest.approx(float(a.pow(2).mean().sqrt()), rel=1e-5)
            assert row["embed_ln1_ratio"] == pytest.approx(rms_e / float(a.pow(2).mean().sqrt()), rel=1e-5)
            assert row["residual_growth"] == pytest.approx(
                float(out.pow(2).mean().sqrt()) / float(h.pow(2).mean().sqrt()), rel=1e-5)
            w = blk.attention()
            p = attention_probs(a.float(), w.q, w.q_bias, w.k, w.k_bias, w.num_heads).double()
            dists = []
            for b in range(len(img)):
                for hd in range(w.num_heads):
                    for qi in range(g * g):
                        num = den = 0.0
                        for ki in range(g * g):
                            wgt = float(p[b, hd, 1 + qi, 1 + ki])
                            num += wgt * math.hypot(qi // g - ki // g, qi % g - ki % g)
                            den += wgt
                        dists.append(num / den)
            assert row["attn_distance"] == pytest.approx(np.mean(dists), rel=1e-6)
            h = out
    pairs = [math.hypot(i // g - j // g, i % g - j % g) for i in range(g * g) for j in range(g * g)]
    assert d.uniform_attn_distance == pytest.approx(np.mean(pairs))
    src = d.tokens[(d.tokens["stream"] == "source") & (d.tokens["tokens"] == "all")]["rms"].item()
    assert d.vitb_scale == pytest.approx(0.70 / src, rel=1e-3)
    assert {"vitb_scale", "uniform_attn_distance"} <= d.to_dict().keys()


@torch.no_grad()
def test_layernorm_prediction_equals_measurement_for_equal_token_stds_and_constant_gamma() -> None:
    vit, x, y, d = _diagnose()
    e = torch.cat([vit.embed(x), vit.embed(y)]).double()
    assert d.layernorm["sigma"].iloc[0] == pytest.approx(float(e.std(-1, unbiased=False).mean()), rel=1e-6)
    # every token has mean 0 and std sigma, gamma = g everywhere: LN(X) - LN(Y) = g (X - Y) / sigma exactly
    sigma, g = 0.3, 1.7

    def embed(img: torch.Tensor) -> torch.Tensor:
        t = img.reshape(len(img), 24, 32)
        t = t - t.mean(-1, keepdim=True)
        return sigma * t / t.std(-1, unbiased=False, keepdim=True)

    vit.embed = embed  # type: ignore[method-assign]
    for blk in vit.blocks:
        for ln in (blk.ln1, blk.ln2):
            ln.eps = 0.0
            ln.weight.fill_(g)
    acc = DiagnosticsAccumulator(vit)
    res = measure_scales(vit, x, y, batch_size=4, on_embedded=acc.update)[0]
    ln = acc.result().with_measured(res.table).layernorm
    np.testing.assert_allclose(ln["predicted"], g / sigma, rtol=1e-6)
    np.testing.assert_allclose(ln["measured"], ln["predicted"], rtol=1e-5)


def test_prefix_token_count_from_the_sequence_length() -> None:
    vit = as_vit(tiny_timm(dim=32, heads=4))
    assert prefix_token_count(vit, 17) == 1 and prefix_token_count(vit, 16) == 0
    m = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=4, reg_tokens=4)
    assert prefix_token_count(as_vit(m), int(as_vit(m).embed(torch.zeros(1, 3, 16, 16)).shape[1])) == 5


def test_aggregates_and_per_layer_ranking_match_pandas() -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        [{"layer": la, "component": c, "mean": float(rng.random())} for la in range(4) for c in COMPONENTS]
    )
    s = summarize(table, rank_by="median_l1").set_index("component")
    for c in COMPONENTS:
        v = table[table["component"] == c].sort_values("layer")["mean"].to_numpy()
        assert s.loc[c, "mean"] == pytest.approx(v.mean()) and s.loc[c, "median"] == pytest.approx(np.median(v))
        assert s.loc[c, "mean_l1"] == pytest.approx(v[1:].mean())
        assert s.loc[c, "median_l1"] == pytest.approx(np.median(v[1:]))
    expected = sorted(COMPONENTS, key=lambda c: -s.loc[c, "median_l1"])
    assert [c for c in s.sort_values("rank").index] == expected
    for layer, order in layer_ranking(table).items():
        t = table[table["layer"] == layer]
        assert order == list(t.sort_values("mean", ascending=False)["component"])


def test_cli_prints_and_writes_diagnostics_normalization_and_scales(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_folder(tmp_path / "imgs", 4)
    common = ["analyze", *MICRO, "--source", f"folder:{folder}", "--target", f"folder:{folder}",
              "--source-split", "all", "--target-split", "all", "--pairs", "6"]  # fmt: skip
    code, stdout, err = run([*common, "--out", str(tmp_path / "m"), "--rank-by", "median_l1"], capsys)
    assert code == 0, err
    assert "rank by median_l1" in stdout and "Per layer" in stdout and "Embedded tokens" in stdout
    assert "Regime indicators" in stdout and "residual growth" in stdout
    code, _, err = run(
        [*common, "--out", str(tmp_path / "i"), "--normalization", "imagenet", "--embed-scale", "1,2"], capsys
    )
    assert code == 0, err
    rm, ri = (json.loads((tmp_path / k / "plasticity.json").read_text()) for k in "mi")
    assert rm["normalization"]["name"] == "model" and ri["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert rm["aggregation"]["rank_by"] == "median_l1"
    assert rm["diagnostics"]["tokens"][0]["rms"] != pytest.approx(ri["diagnostics"]["tokens"][0]["rms"])
    for f in ("diagnostics_tokens.csv", "diagnostics_layers.csv", "diagnostics_layernorm.csv"):
        assert len(pd.read_csv(tmp_path / "m" / f)) > 0
    ln = pd.read_csv(tmp_path / "m" / "diagnostics_layernorm.csv")
    p = pd.read_csv(tmp_path / "m" / "plasticity.csv").set_index(["layer", "component"])["mean"]
    assert np.allclose(ln["measured"], [p[(r.layer, r.component)] for r in ln.itertuples()])
    scales = pd.read_csv(tmp_path / "i" / "embed_scale.csv")
    assert sorted(scales["scale"].unique()) == [1.0, 2.0]
    assert (tmp_path / "i" / "embed_scale.png").is_file() and not (tmp_path / "m" / "embed_scale.csv").exists()


def test_one_pass_every_image_embedded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import vitplast.analysis as analysis
    from vitplast.analysis import AnalyzeConfig, run_analysis

    seen: list[int] = []
    real_load = analysis.load_model

    def counting_load(*args: object, **kwargs: object) -> ViT:
        vit = real_load(*args, **kwargs)  # type: ignore[arg-type]
        embed = vit.embed

        def counted(x: torch.Tensor) -> torch.Tensor:
            seen.append(len(x))
            return embed(x)

        vit.embed = counted  # type: ignore[method-assign]
        return vit

    monkeypatch.setattr(analysis, "load_model", counting_load)
    cfg = AnalyzeConfig(model="timm:vit_micro_patch4_32", random_weights=True, source="random:9",
                        target="random:9", pairs=9, batch_size=4, with_bounds=True, embed_scale=(3.0, 6.0),
                        device="cpu")  # fmt: skip
    res = run_analysis(cfg)
    # 9 pairs in batches of 4, 4, 1: each batch of source + target images embedded once, for every statistic
    assert sorted(seen) == [2, 8, 8] and res.bounds is not None and len(res.scales) == 3
    tokens = res.diagnostics.tokens.set_index(["stream", "tokens"])["n_tokens"]
    assert res.bounds.summary["n_pairs"] == tokens[("target", "all")] / res.diagnostics.seq_len == 9
