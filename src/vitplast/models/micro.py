"""The micro-ViT: a timm ``VisionTransformer`` for 32 px images (patch 4, width 192, depth 6, 3 heads).

Registered in timm's registry as ``vit_micro_patch4_32`` so that ``timm:vit_micro_patch4_32`` builds it
(random weights) and ``timm:vit_micro_patch4_32@FILE.safetensors`` loads a checkpoint. ``load_model("micro")``
loads the checkpoint shipped in this package (pretrained on ``mini:source`` by ``vitplast pretrain``);
``load_model("micro-long")`` the second one, pretrained longer at a higher learning rate into a regime closer to a
pretrained ViT's (its model card, ``models/micro_long/model_card.md``, records the recipe and the regime).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer

from vitplast.configs import BUNDLED_MODELS
from vitplast.errors import VitplastError

ARCH = "vit_micro_patch4_32"
MICRO_DIR = Path(__file__).parent / "micro"
CHECKPOINT_NAME = "micro_vit.safetensors"
CHECKPOINT = MICRO_DIR / CHECKPOINT_NAME
#: The micro-ViT checkpoints shipped in this package: model spec -> folder (checkpoint + model card).
BUNDLED: dict[str, Path] = {n: Path(__file__).parent / n.replace("-", "_") for n in BUNDLED_MODELS}
MICRO_CFG: dict[str, Any] = {
    "input_size": (3, 32, 32),
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "crop_pct": 1.0,
    "interpolation": "bilinear",
    "num_classes": 0,
    "first_conv": "patch_embed.proj",
    "classifier": "head",
}


@register_model
def vit_micro_patch4_32(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """ViT-Micro/4 at 32 px: 64 patches + class token, width 192, depth 6, 3 heads, MLP 768."""
    if pretrained:
        raise VitplastError("vit_micro_patch4_32 has no hub weights: use the model spec 'micro'")
    args: dict[str, Any] = {
        "img_size": 32,
        "patch_size": 4,
        "embed_dim": 192,
        "depth": 6,
        "num_heads": 3,
        "mlp_ratio": 4.0,
        "qkv_bias": True,
        "num_classes": 20,
    }
    args.update(kwargs)
    args.pop("pretrained_cfg", None)
    args.pop("pretrained_cfg_overlay", None)
    args.pop("cache_dir", None)
    model = VisionTransformer(**args)
    cfg = dict(MICRO_CFG, num_classes=args["num_classes"])
    setattr(model, "pretrained_cfg", cfg)  # noqa: B010  (timm reads it)
    setattr(model, "default_cfg", cfg)  # noqa: B010
    return model


def checkpoint_path(name: str = "micro") -> Path:
    """The shipped checkpoint of bundled model ``name`` (a key of :data:`BUNDLED`); VitplastError if missing."""
    path = BUNDLED[name] / CHECKPOINT_NAME
    if not path.is_file():
        raise VitplastError(
            f"the bundled {name} checkpoint is missing ({path}); run `vitplast pretrain --name {name} --install`"
        )
    return path
