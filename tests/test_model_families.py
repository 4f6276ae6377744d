"""Every supported model family: exact components, ratios equal to the naive reference, groups, bounds.

The families are tiny random-weight instances of the libraries' own classes (tests/model_families.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import save_file

from tests.hf_v4_layout import as_v4_layout
from tests.model_families import FAMILIES, HF_BEIT_SHARED_BIAS
from tests.tiny_models import final_norm
from vitplast.bounds.compute import compute_bounds
from vitplast.components import COMPONENTS
from vitplast.models import ViT, as_vit, load_model
from vitplast.plasticity import measure_plasticity
from vitplast.reference import naive_plasticity
from vitplast.train.groups import freeze_except

_CACHE: dict[str, ViT] = {}


def family(name: str) -> ViT:
    if name not in _CACHE:
        _CACHE[name] = as_vit(FAMILIES[name](), name)
    vit = _CACHE[name]
    for p in vit.module.parameters():
        p.requires_grad_(True)
    return vit.eval()


def _pairs(vit: ViT, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    s = vit.data_config.input_size
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, s, s, generator=g), torch.randn(n, 3, s, s, generator=g)


def _library_states(vit: ViT, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(embedded sequence or None, last block output after the final norm) from the library's own forward."""
    m: Any = vit.module
    if vit.library == "timm":
        return None, m.forward_features(x)
    out = vit.backbone(pixel_values=x, output_hidden_states=True)  # type: ignore[attr-defined]
    if out.hidden_states is None:  # transformers 4.x SigLIP: only the outer SiglipVisionModel collects them
        return None, out.last_hidden_state
    return out.hidden_states[0], final_norm(vit, out.hidden_states[-1])


def test_every_timm_block_parser_has_a_row_in_the_family_table() -> None:
    """The timm rows of the table build exactly the block classes that have a registered parser."""
    from vitplast.models.timm_adapter import BLOCK_PARSERS

    built = {f"{type(b).__module__}.{type(b).__name__}" for n in FAMILIES if n.startswith("timm-")
             for b in family(n).module.blocks}
    assert built == set(BLOCK_PARSERS)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_components_compose_to_the_library_forward(name: str) -> None:
    """embed -> blocks (each as ln1, mha, ln2, fc1, act, fc2) -> final norm equals the library's forward."""
    vit = family(name)
    x, _ = _pairs(vit, 2)
    with torch.no_grad():
        emb, ref = _library_states(vit, x)
        if emb is not None:
            torch.testing.assert_close(vit.embed(x), emb)
        torch.testing.assert_close(final_norm(vit, vit.last_block_output(x)), ref, rtol=1e-5, atol=1e-5)
        assert vit.logits(x).shape[0] == 2
    assert vit.mlp_dim >= vit.dim


@pytest.mark.parametrize("mode", ["embedding", "insitu"])
@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_pair_ratio_matches_the_naive_reference(name: str, mode: str) -> None:
    vit = family(name)
    x, y = _pairs(vit)
    res = measure_plasticity(vit, x, y, mode=mode, batch_size=4, keep_pairs=True)
    ref = naive_plasticity(vit, x, y, mode=mode)
    assert res.pairs is not None and res.pairs.shape == ref.shape == (6, vit.depth, len(COMPONENTS))
    np.testing.assert_allclose(res.pairs, ref, rtol=2e-5, atol=1e-9)


# Where each kind of parameter belongs (docs/model-families.md), by its name in either library.
PLACEMENT = [
    (r"(^|\.)(reg_token|register_tokens|dist_token|distillation_token|cls_token|class_embedding)$", "embed"),
    (r"(pos_embed|position_embeddings|position_embedding\.weight)$", "embed"),
    (r"(ls1\.gamma|gamma_1|lambda_1|layer_scale1\.lambda1)$", "mha"),
    (r"(ls2\.gamma|gamma_2|lambda_2|layer_scale2\.lambda1)$", "fc2"),
    (r"relative_position_bias_table$", "mha"),
    (r"(q_bias|v_bias)$", "mha"),
    (r"(^|\.)(head|head_dist|classifier|fc_norm|attn_pool)\.", "head"),
    (r"attention\.(attention\.(query|key|value)|output\.dense)\.(weight|bias)$", "mha"),  # transformers 4.x
    (r"(intermediate\.dense|mlp\.weights_in)\.(weight|bias)$", "fc1"),
    (r"(output\.dense|mlp\.weights_out)\.(weight|bias)$", "fc2"),
    (r"(norm1|layernorm_before|layer_norm1)\.(weight|bias)$", "ln1"),
    (r"(norm2|layernorm_after|layer_norm2)\.(weight|bias)$", "ln2"),
    (r"(attn|attention|self_attn)\.(qkv|q_proj|k_proj|v_proj|proj|o_proj|out_proj)\.(weight|bias)$", "mha"),
    (r"mlp\.(fc1|fc1_x|fc1_g|gate_proj|up_proj)\.(weight|bias)$", "fc1"),
    (r"mlp\.(fc2|down_proj)\.(weight|bias)$", "fc2"),
]


def _assert_groups_partition_and_place(vit: ViT) -> dict[str, list[torch.nn.Parameter]]:
    """The groups are disjoint, cover the model, and put each named kind of parameter where PLACEMENT says."""
    groups = vit.param_groups()
    owner = {id(p): g for g, ps in groups.items() for p in ps}
    assert sum(len(ps) for ps in groups.values()) == len(owner) == len(list(vit.module.parameters()))
    assert all(groups[c] for c in (*COMPONENTS, "embed")), {g: len(ps) for g, ps in groups.items()}
    for pname, p in vit.module.named_parameters():
        for pattern, group in PLACEMENT:
            if re.search(pattern, pname):
                assert owner[id(p)] == group, f"{pname} is in {owner[id(p)]}, expected {group}"
                break
    return groups


@pytest.mark.parametrize("name", list(FAMILIES))
def test_groups_partition_the_model_and_train_exactly_the_named_parameters(name: str) -> None:
    vit = family(name)
    groups = _assert_groups_partition_and_place(vit)
    x, _ = _pairs(vit, 2)

    def trained(train: tuple[str, ...]) -> set[int]:
        freeze_except(vit, train)
        vit.module.zero_grad(set_to_none=True)
        vit.logits(x).float().square().sum().backward()
        return {id(p) for p in vit.module.parameters() if p.grad is not None}

    used = trained(("full",))  # parameters the forward pass uses (DINOv2's mask token is not)
    assert all(id(p) in used for c in COMPONENTS for p in groups[c]), "a component parameter is unused"
    for train in (("mha",), ("fc2", "embed")):
        chosen = {id(p) for g in (*train, "head") for p in groups[g]}
        assert trained(train) == chosen & used, f"{train}: trained parameters differ from the named groups"
    vit.module.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_bounds_hold_on_measured_pairs_or_say_why_not(name: str) -> None:
    vit = family(name)
    x, y = _pairs(vit)
    measured = measure_plasticity(vit, x, y, keep_pairs=True).pairs
    assert measured is not None
    table = compute_bounds(vit, x, y).table
    for layer, blk in enumerate(vit.blocks):
        for c, comp in enumerate(COMPONENTS):
            rows = table[(table["layer"] == layer) & (table["component"] == comp)]
            rig = rows[rows["rigorous"]]
            worst = float(measured[:, layer, c].max())
            assert (rig["bound"] >= worst * (1 - 1e-6)).all(), f"{comp}@{layer}: {rig['bound'].min()} < {worst}"
            if comp == "mha" and blk.mha_unbounded is not None:
                assert rig.empty and rows["bound"].isna().all()
                assert rows["note"].str.contains(blk.mha_unbounded, regex=False).all()
            else:
                assert len(rig) >= 1, f"{comp}@{layer} has no rigorous bound"


def test_layerscale_enters_mha_and_fc2_and_their_bounds() -> None:
    """Doubling the LayerScale doubles the mha / fc2 ratios and their weight norms, and nothing else."""
    vit = family("timm-deit3-layerscale")
    x, y = _pairs(vit)
    before = measure_plasticity(vit, x, y, keep_pairs=True).pairs
    b_before = compute_bounds(vit, x, y).primary().set_index(["layer", "component"])["bound"]
    blk_params = [(b.ls1.gamma, b.ls2.gamma) for b in vit.module.blocks]  # type: ignore[union-attr]
    with torch.no_grad():
        for g1, g2 in blk_params:
            g1.mul_(2)
            g2.mul_(2)
    try:
        after = measure_plasticity(vit, x, y, keep_pairs=True).pairs
        b_after = compute_bounds(vit, x, y).primary().set_index(["layer", "component"])["bound"]
    finally:
        with torch.no_grad():
            for g1, g2 in blk_params:
                g1.div_(2)
                g2.div_(2)
    assert before is not None and after is not None
    scale = np.array([1.0, 2.0, 1.0, 1.0, 2.0])
    np.testing.assert_allclose(after, before * scale, rtol=1e-5)
    ratio = (b_after / b_before).unstack()[list(COMPONENTS)].to_numpy()
    np.testing.assert_allclose(ratio[:, [0, 2, 3, 4]], np.tile([1.0, 1.0, 1.0, 2.0], (vit.depth, 1)), rtol=1e-9)
    assert (ratio[:, 1] > 1.0).all()


def test_gated_mlp_fc1_is_the_stacked_projection_and_fc2_sees_zero_padding() -> None:
    """SwiGLU: fc1 = [W_x; W_g] (2h outputs), act(u) = u_x * silu(u_g), embedding-mode FC2 input = [X, 0]."""
    vit = family("timm-swiglu-qknorm")
    blk, mlp = vit.blocks[0], vit.module.blocks[0].mlp  # type: ignore[union-attr,index]
    assert blk.fc1.out_features == 2 * vit.mlp_dim and blk.fc2.in_features == vit.mlp_dim
    x = torch.randn(2, 5, vit.dim)
    with torch.no_grad():
        torch.testing.assert_close(blk.fc2(blk.act(blk.fc1(x))), mlp(x))
        u = blk.fc1(x)
        torch.testing.assert_close(u[..., : vit.mlp_dim], mlp.fc1_x(x))
        pad = torch.nn.functional.pad(x, (0, vit.mlp_dim - vit.dim))
        torch.testing.assert_close(blk.fc2(pad), mlp.fc2(pad))


def test_tokens_in_the_ratio_are_all_prefix_tokens_and_patches() -> None:
    """Registers and class token enter the ratio: n = 1 + 4 registers + 4 patches for DINOv2-reg at 28 px."""
    assert family("timm-dinov2-registers").seq_len() == 1 + 4 + 4
    assert family("timm-no-cls-gap-registers").seq_len() == 4 + 16
    assert family("timm-distilled-deit").seq_len() == 2 + 16
    assert family("hf-siglip-vision").seq_len() == 16


HF_NAMES = [n for n in FAMILIES if n.startswith("hf-")]
TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5
needs_5x = pytest.mark.skipif(not TRANSFORMERS_5, reason="rewrites a transformers 5.x model into the 4.x layout")


V4_CASES = {**{n: FAMILIES[n] for n in HF_NAMES}, "hf-beit-shared-bias": HF_BEIT_SHARED_BIAS}


@pytest.mark.parametrize("layout", ["installed", "4.x"])
@pytest.mark.parametrize("name", list(V4_CASES))
def test_hf_directories_of_every_family_load_with_the_same_weights(name: str, layout: str, tmp_path: Path) -> None:
    """A directory saved by the installed transformers, or with the 4.x checkpoint keys, loads the same weights."""
    raw: Any = V4_CASES[name]()
    raw.save_pretrained(tmp_path)
    if layout == "4.x":  # same config, weights under the 4.x keys (checked against transformers 4.57.6)
        state = as_v4_layout(V4_CASES[name]()).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    original = as_vit(raw)
    vit = load_model(f"hf:{tmp_path}")
    x, _ = _pairs(original, 2)
    with torch.no_grad():
        torch.testing.assert_close(vit.last_block_output(x), original.last_block_output(x), rtol=0, atol=0)
        if original.num_classes:
            torch.testing.assert_close(vit.logits(x), original.logits(x), rtol=0, atol=0)
    assert type(vit.backbone) is type(original.backbone)  # type: ignore[attr-defined]


@needs_5x
@pytest.mark.parametrize("name", list(V4_CASES))
def test_hf_4x_module_layout_computes_what_5x_computes(name: str) -> None:
    """The 4.x module tree of every HF family (tests/hf_v4_layout.py) gives the same components, ratios, bound
    status and groups as the 5.x model it was rebuilt from; the 5.x model is checked against the library above."""
    v5 = as_vit(V4_CASES[name](), name)
    v4_module: Any = as_v4_layout(V4_CASES[name]())
    v4 = as_vit(v4_module, name)
    q = next(m for n, m in v4_module.named_modules() if n.endswith(("attention.attention.query", "self_attn.q_proj")))
    assert v4.blocks[0].attention().q is q.weight, "the 4.x projections were not the ones parsed"
    x, y = _pairs(v5)
    for mode in ("embedding", "insitu"):
        p4 = measure_plasticity(v4, x, y, mode=mode, keep_pairs=True).pairs
        p5 = measure_plasticity(v5, x, y, mode=mode, keep_pairs=True).pairs
        np.testing.assert_allclose(p4, p5, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(p4, naive_plasticity(v4, x, y, mode=mode), rtol=2e-5, atol=1e-9)
    assert [b.mha_unbounded for b in v4.blocks] == [b.mha_unbounded for b in v5.blocks]
    sizes = [
        {g: sum(p.numel() for p in ps) for g, ps in gs.items()}
        for gs in (_assert_groups_partition_and_place(v4), v5.param_groups())
    ]
    assert sizes[0] == sizes[1]


def _library_logits(raw: Any, x: torch.Tensor) -> torch.Tensor | None:
    """The library model's own class scores (None for a bare backbone, which has none)."""
    out = raw(x) if isinstance(raw, torch.nn.Module) and hasattr(raw, "forward_head") else raw(pixel_values=x)
    return out if isinstance(out, torch.Tensor) else getattr(out, "logits", None)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_logits_are_the_library_forward_and_a_new_head_reads_pre_logits(name: str, capsys: Any) -> None:
    """Before reset: logits = the library's own forward (a bare backbone is said to get a new head, on stderr
    and in ``notes``). After reset_head: logits = classifier(pre_logits), the contract the probe head uses."""
    raw: Any = FAMILIES[name]()
    vit = as_vit(raw, name)
    x, _ = _pairs(vit, 3)
    with torch.no_grad():
        lib = _library_logits(raw, x)
        bare = lib is None
        if not bare:
            torch.testing.assert_close(vit.logits(x), lib, rtol=0, atol=0)
    err = capsys.readouterr().err
    assert bool(vit.notes) == bare and err.count("warning:") == int(bare)
    if bare:
        assert vit.notes[0] in err and f"{type(raw).__name__} has no classification head" in vit.notes[0]
    vit.reset_head(3)
    with torch.no_grad():
        logits = vit.logits(x)
        assert logits.shape == (3, 3)
        torch.testing.assert_close(logits, vit.classifier(vit.pre_logits(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["timm-distilled-deit", "hf-deit-distilled"])
def test_distilled_deit_averages_two_heads_and_gets_one_new_head(name: str) -> None:
    """Eval prediction = (head(c) + head_dist(t)) / 2 on the final-normed class / distillation tokens (the library's
    forward), pre_logits = (c + t) / 2; after reset_head both heads are one layer, in group ``head`` once."""
    raw: Any = FAMILIES[name]()
    vit = as_vit(raw, name)
    heads = ("head", "head_dist") if vit.library == "timm" else ("cls_classifier", "distillation_classifier")
    x, _ = _pairs(vit, 3)
    with torch.no_grad():
        h = final_norm(vit, vit.last_block_output(x))
        c, t = h[:, 0], h[:, 1]
        want = (getattr(raw, heads[0])(c) + getattr(raw, heads[1])(t)) / 2
        torch.testing.assert_close(vit.logits(x), want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(vit.pre_logits(x), (c + t) / 2, rtol=1e-5, atol=1e-6)
        assert vit.classifier is getattr(raw, heads[0])
    vit.reset_head(4)
    assert getattr(raw, heads[1]) is getattr(raw, heads[0]) is vit.classifier
    head_ids = {id(p) for p in vit.param_groups()["head"]}
    assert {id(vit.classifier.weight), id(vit.classifier.bias)} <= head_ids
    with torch.no_grad():
        w, b = vit.classifier.weight, vit.classifier.bias
        torch.testing.assert_close(vit.logits(x), ((c + t) / 2) @ w.T + b, rtol=1e-5, atol=1e-6)


def test_layerscaled_mha_bound_survives_adversarial_search() -> None:
    """Gradient ascent on ||J_mha|| over tokens of norm <= r stays below the bound with diag(s1) W_O."""
    from timm.models.vision_transformer import VisionTransformer

    from tests.test_bounds import _max_jacobian_norm
    from vitplast.bounds.formulas import head_terms, mha_bound_qbias

    torch.manual_seed(3)
    m = VisionTransformer(img_size=8, patch_size=4, embed_dim=4, depth=1, num_heads=1, init_values=1.0, qkv_bias=True)
    with torch.no_grad():
        m.blocks[0].ls1.gamma.copy_(torch.tensor([3.0, -0.5, 0.1, 2.0]))
        m.blocks[0].attn.qkv.weight.mul_(4)
    vit = as_vit(m.double().eval())
    blk, n, r = vit.blocks[0], 3, 1.5
    found = _max_jacobian_norm(lambda z: blk.mha(z[None])[0], torch.randn(n, 4, dtype=torch.float64), r)
    bound = mha_bound_qbias(head_terms(blk.attention()), n, r)[0]
    unscaled = mha_bound_qbias(head_terms(_unscaled(blk.attention())), n, r)[0]
    assert 0 < found <= bound <= 3.0 * unscaled  # max|s1| = 3


def _unscaled(att: Any) -> Any:
    from dataclasses import replace

    return replace(att, o=att.o / att.o.new_tensor([3.0, -0.5, 0.1, 2.0]).unsqueeze(1))


def test_readme_coverage_table_has_one_true_row_per_family() -> None:
    """Each README row names a family that is tested here, and each cell names a test function of this module."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("<!-- coverage-table -->")[1].split("<!-- /coverage-table -->")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.strip().splitlines()[2:]]
    assert [r[0] for r in rows] == list(FAMILIES)
    tests = {
        "ratios": test_every_pair_ratio_matches_the_naive_reference,
        "bounds": test_bounds_hold_on_measured_pairs_or_say_why_not,
        "groups": test_groups_partition_the_model_and_train_exactly_the_named_parameters,
    }
    for name, _, emb, ins, bnd, grp in rows:
        for cell, want in ((emb, f"ratios[{name}-embedding]"), (ins, f"ratios[{name}-insitu]"),
                           (bnd, f"bounds[{name}]"), (grp, f"groups[{name}]")):  # fmt: skip
            assert cell.startswith(f"`{want}`") and callable(tests[want.split("[")[0]])
        unbounded = family(name).blocks[0].mha_unbounded
        assert ("mha: none" in bnd) == (unbounded is not None)
