"""Adapter for timm ``VisionTransformer`` models: the only module that knows timm's module names."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vitplast.errors import VitplastError
from vitplast.models.vit import AttentionWeights, Block, DataConfig, ViT


def is_timm_vit(module: nn.Module) -> bool:
    return all(hasattr(module, a) for a in ("blocks", "patch_embed", "_pos_embed")) and isinstance(
        getattr(module, "blocks", None), nn.Sequential | nn.ModuleList
    )


def _describe(module: nn.Module) -> str:
    names = [n for n, _ in module.named_children()]
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")


def _attention_weights(attn: Any) -> AttentionWeights:
    qkv: nn.Linear = attn.qkv
    d = qkv.out_features // 3
    w = qkv.weight
    b = qkv.bias
    q_bias = getattr(attn, "q_bias", None)
    v_bias = getattr(attn, "v_bias", None)
    if b is None and q_bias is not None:  # BEiT-style separate biases
        b = torch.cat([q_bias, torch.zeros_like(q_bias), v_bias])
    return AttentionWeights(
        q=w[:d],
        k=w[d : 2 * d],
        v=w[2 * d :],
        o=attn.proj.weight,
        q_bias=None if b is None else b[:d],
        k_bias=None if b is None else b[d : 2 * d],
        v_bias=None if b is None else b[2 * d :],
        o_bias=attn.proj.bias,
        num_heads=int(attn.num_heads),
    )


def _check_block(i: int, blk: Any, name: str) -> None:
    need = {"norm1": nn.LayerNorm, "norm2": nn.LayerNorm}
    for attr, typ in need.items():
        if not isinstance(getattr(blk, attr, None), typ):
            raise VitplastError(f"{name}: block {i} has no LayerNorm '{attr}' (not a pre-norm ViT block)")
    attn, mlp = getattr(blk, "attn", None), getattr(blk, "mlp", None)
    if attn is None or not isinstance(getattr(attn, "qkv", None), nn.Linear) or not hasattr(attn, "proj"):
        raise VitplastError(f"{name}: block {i} has no fused-qkv attention (unsupported attention layout)")
    if mlp is None or not isinstance(getattr(mlp, "fc1", None), nn.Linear):
        raise VitplastError(f"{name}: block {i} has no MLP with fc1/fc2 (gated MLPs are not supported)")
    for attr in ("ls1", "ls2"):
        if not isinstance(getattr(blk, attr, nn.Identity()), nn.Identity):
            raise VitplastError(f"{name}: block {i} uses layer scale ({attr}), which is not supported yet")
    for attr in ("q_norm", "k_norm", "norm"):
        if not isinstance(getattr(attn, attr, nn.Identity()), nn.Identity):
            raise VitplastError(f"{name}: block {i} normalises inside attention ({attr}), not supported yet")
    if not isinstance(getattr(mlp, "norm", nn.Identity()), nn.Identity):
        raise VitplastError(f"{name}: block {i} normalises inside the MLP, not supported yet")


def wrap_timm(module: nn.Module, name: str = "timm") -> ViT:
    """Build the :class:`ViT` view of a timm ``VisionTransformer``."""
    model: Any = module
    if not is_timm_vit(model):
        raise VitplastError(
            f"{name}: no transformer blocks found (a ViT needs blocks, patch_embed and position embedding); "
            f"top-level modules are: {_describe(model)}"
        )
    blocks: list[Block] = []
    raw_blocks = list(model.blocks)
    if not raw_blocks:
        raise VitplastError(f"{name}: the model has zero transformer blocks")
    for i, blk in enumerate(raw_blocks):
        _check_block(i, blk, name)
        attn, mlp = blk.attn, blk.mlp
        blocks.append(
            Block(
                ln1=blk.norm1,
                mha=attn,
                ln2=blk.norm2,
                fc1=mlp.fc1,
                act=mlp.act,
                fc2=mlp.fc2,
                attention=functools.partial(_attention_weights, attn),
                params={
                    "ln1": list(blk.norm1.parameters()),
                    "mha": list(attn.parameters()),
                    "ln2": list(blk.norm2.parameters()),
                    "fc1": list(mlp.fc1.parameters()),
                    "fc2": list(mlp.fc2.parameters()),
                },
            )
        )

    def embed(x: Tensor) -> Tensor:
        x = model.patch_embed(x)
        x = model._pos_embed(x)
        x = model.patch_drop(x)
        return model.norm_pre(x)

    def group_params() -> dict[str, list[nn.Parameter]]:
        comp_ids: set[int] = set()
        groups: dict[str, list[nn.Parameter]] = {}
        for comp in ("ln1", "mha", "ln2", "fc1", "fc2"):
            groups[comp] = [p for b in blocks for p in b.params[comp]]
            comp_ids.update(id(p) for p in groups[comp])
        embed_mods = [getattr(model, a) for a in ("patch_embed", "norm_pre") if hasattr(model, a)]
        embed_params = [p for m in embed_mods for p in m.parameters()]
        embed_params += [
            p for a in ("cls_token", "reg_token", "pos_embed") if isinstance(p := getattr(model, a, None), nn.Parameter)
        ]
        embed_ids = {id(p) for p in embed_params}
        groups["embed"] = embed_params
        groups["head"] = [p for p in model.parameters() if id(p) not in comp_ids and id(p) not in embed_ids]
        return groups

    def reset_head(num_classes: int) -> None:
        model.reset_classifier(num_classes)

    cfg = _data_config(model)
    return ViT(
        module=model,
        blocks=blocks,
        embed=embed,
        final_norm=model.norm,
        classify=model,
        reset_head=reset_head,
        group_params=group_params,
        data_config=cfg,
        name=name,
        library="timm",
        num_classes=int(getattr(model, "num_classes", 0)),
        pre_logits=lambda x: model.forward_head(model.forward_features(x), pre_logits=True),
        classifier=lambda: model.get_classifier(),
    )


def _data_config(model: Any) -> DataConfig:
    """Mean/std/crop from the model's pretrained config; the input size is what its patch embedding accepts."""
    from timm.data import resolve_data_config

    cfg: dict[str, Any] = resolve_data_config({}, model=model)
    mean = tuple(float(v) for v in cfg["mean"])
    std = tuple(float(v) for v in cfg["std"])
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    size = int(img_size[-1]) if img_size is not None else int(cfg["input_size"][-1])
    return DataConfig(
        input_size=size,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        crop_pct=float(cfg.get("crop_pct", 0.875)),
        interpolation=str(cfg.get("interpolation", "bicubic")),
    )


def load_timm(arch: str, *, checkpoint: Path | None, random_weights: bool, spec: str, **kwargs: Any) -> ViT:
    """``timm:ARCH`` (hub weights, or ``random_weights``) or ``timm:ARCH@FILE.safetensors`` (local weights)."""
    import timm

    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('.')[0][:12]}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise VitplastError(f"unknown timm architecture {arch!r}{hint}")
    pretrained = not random_weights and checkpoint is None
    try:
        model = timm.create_model(arch, pretrained=pretrained, **kwargs)
    except Exception as exc:  # hub errors come in many types
        if pretrained:
            raise VitplastError(
                f"could not fetch pretrained weights for {arch!r} ({type(exc).__name__}); offline? "
                "use --random-weights or a local checkpoint timm:ARCH@FILE.safetensors"
            ) from None
        raise VitplastError(f"could not build timm model {arch!r}: {exc}") from None
    if checkpoint is not None:
        load_state_file(model, checkpoint, spec)
    return wrap_timm(model, spec)


def load_state_file(model: Any, path: Path, spec: str) -> None:
    """Load a ``.safetensors`` (or torch ``.pth``) state dict into ``model``; classifier may differ in size."""
    if not path.is_file():
        raise VitplastError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VitplastError(f"unreadable checkpoint {path}: {exc}") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    head_keys = [k for k in state if k.startswith("head.")]
    own = model.state_dict()
    if any(k in own and own[k].shape != state[k].shape for k in head_keys):
        n = state["head.weight"].shape[0]
        model.reset_classifier(n)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VitplastError(
            f"{spec}: checkpoint does not fit the architecture (missing {list(missing)[:3]}, "
            f"unexpected {list(unexpected)[:3]})"
        )
