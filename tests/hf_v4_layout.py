"""Re-arrange a transformers 5.x vision model into the transformers 4.x module tree, for tests on 5.x.

CI has only transformers 5.x installed; a 4.x model differs from it in module names, the attention's calling
convention and (DINOv2 SwiGLU) one stacked parameter, never in the maths. :func:`as_v4_layout` rebuilds those
differences on a 5.x instance, checked once against transformers 4.57.6 (``docs/model-families.md``):

* ViT, DeiT, BEiT: layers under ``encoder.layer`` (5.x: ``layers``); FFN as ``intermediate.dense`` +
  ``intermediate.intermediate_act_fn`` and ``output.dense`` (5.x: ``mlp.fc1``, ``mlp.activation_fn``, ``mlp.fc2``).
* ViT, DeiT, DINOv2 (+ registers), BEiT: attention as ``attention.attention.{query,key,value}`` and
  ``attention.output.dense``, returning a tuple (5.x: ``attention.{q,k,v,o}_proj``).
* DINOv2: the MLP's activation is ``mlp.activation`` (5.x: ``mlp.activation_fn``); the SwiGLU FFN is one stacked
  ``mlp.weights_in = [gate; up]`` and ``mlp.weights_out`` (5.x: ``gate_proj``, ``up_proj``, ``down_proj``).
* BEiT: a layer's relative position bias lives in its self-attention
  (``attention.attention.relative_position_bias``), which computes it from a ``resolution`` argument and adds a
  ``relative_position_bias`` tensor passed in (the shared one, on ``encoder.relative_position_bias``); 5.x keeps
  both on the layer / model (``relative_position_bias``, ``shared_position_bias``) and passes an
  ``attention_mask``.
* CLIP / SigLIP vision models: the tower is wrapped as ``vision_model`` (5.x: the model itself).

The result shares the 5.x instance's parameters (except the stacked SwiGLU projection, a copy); its
``state_dict()`` keys are the 4.x checkpoint keys. Its own top-level forward is not kept.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers
from torch import Tensor, nn

_BACKBONES = ("vit", "deit", "dinov2", "beit")


class _V4Attention(nn.Module):
    """4.x ``*Attention``: ``attention.{query,key,value}`` (+ BEiT's own bias), ``output.dense``; returns a tuple."""

    def __init__(self, v5: Any, rel: nn.Module | None, patch_size: int) -> None:
        super().__init__()
        self._v5 = [v5]  # not registered: the parameters live under the 4.x names only
        self.attention = nn.Module()
        self.attention.query, self.attention.key, self.attention.value = v5.q_proj, v5.k_proj, v5.v_proj
        if rel is not None:
            self.attention.relative_position_bias = rel
        self.output = nn.Module()
        self.output.dense = v5.o_proj
        self._patch = patch_size

    def forward(
        self,
        h: Tensor,
        head_mask: Tensor | None = None,
        output_attentions: bool = False,
        relative_position_bias: Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        resolution: tuple[int, int] | None = None,
    ) -> tuple[Tensor]:
        bias = relative_position_bias
        rel = getattr(self.attention, "relative_position_bias", None)
        if rel is not None:
            assert resolution is not None, "4.x BEiT attention needs the resolution"
            window = (resolution[0] // self._patch, resolution[1] // self._patch)
            own = rel(window, interpolate_pos_encoding, dim_size=h.shape[1])
            bias = own if bias is None else own + bias
        return (self._v5[0](h, attention_mask=bias)[0],)


def _stacked(parts: list[nn.Linear]) -> nn.Linear:
    out = nn.Linear(parts[0].in_features, sum(p.out_features for p in parts))
    with torch.no_grad():
        out.weight.copy_(torch.cat([p.weight for p in parts]))
        out.bias.copy_(torch.cat([p.bias for p in parts]))
    return out


def _v4_layer(layer: Any, patch_size: int) -> None:
    """Rewrite one ViT / DeiT / DINOv2 / BEiT layer in place into its 4.x module names."""
    rel = getattr(layer, "relative_position_bias", None)
    if rel is not None:
        layer.relative_position_bias = None
    layer.attention = _V4Attention(layer.attention, rel, patch_size)
    mlp = layer.mlp
    if hasattr(mlp, "gate_proj"):  # DINOv2 SwiGLU FFN
        new = nn.Module()
        new.weights_in, new.weights_out = _stacked([mlp.gate_proj, mlp.up_proj]), mlp.down_proj
        layer.mlp = new
    elif hasattr(layer, "norm1"):  # DINOv2: same MLP, activation renamed
        new = nn.Module()
        new.fc1, new.activation, new.fc2 = mlp.fc1, mlp.activation_fn, mlp.fc2
        layer.mlp = new
    else:  # ViT, DeiT, BEiT: intermediate + output
        del layer.mlp
        layer.intermediate, layer.output = nn.Module(), nn.Module()
        layer.intermediate.dense, layer.intermediate.intermediate_act_fn = mlp.fc1, mlp.activation_fn
        layer.output.dense = mlp.fc2


def as_v4_layout(model: nn.Module) -> nn.Module:
    """The 4.x module tree of a 5.x HF vision model (see the module docstring); ``model`` is rewritten in place.

    Under transformers 4.x the model already has that tree and is returned unchanged.
    """
    if int(transformers.__version__.split(".")[0]) < 5:
        return model
    m: Any = model
    if m.config.model_type in ("clip_vision_model", "siglip_vision_model"):
        outer = nn.Module()
        outer.vision_model = model  # the 5.x model plays the 4.x *VisionTransformer tower
        return outer
    backbone = next((getattr(m, a) for a in _BACKBONES if hasattr(m, a)), m)
    patch = int(backbone.config.patch_size)
    if hasattr(backbone, "layers"):  # ViT, DeiT, BEiT: 5.x flattened encoder.layer into layers
        layers = backbone.layers
        del backbone.layers
        backbone.encoder = nn.Module()
        backbone.encoder.layer = layers
    for layer in backbone.encoder.layer:
        _v4_layer(layer, patch)
    shared = getattr(backbone, "shared_position_bias", None)
    if shared is not None:
        backbone.shared_position_bias = None
        backbone.encoder.relative_position_bias = shared
    return model
