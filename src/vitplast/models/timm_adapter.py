"""Adapter for timm vision transformers: the only module that knows timm's module names.

Supported (``docs/model-families.md``): ``VisionTransformer`` (class token or none, register tokens,
``norm_pre``, LayerScale, qk-norm, gated MLPs, average / attention-pool heads), ``VisionTransformerDistilled``
(class and distillation token), ``Eva`` (EVA-02, ``vit_*_rope_*``: rotary position embedding, SwiGLU, MLP
norm) and ``Beit`` (relative position bias, separate q/v biases). Each block class has one parser, registered with
:func:`block_parser` (as timm registers its models); a block class without one, or an attention or MLP it does
not accept, is refused at load, so no model is half-supported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vitplast.errors import VitplastError
from vitplast.models.vit import AttentionWeights, Block, DataConfig, LinearMap, ViT, scaled

#: Block classes that are refused, with the reason (matched by class name, so no import is needed).
REFUSED_BLOCKS = {
    "ResPostBlock": "post-norm blocks (norm after the residual branch) are not supported",
    "EvaBlockPostNorm": "post-norm blocks (norm after the residual branch) are not supported",
    "ParallelScalingBlock": "parallel blocks (attention and MLP on the same input) are not supported",
    "ParallelThingsBlock": "parallel blocks (attention and MLP on the same input) are not supported",
    "DiffParallelScalingBlock": "parallel blocks (attention and MLP on the same input) are not supported",
}


@dataclass(frozen=True)
class BlockLayout:
    """What a block class decides of its :class:`Block`: the LayerScale of each branch (None: none), the attention
    as a function of the tokens, and why the attention bound does not apply (its own reasons)."""

    scale1: Tensor | None
    scale2: Tensor | None
    call: Callable[[Tensor], Tensor]
    reasons: tuple[str, ...] = ()


#: ``(model, block index, block) -> BlockLayout``.
BlockParser = Callable[[Any, int, Any], BlockLayout]
#: Block class (module-qualified) -> (the attention classes it accepts, its parser). Filled by :func:`block_parser`.
BLOCK_PARSERS: dict[str, tuple[frozenset[str], BlockParser]] = {}


def block_parser(block_class: str, attentions: tuple[str, ...]) -> Callable[[BlockParser], BlockParser]:
    """Decorator registering the parser of timm's ``block_class``, whose attention must be one of ``attentions``."""

    def add(fn: BlockParser) -> BlockParser:
        BLOCK_PARSERS[block_class] = (frozenset(attentions), fn)
        return fn

    return add


_MLPS = {"timm.layers.mlp.Mlp", "timm.layers.mlp.GluMlp", "timm.layers.mlp.SwiGLU"}


def _qualname(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__name__}"


def is_timm_vit(module: nn.Module) -> bool:
    return hasattr(module, "patch_embed") and isinstance(getattr(module, "blocks", None), nn.Sequential | nn.ModuleList)


def _describe(module: nn.Module) -> str:
    names = [n for n, _ in module.named_children()]
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")


def _is_identity(m: Any) -> bool:
    return m is None or isinstance(m, nn.Identity)


def _attention_weights(attn: Any, scale: Tensor | None) -> AttentionWeights:
    """Q/K/V/O of a fused-qkv or separate-projection attention; W_O and its bias times the LayerScale."""
    if getattr(attn, "qkv", None) is not None:
        w = attn.qkv.weight
        d = w.shape[0] // 3
        qw, kw, vw = w[:d], w[d : 2 * d], w[2 * d :]
        b = attn.qkv.bias
        if getattr(attn, "q_bias", None) is not None:  # BEiT / EVA: separate q and v biases, k bias zero
            sep = torch.cat([attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias])
            b = sep if b is None or not getattr(attn, "qkv_bias_separate", False) else b + sep
        qb, kb, vb = (None, None, None) if b is None else (b[:d], b[d : 2 * d], b[2 * d :])
    else:
        qw, kw, vw = attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight
        qb, kb, vb = attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias
        if getattr(attn, "q_bias", None) is not None:
            qb, kb, vb = attn.q_bias, None, attn.v_bias
    o, ob = attn.proj.weight, attn.proj.bias
    if scale is not None:
        o = scale.unsqueeze(1) * o
        ob = None if ob is None else scale * ob
    return AttentionWeights(qw, kw, vw, o, qb, kb, vb, ob, int(attn.num_heads))


def _gate(mlp: Any, swapped: bool) -> Any:
    """The part of a gated MLP between its stacked projection ``[u_a, u_b]`` and FC2 (gate, then MLP norm)."""

    def act(u: Tensor) -> Tensor:
        a, b = u.chunk(2, dim=-1)
        g = mlp.act(a) * b if swapped else a * mlp.act(b)
        out: Tensor = mlp.norm(g)
        return out

    return act


def _mlp_parts(mlp: Any, where: str) -> tuple[LinearMap, Any, list[nn.Parameter]]:
    """``(fc1, act, act parameters)`` of a timm MLP; ``act`` includes an MLP-internal norm (its params go to fc1)."""
    kind = _qualname(mlp)
    if kind not in _MLPS:
        raise VitplastError(f"{where}: MLP {type(mlp).__name__} is not supported")
    norm = getattr(mlp, "norm", None)
    if not _is_identity(norm) and not isinstance(norm, nn.LayerNorm):
        raise VitplastError(f"{where}: MLP norm {type(norm).__name__} is not supported")
    extra = list(norm.parameters()) if norm is not None else []
    if kind.endswith("SwiGLU"):  # separate value and gate projections: fc1 = [W_x; W_g]
        return LinearMap([mlp.fc1_x, mlp.fc1_g]), _gate(mlp, swapped=False), extra
    if not isinstance(getattr(mlp, "fc1", None), nn.Linear):
        raise VitplastError(f"{where}: MLP with convolutional fc1 is not supported")
    if kind.endswith("GluMlp"):
        if mlp.chunk_dim != -1:
            raise VitplastError(f"{where}: gated MLP split on dim {mlp.chunk_dim} is not supported")
        return LinearMap([mlp.fc1]), _gate(mlp, swapped=not mlp.gate_last), extra

    def act(u: Tensor) -> Tensor:
        out: Tensor = mlp.norm(mlp.act(u))
        return out

    return LinearMap([mlp.fc1]), act, extra


@block_parser("timm.models.vision_transformer.Block", attentions=("timm.layers.attention.Attention",))
def _vit_block(model: Any, i: int, blk: Any) -> BlockLayout:
    """LayerScale modules ``ls1`` / ``ls2`` (Identity when absent); the attention sees the tokens alone."""
    s1 = None if _is_identity(blk.ls1) else blk.ls1.gamma
    return BlockLayout(s1, None if _is_identity(blk.ls2) else blk.ls2.gamma, blk.attn)


@block_parser("timm.models.eva.EvaBlock",
              attentions=("timm.models.eva.EvaAttention", "timm.layers.attention.AttentionRope"))
def _eva_block(model: Any, i: int, blk: Any) -> BlockLayout:
    """LayerScale parameters ``gamma_1`` / ``gamma_2`` (None when absent); the attention takes the model's rotary
    embedding for the native patch grid (as ``Eva._pos_embed``)."""
    attn = blk.attn

    def call(x: Tensor) -> Tensor:
        rope = model.rope
        emb = None
        if rope is not None:
            emb = rope.get_embed() if hasattr(rope, "feat_shape") else rope.get_embed(model.patch_embed.grid_size)
            if getattr(model, "rope_mixed", False):
                emb = emb[i]
        out: Tensor = attn(x, rope=emb)
        return out

    return BlockLayout(blk.gamma_1, blk.gamma_2, call, ("rotary position embedding",) if model.rope is not None else ())


@block_parser("timm.models.beit.Block", attentions=("timm.models.beit.Attention",))
def _beit_block(model: Any, i: int, blk: Any) -> BlockLayout:
    """LayerScale parameters ``gamma_1`` / ``gamma_2``; the attention takes the model's shared relative position
    bias (its own table is inside the attention)."""
    attn = blk.attn

    def call(x: Tensor) -> Tensor:
        shared = model.rel_pos_bias() if model.rel_pos_bias is not None else None
        out: Tensor = attn(x, shared_rel_pos_bias=shared)
        return out

    relative = attn.relative_position_bias_table is not None or model.rel_pos_bias is not None
    return BlockLayout(blk.gamma_1, blk.gamma_2, call, ("relative position bias",) if relative else ())


class TimmViT(ViT):
    """The :class:`ViT` view of a timm ``VisionTransformer``, ``VisionTransformerDistilled``, ``Eva`` or ``Beit``."""

    library = "timm"

    def __init__(self, module: nn.Module, name: str = "timm") -> None:
        model: Any = module
        if not is_timm_vit(model):
            raise VitplastError(
                f"{name}: no transformer blocks found (a ViT needs blocks, patch_embed and position embedding); "
                f"top-level modules are: {_describe(model)}"
            )
        if hasattr(model.patch_embed, "backbone"):
            raise VitplastError(f"{name}: hybrid CNN stems (a CNN before the patch embedding) are not supported")
        self.module = model
        self.family = type(model).__name__
        blocks = [self._parse_block(i, blk, name) for i, blk in enumerate(model.blocks)]
        shared = getattr(model, "rel_pos_bias", None)  # BEiT's relative position bias shared by all blocks
        if blocks and isinstance(shared, nn.Module):
            blocks[0].params["mha"] += list(shared.parameters())
        super().__init__(model, blocks, _data_config(model), name, int(getattr(model, "num_classes", 0)))

    # --- parsing: the common checks; what differs per block class is in BLOCK_PARSERS ----------------------
    def _parse_block(self, i: int, blk: Any, name: str) -> Block:
        where = f"{name}: block {i}"
        kind = type(blk).__name__
        if kind in REFUSED_BLOCKS:
            raise VitplastError(f"{where} is a {kind}: {REFUSED_BLOCKS[kind]}")
        if _qualname(blk) not in BLOCK_PARSERS:
            raise VitplastError(f"{where}: block type {kind} is not supported")
        attentions, parse = BLOCK_PARSERS[_qualname(blk)]
        for attr in ("norm1", "norm2"):
            if not isinstance(getattr(blk, attr, None), nn.LayerNorm):
                norm = type(getattr(blk, attr, None)).__name__
                raise VitplastError(f"{where}: '{attr}' is {norm}, not a LayerNorm (only LayerNorm is supported)")
        attn = blk.attn
        if _qualname(attn) not in attentions:
            raise VitplastError(f"{where}: attention {type(attn).__name__} is not supported")
        if getattr(attn, "num_kv_heads", attn.num_heads) != attn.num_heads:
            raise VitplastError(f"{where}: grouped-query attention is not supported")
        fc1, act, act_params = _mlp_parts(blk.mlp, where)
        reasons = []
        if not (_is_identity(getattr(attn, "q_norm", None)) and _is_identity(getattr(attn, "k_norm", None))):
            reasons.append("qk-norm")
        if not _is_identity(getattr(attn, "norm", None)):
            reasons.append("a norm inside attention")
        if getattr(attn, "gate", None) is not None:
            reasons.append("gated attention")
        layout = parse(self.module, i, blk)
        s1, s2 = layout.scale1, layout.scale2
        return Block(
            ln1=blk.norm1,
            mha=scaled(layout.call, lambda: s1),
            ln2=blk.norm2,
            fc1=fc1,
            act=act,
            fc2=LinearMap([blk.mlp.fc2], None if s2 is None else (lambda: s2)),
            attention=lambda: _attention_weights(attn, s1),
            params={
                "ln1": list(blk.norm1.parameters()),
                "mha": list(attn.parameters()) + ([] if s1 is None else [s1]),
                "ln2": list(blk.norm2.parameters()),
                "fc1": list(fc1.parameters()) + act_params,
                "fc2": list(blk.mlp.fc2.parameters()) + ([] if s2 is None else [s2]),
            },
            mha_unbounded=", ".join([*reasons, *layout.reasons]) or None,
        )

    # --- forward pieces --------------------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        model: Any = self.module
        x = model.patch_embed(x)
        if self.family == "Beit":
            x = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
            if model.pos_embed is not None:
                x = x + model.pos_embed
            out: Tensor = model.pos_drop(x)
            return out
        x = model._pos_embed(x)
        if isinstance(x, tuple):  # Eva returns (tokens, rotary embedding); patch dropout is inside
            x = x[0]
        elif isinstance(getattr(model, "patch_drop", None), nn.Module):
            x = model.patch_drop(x)
        return model.norm_pre(x) if hasattr(model, "norm_pre") else x

    def logits(self, x: Tensor) -> Tensor:
        out: Tensor = self.module(x)
        return out

    def pre_logits(self, x: Tensor) -> Tensor:
        """timm's ``forward_head(pre_logits=True)``: for distilled DeiT the mean ``(c + t) / 2`` of the two tokens."""
        model: Any = self.module
        out: Tensor = model.forward_head(model.forward_features(x), pre_logits=True)
        return out

    @property
    def classifier(self) -> nn.Linear:
        """The classifier (for distilled DeiT the class-token head; ``head_dist`` is also in group ``head``)."""
        head = self.module.get_classifier()  # type: ignore[operator]
        out: nn.Linear = head[0] if isinstance(head, tuple) else head
        return out

    def prefer_batchable_kernels(self) -> None:
        """timm's fused attention (``scaled_dot_product_attention``) has no vmap batching rule on CPU (vmap then
        loops over the members): use timm's explicit softmax attention instead."""
        for m in self.module.modules():
            if hasattr(m, "fused_attn"):
                setattr(m, "fused_attn", False)  # noqa: B010  (a plain attribute, not a tensor)

    def _reset_classifier(self, num_classes: int) -> None:
        """timm's new head; a distilled DeiT's two new heads are one layer (``head_dist`` is ``head``), so its
        eval forward ``(head(c) + head_dist(t)) / 2`` equals ``classifier(pre_logits)`` with ``pre_logits = (c + t) / 2``."""
        model: Any = self.module
        model.reset_classifier(num_classes)
        if isinstance(getattr(model, "head_dist", None), nn.Linear):
            model.head_dist = model.head

    def embed_params(self) -> list[nn.Parameter]:
        model: Any = self.module
        params = list(model.patch_embed.parameters())
        if isinstance(getattr(model, "norm_pre", None), nn.Module):
            params += list(model.norm_pre.parameters())
        for attr in ("cls_token", "reg_token", "dist_token", "pos_embed"):
            p = getattr(model, attr, None)
            if isinstance(p, nn.Parameter):
                params.append(p)
        return params


def wrap_timm(module: nn.Module, name: str = "timm") -> TimmViT:
    """Build the :class:`ViT` view of a timm vision transformer (refused with one line if unsupported)."""
    return TimmViT(module, name)


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
    own = model.state_dict()
    wrong = [k for k in state if k in own and own[k].shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise VitplastError(f"{spec}: checkpoint {path} does not fit the architecture ({len(wrong)} tensors of "
                            f"another shape, e.g. {k} {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VitplastError(
            f"{spec}: checkpoint does not fit the architecture (missing {list(missing)[:3]}, "
            f"unexpected {list(unexpected)[:3]})"
        )
