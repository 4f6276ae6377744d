"""Models the adapters cannot compute exactly are refused at load with one line naming what is unsupported."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch
from timm.layers import HybridEmbed, RmsNorm
from timm.models import register_model
from timm.models.eva import Eva
from timm.models.vision_transformer import Block, ParallelScalingBlock, ResPostBlock, VisionTransformer
from torch import nn

from tests.test_cli_analyze import run
from vitplast.errors import VitplastError
from vitplast.models import as_vit

TINY = {"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 1, "num_heads": 2, "num_classes": 3}


def _hybrid(**kw: Any) -> VisionTransformer:
    stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    embed = partial(HybridEmbed, backbone=stem, patch_size=2)
    return VisionTransformer(embed_layer=embed, **(TINY | kw))  # type: ignore[arg-type]


class OwnBlock(Block):
    """A block class no parser is registered for (same layout as timm's, still refused: parsers go by class)."""


UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "post_norm": (lambda **kw: VisionTransformer(block_fn=ResPostBlock, **(TINY | kw)), "post-norm blocks"),
    "eva_post_norm": (lambda **kw: Eva(use_post_norm=True, **(TINY | kw)), "post-norm blocks"),
    "parallel": (lambda **kw: VisionTransformer(block_fn=ParallelScalingBlock, **(TINY | kw)), "parallel blocks"),
    "hybrid_cnn": (_hybrid, "hybrid CNN stems"),
    "unknown_block": (lambda **kw: VisionTransformer(block_fn=OwnBlock, **(TINY | kw)), "block type OwnBlock is not"),
    "rmsnorm": (lambda **kw: VisionTransformer(norm_layer=RmsNorm, **(TINY | kw)), "not a LayerNorm"),
}
for _name, (_make, _) in UNSUPPORTED.items():

    def _factory(pretrained: bool = False, _make: Any = _make, **kw: Any) -> nn.Module:
        for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kw.pop(k, None)
        m: nn.Module = _make(**kw)
        return m

    _factory.__name__ = f"vitplast_test_{_name}"
    register_model(_factory)


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_unsupported_architectures_are_refused_at_load(name: str) -> None:
    make, match = UNSUPPORTED[name]
    with pytest.raises(VitplastError, match=match):
        as_vit(make())


@pytest.mark.parametrize("name", ["post_norm", "parallel", "hybrid_cnn", "unknown_block"])
def test_cli_refuses_them_with_one_line_and_exit_2(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["analyze", "--model", f"timm:vitplast_test_{name}", "--random-weights", "--source", "random"]
    code, _, err = run([*argv, "--target", "random", "--pairs", "2", "--out", str(tmp_path / "o")], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert UNSUPPORTED[name][1] in lines[0] and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_unsupported_hf_model_type_is_refused() -> None:
    from transformers import SwinConfig, SwinModel

    torch.manual_seed(0)
    model = SwinModel(SwinConfig(image_size=32, patch_size=4, embed_dim=16, depths=[1], num_heads=[2], window_size=2))
    with pytest.raises(VitplastError, match=r"not supported|no ViT encoder"):
        as_vit(model)
