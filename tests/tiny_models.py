"""Tiny random ViTs of both libraries for tests (and a weight copy timm -> HF for equivalence tests)."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import VisionTransformer

from vitplast.data import DataBundle, TensorImageSet
from vitplast.models import as_vit
from vitplast.models.vit import ViT


def tiny_timm(
    dim: int = 48,
    depth: int = 2,
    heads: int = 4,
    mlp_ratio: float = 4.0,
    img: int = 16,
    patch: int = 4,
    num_classes: int = 5,
    seed: int = 0,
) -> VisionTransformer:
    torch.manual_seed(seed)
    m = VisionTransformer(
        img_size=img,
        patch_size=patch,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_ratio=mlp_ratio,
        num_classes=num_classes,
        qkv_bias=True,
    )
    # Random, non-trivial LayerNorm affine parameters and position embedding so tests see real variety.
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.5 * torch.randn_like(p))
            elif "norm" in name and name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif name in ("pos_embed", "cls_token"):
                p.copy_(0.5 * torch.randn_like(p))
    return m.eval()


def final_norm(vit: ViT, h: torch.Tensor) -> torch.Tensor:
    """The library model's norm after the last block (identity where it has none), applied to ``h``: the
    reference the tests compose ``vit.last_block_output`` with (the library's own module names live here)."""
    if vit.library == "timm":
        return vit.module.norm(h)  # type: ignore[no-any-return,operator]
    for name in ("layernorm", "post_layernorm"):
        norm = getattr(vit.backbone, name, None)  # type: ignore[attr-defined]
        if norm is not None:
            return norm(h)  # type: ignore[no-any-return]
    return h


def tiny_hf(
    dim: int = 48,
    depth: int = 2,
    heads: int = 4,
    mlp: int = 192,
    img: int = 16,
    patch: int = 4,
    num_classes: int = 5,
    seed: int = 0,
):  # type: ignore[no-untyped-def]
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    cfg = ViTConfig(
        hidden_size=dim,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=mlp,
        image_size=img,
        patch_size=patch,
        num_labels=num_classes,
        layer_norm_eps=1e-6,
        hidden_act="gelu",
        qkv_bias=True,
    )
    return ViTForImageClassification(cfg).eval()


def timm_to_hf(m: VisionTransformer):  # type: ignore[no-untyped-def]
    """A HF ViTForImageClassification holding exactly the weights of the timm ViT ``m``."""
    dim = m.embed_dim
    depth = len(m.blocks)
    heads = m.blocks[0].attn.num_heads
    mlp = m.blocks[0].mlp.fc1.out_features
    img = m.patch_embed.img_size[0]
    patch = m.patch_embed.patch_size[0]
    hf = tiny_hf(dim, depth, heads, mlp, img, patch, m.num_classes)
    sd = m.state_dict()
    new = {
        "vit.embeddings.cls_token": sd["cls_token"],
        "vit.embeddings.position_embeddings": sd["pos_embed"],
        "vit.embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "vit.embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "vit.layernorm.weight": sd["norm.weight"],
        "vit.layernorm.bias": sd["norm.bias"],
        "classifier.weight": sd["head.weight"],
        "classifier.bias": sd["head.bias"],
    }
    for i in range(depth):
        b, t = f"blocks.{i}.", f"vit.layers.{i}."
        qw, kw, vw = sd[b + "attn.qkv.weight"].chunk(3)
        qb, kb, vb = sd[b + "attn.qkv.bias"].chunk(3)
        new.update(
            {
                t + "layernorm_before.weight": sd[b + "norm1.weight"],
                t + "layernorm_before.bias": sd[b + "norm1.bias"],
                t + "layernorm_after.weight": sd[b + "norm2.weight"],
                t + "layernorm_after.bias": sd[b + "norm2.bias"],
                t + "attention.q_proj.weight": qw,
                t + "attention.q_proj.bias": qb,
                t + "attention.k_proj.weight": kw,
                t + "attention.k_proj.bias": kb,
                t + "attention.v_proj.weight": vw,
                t + "attention.v_proj.bias": vb,
                t + "attention.o_proj.weight": sd[b + "attn.proj.weight"],
                t + "attention.o_proj.bias": sd[b + "attn.proj.bias"],
                t + "mlp.fc1.weight": sd[b + "mlp.fc1.weight"],
                t + "mlp.fc1.bias": sd[b + "mlp.fc1.bias"],
                t + "mlp.fc2.weight": sd[b + "mlp.fc2.weight"],
                t + "mlp.fc2.bias": sd[b + "mlp.fc2.bias"],
            }
        )
    hf.load_state_dict(new, strict=True)
    return hf.eval()


def tiny_train_vit(seed: int = 0) -> ViT:
    """A 2-block, width-16 ViT for 16 px images with 7 classes, for training-engine tests."""
    torch.manual_seed(seed)
    m = VisionTransformer(img_size=16, patch_size=8, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0, num_classes=7)
    m.pretrained_cfg = {"input_size": (3, 16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0,
                        "interpolation": "bilinear"}
    return as_vit(m, "tiny")


def tiny_train_data(n: int = 60, classes: int = 3) -> DataBundle:
    """``n`` random 16 px images whose class is their brightest channel (learnable in a few steps)."""
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(n) % classes
    images = torch.randint(0, 256, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    images[torch.arange(n), labels] = 255 - images[torch.arange(n), labels] // 4  # class = brightest channel
    return DataBundle.from_single("tiny", [f"c{i}" for i in range(classes)], TensorImageSet(images, labels))
