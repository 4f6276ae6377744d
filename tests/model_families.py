"""Tiny random-weight instances of every supported model family (timm and Hugging Face), for tests.

Each factory builds the library's own class with small widths (d = 48, 4 heads, depth 2, 28-32 px), then
replaces every constant-initialised parameter (LayerScale 1e-6, zero biases and relative position tables,
unit LayerNorm scales) by a random one, so that no component is trivial.
"""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch
from torch import nn

SMALL = {"embed_dim": 48, "depth": 2, "num_heads": 4, "num_classes": 5}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Replace every constant parameter tensor ``c`` by ``c + 0.3 N(0, 1)`` (in place); eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def _timm(arch: str, **kw: object) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torch.manual_seed(0)
        return randomize(timm.create_model(arch, pretrained=False, **(SMALL | kw)))

    return make


def _timm_vit(**kw: object) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        from timm.models.vision_transformer import VisionTransformer

        torch.manual_seed(0)
        return randomize(VisionTransformer(img_size=32, patch_size=8, **(SMALL | kw)))  # type: ignore[arg-type]

    return make


def _swiglu_vit() -> nn.Module:
    from timm.layers import SwiGLU

    return _timm_vit(mlp_layer=SwiGLU, qk_norm=True, pre_norm=True, class_token=False, global_pool="avg")()


def _hf(cls_name: str, cfg_name: str, **kw: object) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import transformers

        torch.manual_seed(0)
        base = {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32, "patch_size": 8}
        if "dinov2" not in cfg_name.lower():
            base["intermediate_size"] = 96
        cfg = getattr(transformers, cfg_name)(**(base | kw))
        if "num_labels" in kw or cls_name.endswith("ImageClassification"):
            cfg.num_labels = 5
        return randomize(getattr(transformers, cls_name)(cfg))

    return make


TIMM_FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "timm-vit": _timm_vit(qkv_bias=True),
    "timm-deit3-layerscale": _timm("deit3_small_patch16_224", img_size=32, patch_size=8),
    "timm-dinov2-registers": _timm("vit_small_patch14_reg4_dinov2", img_size=28),
    "timm-no-cls-gap-registers": _timm("vit_betwixt_patch16_reg4_gap_256", img_size=32, patch_size=8),
    "timm-siglip-map-head": _timm("vit_base_patch16_siglip_224", img_size=32, patch_size=8),
    "timm-clip-norm-pre": _timm("vit_base_patch16_clip_224", img_size=32, patch_size=8),
    "timm-swiglu-qknorm": _swiglu_vit,
    "timm-distilled-deit": _timm("deit_tiny_distilled_patch16_224", img_size=32, patch_size=8),
    "timm-eva02-rope-glu": _timm("eva02_tiny_patch14_224", img_size=28),
    "timm-eva02-swiglu-mlpnorm": _timm("eva02_base_patch14_224", img_size=28),
    "timm-vit-rope": _timm("vit_base_patch16_rope_224", img_size=32, patch_size=8),
    "timm-eva01-qvbias": _timm("eva_giant_patch14_224", img_size=28),
    "timm-beit-relbias": _timm("beit_base_patch16_224", img_size=32, patch_size=8),
}
HF_FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "hf-vit": _hf("ViTForImageClassification", "ViTConfig"),
    "hf-deit": _hf("DeiTForImageClassification", "DeiTConfig"),
    "hf-deit-distilled": _hf("DeiTForImageClassificationWithTeacher", "DeiTConfig"),
    "hf-dinov2-layerscale": _hf("Dinov2ForImageClassification", "Dinov2Config", mlp_ratio=2),
    "hf-dinov2-swiglu": _hf("Dinov2Model", "Dinov2Config", mlp_ratio=4, use_swiglu_ffn=True),
    "hf-dinov2-registers": _hf("Dinov2WithRegistersModel", "Dinov2WithRegistersConfig", mlp_ratio=2),
    "hf-clip-vision": _hf("CLIPVisionModel", "CLIPVisionConfig"),
    "hf-siglip-vision": _hf("SiglipVisionModel", "SiglipVisionConfig"),
    "hf-beit-relbias": _hf(
        "BeitForImageClassification",
        "BeitConfig",
        use_relative_position_bias=True,
        use_shared_relative_position_bias=False,
        layer_scale_init_value=0.1,
        use_mean_pooling=True,
    ),
}
FAMILIES = TIMM_FAMILIES | HF_FAMILIES
#: BEiT with a relative position bias per layer and one shared by all layers (transformers 4.x keeps both elsewhere).
HF_BEIT_SHARED_BIAS = _hf(
    "BeitForImageClassification",
    "BeitConfig",
    use_relative_position_bias=True,
    use_shared_relative_position_bias=True,
    layer_scale_init_value=0.1,
)
