"""Adapter for Hugging Face transformers vision transformers: the only module that knows their module names.

Supported model types (``docs/model-families.md``): ``vit``, ``deit``, ``dinov2``, ``dinov2_with_registers``,
``beit``, ``clip_vision_model`` and ``siglip_vision_model``. A bare backbone gets a linear classifier on its own
pooled output (and the user is told, :meth:`ViT.note`); DeiT with teacher keeps its two heads, averaged.
Both module layouts are recognised: transformers 4.x (``encoder.layer.N.attention.attention.query``,
``attention.output.dense``, ``intermediate.dense``, ``output.dense``; DINOv2's ``mlp.activation`` and
``weights_in``; BEiT's bias inside the self-attention) and 5.x (``layers.N.attention.q_proj``, ``attention.o_proj``,
``mlp.fc1``, ``mlp.fc2``); ``docs/model-families.md`` lists every difference. Checkpoint directories saved by
either version load with the installed transformers (5.x renames 4.x keys when loading).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitplast.errors import VitplastError
from vitplast.models.vit import AttentionWeights, Block, DataConfig, LinearMap, ViT, scaled
from vitplast.reading import read_json

#: Backbone model types this adapter computes exactly.
SUPPORTED = ("vit", "deit", "dinov2", "dinov2_with_registers", "beit", "clip_vision_model", "siglip_vision_model")


def _first(obj: Any, *names: str) -> Any:
    """The first attribute of ``obj`` among ``names`` that exists and is not None."""
    for n in names:
        v = getattr(obj, n, None)
        if v is not None:
            return v
    return None


def _backbone(model: nn.Module) -> Any:
    for cand in (
        model,
        *(getattr(model, a, None) for a in ("vit", "deit", "dinov2", "dinov2_with_registers", "beit", "vision_model")),
    ):
        if cand is not None and hasattr(cand, "embeddings") and _layers(cand) is not None:
            return cand
    return None


def _layers(backbone: Any) -> Any:
    enc = getattr(backbone, "encoder", None)
    return _first(backbone, "layers") or (None if enc is None else _first(enc, "layer", "layers"))


def is_hf_vit(module: nn.Module) -> bool:
    return _backbone(module) is not None


#: Model types whose pooler (a dense + tanh layer that their image classifiers do not use) is skipped.
_UNUSED_POOLERS = ("vit", "deit")


def _pool(backbone: Any, pixel_values: Tensor) -> Tensor:
    """The backbone's own image feature: its pooled output (CLIP class token, SigLIP attention pool, BEiT mean)
    where it has one, else the final-normed class token."""
    out = backbone(pixel_values=pixel_values)
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None and backbone.config.model_type not in _UNUSED_POOLERS:
        return pooled
    h: Tensor = out.last_hidden_state
    return h[:, 0] if backbone.config.model_type != "siglip_vision_model" else h.mean(1)


class HFClassifier(nn.Module):
    """A bare HF backbone plus a linear classifier on its pooled feature (see :func:`_pool`)."""

    def __init__(self, backbone: Any, num_classes: int) -> None:
        super().__init__()
        self.vit = backbone
        dim = int(backbone.config.hidden_size)
        self.classifier: nn.Module = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, pixel_values: Tensor) -> Tensor:
        out: Tensor = self.classifier(_pool(self.vit, pixel_values))
        return out


#: Attribute names of classification layers: a classifier, or DeiT's class and distillation (teacher) heads.
_HEADS = ("classifier", "cls_classifier", "distillation_classifier")


def _bare_note(name: str, module: nn.Module, backbone: Any) -> str:
    """What a bare backbone's logits are: the one line the user is told when it is wrapped."""
    kind = backbone.config.model_type
    feature = {"siglip_vision_model": "attention-pool (MAP) output", "beit": "pooled output"}.get(
        kind, "final-normed class token"
    )
    unused = " (its pooler layer is not used)" if kind in _UNUSED_POOLERS and getattr(backbone, "pooler", None) else ""
    return (
        f"{name}: {type(module).__name__} has no classification head; vitplast classifies its {feature}"
        f"{unused} with a new linear layer, created by reset_head (until then logits are that feature)"
    )


def _first_output(out: Any) -> Tensor:
    return out[0] if isinstance(out, tuple | list) else out


def _scale_of(layer: Any, ls_module: str, ls_param: str) -> Tensor | None:
    """LayerScale of a residual branch: a module with ``lambda1`` (DINOv2) or a parameter (BEiT), else None."""
    m = getattr(layer, ls_module, None)
    if isinstance(m, nn.Module):
        scale = m.lambda1
        assert isinstance(scale, Tensor)
        return scale
    p = getattr(layer, ls_param, None)
    return p if isinstance(p, Tensor) else None


def _gated(act_fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """The gate of a stacked ``[gate; value]`` projection: ``[u_g, u_v] -> act(u_g) * u_v``."""

    def gate(u: Tensor) -> Tensor:
        g, v = u.chunk(2, dim=-1)
        out: Tensor = act_fn(g) * v
        return out

    return gate


def _mlp_parts(layer: Any, where: str) -> tuple[LinearMap, Callable[[Tensor], Tensor], nn.Linear]:
    """``(fc1, act, fc2 linear)`` in either layout; DINOv2's SwiGLU FFN stacks ``[gate; up]`` as fc1."""
    mlp = getattr(layer, "mlp", None)
    if mlp is not None and hasattr(mlp, "gate_proj"):  # DINOv2 SwiGLU, 5.x
        return LinearMap([mlp.gate_proj, mlp.up_proj]), _gated(mlp.act_fn), mlp.down_proj
    if mlp is not None and hasattr(mlp, "weights_in"):  # DINOv2 SwiGLU, 4.x: one stacked [gate; up] projection
        return LinearMap([mlp.weights_in]), _gated(F.silu), mlp.weights_out
    if mlp is not None and hasattr(mlp, "fc1"):  # 5.x, CLIP / SigLIP, DINOv2 (4.x calls its act "activation")
        return LinearMap([mlp.fc1]), _first(mlp, "activation_fn", "activation"), mlp.fc2
    if hasattr(layer, "intermediate"):  # transformers 4.x
        return LinearMap([layer.intermediate.dense]), layer.intermediate.intermediate_act_fn, layer.output.dense
    raise VitplastError(f"{where}: unrecognised HF MLP layout")


def _shared_bias(backbone: Any) -> nn.Module | None:
    """BEiT's relative position bias shared by all layers: on the model (5.x) or on the encoder (4.x)."""
    shared = getattr(backbone, "shared_position_bias", None)
    if shared is None:
        shared = getattr(getattr(backbone, "encoder", None), "relative_position_bias", None)
    return shared if isinstance(shared, nn.Module) else None


def _projections(att: Any, where: str) -> tuple[nn.Linear, nn.Linear, nn.Linear, nn.Linear]:
    if hasattr(att, "q_proj"):  # transformers 5.x
        return att.q_proj, att.k_proj, att.v_proj, _first(att, "o_proj", "out_proj")
    if hasattr(att, "attention") and hasattr(att.attention, "query"):  # transformers 4.x
        return att.attention.query, att.attention.key, att.attention.value, att.output.dense
    raise VitplastError(f"{where}: unrecognised HF attention layout {type(att).__name__}")


class HFViT(ViT):
    """The :class:`ViT` view of a HF ViT / DeiT / DINOv2 / BEiT / CLIP / SigLIP vision model."""

    library = "hf"

    def __init__(self, module: nn.Module, name: str = "hf", data_config: DataConfig | None = None) -> None:
        model: Any = module
        backbone = _backbone(model)
        if backbone is None:
            kids = ", ".join(n for n, _ in model.named_children())
            raise VitplastError(f"{name}: no ViT encoder layers found; top-level modules are: {kids}")
        config = backbone.config
        kind = getattr(config, "model_type", "")
        if kind not in SUPPORTED:
            raise VitplastError(f"{name}: HF model type {kind!r} is not supported (supported: {', '.join(SUPPORTED)})")
        bare = not any(isinstance(getattr(model, h, None), nn.Linear | nn.Identity) for h in _HEADS)
        if bare:
            model = HFClassifier(backbone, 0)
        self.backbone = backbone
        self.kind = kind
        self.module = model
        blocks = [self._parse_layer(i, layer, name) for i, layer in enumerate(_layers(backbone))]
        shared = _shared_bias(backbone)
        if blocks and isinstance(shared, nn.Module):
            blocks[0].params["mha"] += list(shared.parameters())
        classifier = self.classifier
        n_classes = int(classifier.out_features) if isinstance(classifier, nn.Linear) else 0
        super().__init__(model, blocks, data_config or _default_data_config(config), name, n_classes)
        if bare:
            self.note(_bare_note(name, module, backbone))

    # --- parsing: the one place that knows HF layer layouts ------------------------------------------
    def _parse_layer(self, i: int, layer: Any, name: str) -> Block:
        where = f"{name}: layer {i}"
        ln1 = _first(layer, "layernorm_before", "norm1", "layer_norm1")
        ln2 = _first(layer, "layernorm_after", "norm2", "layer_norm2")
        att = _first(layer, "attention", "self_attn")
        if not isinstance(ln1, nn.LayerNorm) or not isinstance(ln2, nn.LayerNorm) or att is None:
            raise VitplastError(f"{where}: not a pre-norm layer with two LayerNorms and self-attention")
        q, k, v, o = _projections(att, where)
        fc1, act, fc2_lin = _mlp_parts(layer, where)
        s1 = _scale_of(layer, "layer_scale1", "lambda_1")
        s2 = _scale_of(layer, "layer_scale2", "lambda_2")
        heads = int(self.backbone.config.num_attention_heads)
        v4 = not hasattr(att, "q_proj")
        # BEiT's own relative position bias: on the layer (5.x) or inside the self-attention (4.x)
        rel = getattr(att.attention if v4 else layer, "relative_position_bias", None)
        shared = _shared_bias(self.backbone)

        def call(x: Tensor) -> Tensor:
            if rel is None and shared is None:
                return _first_output(att(x))
            if v4:  # 4.x adds its own bias at the native grid (from `resolution`) and takes the shared one as a tensor
                bias = None if shared is None else self._rel_bias([shared], x.shape[1])
                return _first_output(att(x, relative_position_bias=bias, resolution=self._resolution()))
            return _first_output(att(x, attention_mask=self._rel_bias([rel, shared], x.shape[1])))

        def attention() -> AttentionWeights:
            wo: Tensor = o.weight
            bo: Tensor | None = o.bias
            if s1 is not None:
                wo, bo = s1.unsqueeze(1) * wo, None if bo is None else s1 * bo
            return AttentionWeights(q.weight, k.weight, v.weight, wo, q.bias, k.bias, v.bias, bo, heads)

        ls_params = {c: [p] if isinstance(p, nn.Parameter) else [] for c, p in (("mha", s1), ("fc2", s2))}
        return Block(
            ln1=ln1,
            mha=scaled(call, lambda: s1),
            ln2=ln2,
            fc1=fc1,
            act=act,
            fc2=LinearMap([fc2_lin], None if s2 is None else (lambda: s2)),
            attention=attention,
            params={
                "ln1": list(ln1.parameters()),
                "mha": list(att.parameters()) + ([] if rel is None else list(rel.parameters())) + ls_params["mha"],
                "ln2": list(ln2.parameters()),
                "fc1": list(fc1.parameters()),
                "fc2": list(fc2_lin.parameters()) + ls_params["fc2"],
            },
            mha_unbounded="relative position bias" if rel is not None or shared is not None else None,
        )

    def _resolution(self) -> tuple[int, int]:
        size = self.backbone.config.image_size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def _rel_bias(self, mods: list[Any], n: int) -> Tensor:
        """BEiT's relative position bias ``[1, H, n, n]`` at the native grid: the sum of ``mods``' biases."""
        h, w = self._resolution()
        window = (h // self.backbone.config.patch_size, w // self.backbone.config.patch_size)
        out: Tensor = sum(m(window, False, dim_size=n) for m in mods if m is not None)
        return out

    # --- forward pieces --------------------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        h = _first_output(self.backbone.embeddings(x))
        pre = getattr(self.backbone, "pre_layrnorm", None)  # CLIP's norm before the first layer
        return pre(h) if pre is not None else h

    def logits(self, x: Tensor) -> Tensor:
        out = self.module(pixel_values=x)
        return out if isinstance(out, Tensor) else out.logits

    def _heads(self) -> list[nn.Module]:
        """The model's classification layers: ``classifier``, or DeiT's ``cls_classifier`` and
        ``distillation_classifier`` (the model with a teacher head)."""
        return [m for h in _HEADS if isinstance(m := getattr(self.module, h, None), nn.Module)]

    def pre_logits(self, x: Tensor) -> Tensor:
        """The classifier's input, captured from the model's own forward pass; with two heads (DeiT with
        teacher: class token ``c``, distillation token ``t``) the mean ``(c + t) / 2`` of their inputs."""
        seen: list[Tensor] = []
        handles = [h.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0])) for h in set(self._heads())]
        try:
            self.logits(x)
        finally:
            for handle in handles:
                handle.remove()
        return torch.stack(seen).mean(0)

    @property
    def classifier(self) -> nn.Linear:
        return self._heads()[0]  # type: ignore[return-value]

    def _reset_classifier(self, num_classes: int) -> None:
        """A new linear classifier; DeiT with teacher gets one new layer as both heads, so that its forward
        ``(head(c) + head(t)) / 2`` equals ``classifier(pre_logits)``."""
        model: Any = self.module
        old = self.classifier
        dim = int(old.in_features) if isinstance(old, nn.Linear) else int(self.backbone.config.hidden_size)
        new = nn.Linear(dim, num_classes).to(self.device)
        for h in _HEADS:
            if hasattr(model, h):
                setattr(model, h, new)
        if hasattr(model, "num_labels"):
            model.num_labels = num_classes
            model.config.num_labels = num_classes

    def embed_params(self) -> list[nn.Parameter]:
        params = list(self.backbone.embeddings.parameters())
        pre = getattr(self.backbone, "pre_layrnorm", None)
        return params + ([] if pre is None else list(pre.parameters()))


def wrap_hf(module: nn.Module, name: str = "hf", data_config: DataConfig | None = None) -> HFViT:
    """Build the :class:`ViT` view of a HF vision model (refused with one line if unsupported)."""
    return HFViT(module, name, data_config)


def _default_data_config(config: Any) -> DataConfig:
    """ViTImageProcessor defaults: resize to image_size (no crop), bilinear, mean = std = 0.5."""
    size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    return DataConfig(int(size), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), crop_pct=1.0, interpolation="bilinear")


def _processor_data_config(path: Path, config: Any) -> DataConfig:
    """Preprocessing from ``preprocessor_config.json`` when the directory has one, else the defaults."""
    default = _default_data_config(config)
    f = path / "preprocessor_config.json"
    if not f.is_file():
        return default
    p = read_json(f)
    try:
        mean = tuple(float(v) for v in p.get("image_mean", default.mean))
        std = tuple(float(v) for v in p.get("image_std", default.std))
        size = p.get("size", default.input_size)
        if isinstance(size, dict):
            size = size.get("height", size.get("shortest_edge", default.input_size))
        resample = {2: "bilinear", 3: "bicubic", 0: "nearest"}.get(int(p.get("resample", 2)), "bilinear")
        return DataConfig(int(size), (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]), 1.0, resample)
    except (TypeError, ValueError, IndexError) as exc:
        raise VitplastError(f"{f} is not a preprocessor config ({exc})") from None


def _model_class(config: Any, ref: str) -> Any:
    """The transformers class to build: an image classifier, or the vision tower of CLIP / SigLIP."""
    import transformers

    kind = getattr(config, "model_type", None)
    if kind in ("clip", "clip_vision_model"):
        return transformers.CLIPVisionModel
    if kind in ("siglip", "siglip_vision_model"):
        return transformers.SiglipVisionModel
    if kind not in SUPPORTED:
        raise VitplastError(f"{ref}: HF model type {kind!r} is not supported (supported: {', '.join(SUPPORTED)})")
    cls: Any = transformers.AutoModelForImageClassification._model_mapping[type(config)]
    options: tuple[Any, ...] = cls if isinstance(cls, tuple) else (cls,)  # DeiT maps to (classifier, classifier with teacher)
    saved = set(getattr(config, "architectures", None) or ())
    return next((c for c in options if c.__name__ in saved), options[0])


def load_hf(ref: str, *, random_weights: bool, spec: str) -> ViT:
    """``hf:ORG/NAME`` from the hub (cache first) or ``hf:DIR`` saved with ``save_pretrained``."""
    try:
        from transformers import AutoConfig
    except ImportError:
        raise VitplastError("HF models need transformers: pip install 'vitplast[hf]'") from None
    local = Path(ref).expanduser()
    is_local = local.is_dir()
    if not is_local and (ref.startswith((".", "/", "~")) or ref.count("/") > 1):
        raise VitplastError(f"HF model directory {ref} does not exist")
    if is_local and not (local / "config.json").is_file():
        raise VitplastError(f"{ref} is not a HF model directory (no config.json)")
    try:
        config = AutoConfig.from_pretrained(str(local) if is_local else ref)
    except Exception as exc:
        raise VitplastError(
            f"could not load the config of {ref!r} ({type(exc).__name__}); offline? use a local directory"
        ) from None
    model_cls = _model_class(config, ref)
    vision = getattr(config, "vision_config", None) or config  # CLIP / SigLIP: the vision tower's config
    try:
        model = model_cls(vision) if random_weights else model_cls.from_pretrained(str(local) if is_local else ref)
    except Exception as exc:
        raise VitplastError(f"could not load weights of {ref!r}: {type(exc).__name__}: {exc}") from None
    model.eval()
    dc = _processor_data_config(local, vision) if is_local else _default_data_config(vision)
    return wrap_hf(model, spec, dc)
