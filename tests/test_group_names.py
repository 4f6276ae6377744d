"""Trainable groups of a classic timm ViT, checked against a naive mapping from timm's parameter names."""

from __future__ import annotations

import re

import timm

from vitplast.models import as_vit

NAIVE = {
    "embed": r"^(patch_embed\.|cls_token$|pos_embed$)",
    "ln1": r"^blocks\.\d+\.norm1\.",
    "mha": r"^blocks\.\d+\.attn\.",
    "ln2": r"^blocks\.\d+\.norm2\.",
    "fc1": r"^blocks\.\d+\.mlp\.fc1\.",
    "fc2": r"^blocks\.\d+\.mlp\.fc2\.",
    "head": r"^(norm\.|head\.)",
}


def test_groups_match_parameter_names() -> None:
    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2,
        num_classes=3,
    )
    vit = as_vit(model, "tiny")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = vit.param_groups()
    for group, pattern in NAIVE.items():
        expected = sorted(n for n in names.values() if re.search(pattern, n))
        got = sorted(names[id(p)] for p in groups[group])
        assert got == expected, group
    assert sum(len(v) for v in groups.values()) == len(names)
