"""Adapter for Hugging Face transformers ViT models: the only module that knows their module names.

Both module layouts are recognised: transformers 4.x (``encoder.layer.N.attention.attention.query``,
``attention.output.dense``, ``intermediate.dense``, ``output.dense``) and 5.x (``layers.N.attention.q_proj``,
``attention.o_proj``, ``mlp.fc1``, ``mlp.fc2``). Checkpoint directories saved by either version load with the
installed transformers (5.x renames 4.x keys when loading).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from vitplast.errors import VitplastError
from vitplast.models.vit import AttentionWeights, Block, DataConfig, ViT, first_output


def _backbone(model: nn.Module) -> Any:
    for cand in (model, getattr(model, "vit", None)):
        if (
            cand is not None
            and hasattr(cand, "embeddings")
            and (hasattr(cand, "layers") or hasattr(getattr(cand, "encoder", None), "layer"))
        ):
            return cand
    return None


def is_hf_vit(module: nn.Module) -> bool:
    return _backbone(module) is not None


class HFClassifier(nn.Module):
    """A bare HF ``ViTModel`` plus a linear classifier on the class token (after the final norm)."""

    def __init__(self, backbone: Any, num_classes: int) -> None:
        super().__init__()
        self.vit = backbone
        dim = int(backbone.config.hidden_size)
        self.classifier = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, pixel_values: Tensor) -> Tensor:
        h = self.vit(pixel_values=pixel_values).last_hidden_state
        out: Tensor = self.classifier(h[:, 0])
        return out


def _layer_parts(layer: Any) -> dict[str, Any]:
    """Named components of one ViT layer in either layout."""
    att = layer.attention
    if hasattr(att, "q_proj"):  # transformers 5.x
        mlp = layer.mlp
        return {
            "mha": first_output(att),
            "mha_module": att,
            "q": att.q_proj,
            "k": att.k_proj,
            "v": att.v_proj,
            "o": att.o_proj,
            "fc1": mlp.fc1,
            "act": mlp.activation_fn,
            "fc2": mlp.fc2,
        }
    if hasattr(att, "attention") and hasattr(att.attention, "query"):  # transformers 4.x
        return {
            "mha": first_output(att),
            "mha_module": att,
            "q": att.attention.query,
            "k": att.attention.key,
            "v": att.attention.value,
            "o": att.output.dense,
            "fc1": layer.intermediate.dense,
            "act": layer.intermediate.intermediate_act_fn,
            "fc2": layer.output.dense,
        }
    raise VitplastError(f"unrecognised HF attention layout: {type(att).__name__}")


def wrap_hf(module: nn.Module, name: str = "hf", data_config: DataConfig | None = None) -> ViT:
    """Build the :class:`ViT` view of a HF ``ViTForImageClassification`` or ``ViTModel``."""
    model: Any = module
    backbone = _backbone(model)
    if backbone is None:
        kids = ", ".join(n for n, _ in model.named_children())
        raise VitplastError(f"{name}: no ViT encoder layers found; top-level modules are: {kids}")
    if not hasattr(model, "classifier"):
        model = HFClassifier(backbone, 0)
    config = backbone.config
    layers = list(backbone.layers if hasattr(backbone, "layers") else backbone.encoder.layer)
    heads = int(config.num_attention_heads)
    blocks: list[Block] = []
    for layer in layers:
        parts = _layer_parts(layer)

        def attention(p: dict[str, Any] = parts) -> AttentionWeights:
            return AttentionWeights(
                q=p["q"].weight,
                k=p["k"].weight,
                v=p["v"].weight,
                o=p["o"].weight,
                q_bias=p["q"].bias,
                k_bias=p["k"].bias,
                v_bias=p["v"].bias,
                o_bias=p["o"].bias,
                num_heads=heads,
            )

        blocks.append(
            Block(
                ln1=layer.layernorm_before,
                mha=parts["mha"],
                ln2=layer.layernorm_after,
                fc1=parts["fc1"],
                act=parts["act"],
                fc2=parts["fc2"],
                attention=attention,
                params={
                    "ln1": list(layer.layernorm_before.parameters()),
                    "mha": list(parts["mha_module"].parameters()),
                    "ln2": list(layer.layernorm_after.parameters()),
                    "fc1": list(parts["fc1"].parameters()),
                    "fc2": list(parts["fc2"].parameters()),
                },
            )
        )

    def embed(x: Tensor) -> Tensor:
        out: Tensor = backbone.embeddings(x)
        return out

    def group_params() -> dict[str, list[nn.Parameter]]:
        groups: dict[str, list[nn.Parameter]] = {}
        seen: set[int] = set()
        for comp in ("ln1", "mha", "ln2", "fc1", "fc2"):
            groups[comp] = [p for b in blocks for p in b.params[comp]]
            seen.update(id(p) for p in groups[comp])
        groups["embed"] = list(backbone.embeddings.parameters())
        seen.update(id(p) for p in groups["embed"])
        groups["head"] = [p for p in model.parameters() if id(p) not in seen]
        return groups

    def classify(x: Tensor) -> Tensor:
        out = model(pixel_values=x)
        return out if isinstance(out, Tensor) else out.logits

    def reset_head(num_classes: int) -> None:
        dim = int(config.hidden_size)
        device = next(model.parameters()).device
        model.classifier = nn.Linear(dim, num_classes).to(device)
        if hasattr(model, "num_labels"):
            model.num_labels = num_classes
            config.num_labels = num_classes

    if data_config is None:
        data_config = _default_data_config(config)
    classifier = getattr(model, "classifier", None)
    n_classes = int(classifier.out_features) if isinstance(classifier, nn.Linear) else 0
    return ViT(
        module=model,
        blocks=blocks,
        embed=embed,
        final_norm=backbone.layernorm,
        classify=classify,
        reset_head=reset_head,
        group_params=group_params,
        data_config=data_config,
        name=name,
        library="hf",
        num_classes=n_classes,
        pre_logits=lambda x: backbone(pixel_values=x).last_hidden_state[:, 0],  # after the final norm
        classifier=lambda: model.classifier,
    )


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
    try:
        p = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError):
        return default
    mean = tuple(p.get("image_mean", default.mean))
    std = tuple(p.get("image_std", default.std))
    size = p.get("size", default.input_size)
    if isinstance(size, dict):
        size = size.get("height", size.get("shortest_edge", default.input_size))
    resample = {2: "bilinear", 3: "bicubic", 0: "nearest"}.get(int(p.get("resample", 2)), "bilinear")
    return DataConfig(int(size), (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]), 1.0, resample)


def load_hf(ref: str, *, random_weights: bool, spec: str) -> ViT:
    """``hf:ORG/NAME`` from the hub (cache first) or ``hf:DIR`` saved with ``save_pretrained``."""
    try:
        from transformers import AutoConfig, ViTForImageClassification
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
    if getattr(config, "model_type", None) != "vit":
        raise VitplastError(f"{ref}: model_type {getattr(config, 'model_type', None)!r} is not a ViT")
    try:
        if random_weights:
            model = ViTForImageClassification(config)
        else:
            model = ViTForImageClassification.from_pretrained(str(local) if is_local else ref)
    except Exception as exc:
        raise VitplastError(f"could not load weights of {ref!r}: {type(exc).__name__}: {exc}") from None
    model.eval()
    dc = _processor_data_config(local, config) if is_local else _default_data_config(config)
    return wrap_hf(model, spec, dc)
