"""Model loading from every supported source, the component map, and preprocessing from the model's config."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tests.hf_v4_layout import as_v4_layout
from tests.tiny_models import final_norm, tiny_hf, tiny_timm
from vitplast.errors import VitplastError
from vitplast.models import as_vit, load_model
from vitplast.plasticity import measure_plasticity
from vitplast.reference import naive_plasticity


def _imgs(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _assert_partition(vit) -> None:  # type: ignore[no-untyped-def]
    groups = vit.param_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)), "groups overlap"
    assert set(ids) == {id(p) for p in vit.module.parameters()}, "groups do not cover the model"
    for comp in ("ln1", "mha", "ln2", "fc1", "fc2"):
        assert sum(p.numel() for p in groups[comp]) == sum(p.numel() for b in vit.blocks for p in b.params[comp])
    assert groups["head"] and groups["embed"]


@pytest.mark.parametrize("factory", [tiny_timm, tiny_hf])
def test_component_forward_equals_library_forward(factory) -> None:  # type: ignore[no-untyped-def]
    model = factory()
    vit = as_vit(model)
    x = _imgs(3, 16, 0)
    with torch.no_grad():
        h = vit.last_block_output(x)
        logits = vit.logits(x)
        ref = model.forward_features(x) if vit.library == "timm" else model.vit(pixel_values=x).last_hidden_state
        torch.testing.assert_close(final_norm(vit, h), ref, rtol=1e-5, atol=1e-5)
    assert logits.shape == (3, 5)
    _assert_partition(vit)
    assert vit.depth == 2 and vit.dim == 48 and vit.num_heads == 4
    assert vit.data_config.input_size == 16 and vit.seq_len() == 17  # 4x4 patches + class token


def test_timm_local_safetensors_checkpoint(tmp_path: Path) -> None:
    src = load_model("timm:vit_micro_patch4_32", random_weights=True)
    f = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.module.state_dict().items()}, str(f))
    vit = load_model(f"timm:vit_micro_patch4_32@{f}")
    x = _imgs(2, 32, 1)
    with torch.no_grad():
        torch.testing.assert_close(vit.logits(x), src.logits(x))
    assert vit.data_config.input_size == 32 and vit.data_config.mean == (0.5, 0.5, 0.5)


def _save_hf(tmp_path: Path, v4: bool, preprocessor: dict | None = None) -> tuple[Path, nn.Module]:  # type: ignore[type-arg]
    model = tiny_hf(dim=48, heads=6, mlp=100, depth=3, seed=3)
    d = tmp_path / ("v4" if v4 else "v5")
    model.save_pretrained(d)
    if v4:  # rewrite the checkpoint in the transformers 4.x key layout
        f = d / "model.safetensors"
        state = as_v4_layout(copy.deepcopy(model)).state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(f), metadata={"format": "pt"})
        assert any("encoder.layer.0.attention.attention.query" in k for k in load_file(str(f)))
    if preprocessor is not None:
        (d / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return d, model


@pytest.mark.parametrize("v4", [False, True])
def test_hf_directory_matches_naive_to_1e5(tmp_path: Path, v4: bool) -> None:
    d, original = _save_hf(tmp_path, v4)
    vit = load_model(f"hf:{d}")
    x, y = _imgs(12, 16, 2), _imgs(12, 16, 3)
    with torch.no_grad():
        torch.testing.assert_close(vit.logits(x), original(pixel_values=x).logits, rtol=1e-5, atol=1e-6)
    for mode in ("embedding", "insitu"):
        res = measure_plasticity(vit, x, y, mode=mode, batch_size=5)
        ref = naive_plasticity(vit, x, y, mode=mode)
        np.testing.assert_allclose(res.table["mean"].to_numpy().reshape(3, 5), ref.mean(0), rtol=1e-5)
    # a bare directory path works too
    assert load_model(str(d)).depth == 3


def test_hf_preprocessing_comes_from_the_model(tmp_path: Path) -> None:
    d, _ = _save_hf(
        tmp_path,
        False,
        {
            "image_mean": [0.4, 0.5, 0.6],
            "image_std": [0.2, 0.3, 0.4],
            "size": {"height": 16, "width": 16},
            "resample": 3,
        },
    )
    cfg = load_model(f"hf:{d}").data_config
    assert cfg.mean == (0.4, 0.5, 0.6) and cfg.std == (0.2, 0.3, 0.4) and cfg.interpolation == "bicubic"
    d2, _ = _save_hf(tmp_path / "b", False)
    cfg2 = load_model(f"hf:{d2}").data_config
    assert cfg2.mean == (0.5, 0.5, 0.5) and cfg2.input_size == 16  # ViT in21k convention, not ImageNet's


def test_timm_preprocessing_comes_from_the_model() -> None:
    vit = as_vit(timm.create_model("vit_tiny_patch16_224.augreg_in21k", pretrained=False))
    assert vit.data_config.mean == (0.5, 0.5, 0.5) and vit.data_config.input_size == 224
    vit = as_vit(timm.create_model("vit_small_patch16_224.augreg_in1k", pretrained=False))
    assert vit.data_config.mean == pytest.approx((0.5, 0.5, 0.5))
    deit = as_vit(timm.create_model("deit_tiny_patch16_224", pretrained=False))
    assert deit.data_config.mean == pytest.approx((0.485, 0.456, 0.406))


def test_bare_hf_vitmodel_gets_a_head() -> None:
    from transformers import ViTModel

    vit = as_vit(ViTModel(tiny_hf().config, add_pooling_layer=False))
    vit.reset_head(7)
    assert vit.logits(_imgs(2, 16, 0)).shape == (2, 7)
    _assert_partition(vit)


def test_non_vit_models_are_rejected_with_what_was_found() -> None:
    with pytest.raises(VitplastError, match=r"no transformer blocks found.*conv1"):
        as_vit(timm.create_model("resnet18", pretrained=False))
    with pytest.raises(VitplastError, match="no transformer blocks"):
        as_vit(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("nonsense", "unknown model spec"),
        ("timm:not_a_model_xyz", "unknown timm architecture"),
        ("timm:vit_micro_patch4_32@/no/such.safetensors", "does not exist"),
        ("hf:/no/such/dir", "does not exist"),
        ("timm:resnet18", "no transformer blocks"),
    ],
)
def test_bad_model_specs(spec: str, match: str) -> None:
    with pytest.raises(VitplastError, match=match):
        load_model(spec, random_weights=True)


def test_pretrained_weights_offline_give_a_clear_error() -> None:
    with pytest.raises(VitplastError, match=r"cannot download the weights of .*--random-weights.*@FILE\.safetensors"):
        load_model("timm:vit_tiny_patch16_224.augreg_in21k")
