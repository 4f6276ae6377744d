"""The bundled micro-ViT: loads offline, matches its model card, and scores its recorded source accuracy."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from tests.conftest import heavy_scale
from vitplast.data import DataContext, load_data, make_transform
from vitplast.models import load_model
from vitplast.models.micro import CHECKPOINT, MICRO_DIR

CARD = json.loads((MICRO_DIR / "model_card.json").read_text())


def test_checkpoint_file_matches_its_card() -> None:
    data = CHECKPOINT.read_bytes()
    assert len(data) <= 12 * 2**20
    assert hashlib.sha256(data).hexdigest() == CARD["checkpoint_sha256"]
    assert (MICRO_DIR / "model_card.md").read_text().count(CARD["checkpoint_sha256"]) == 1


def test_markdown_card_is_rendered_from_the_json_card() -> None:
    from vitplast.train.pretrain import model_card_markdown

    assert (MICRO_DIR / "model_card.md").read_text() == model_card_markdown(CARD)
    for row in CARD.get("reproductions", []):  # a re-creation: same command but the device, different file
        assert row["command"].replace(" --device cpu", " --device cuda") == CARD["command"]
        assert row["checkpoint_sha256"] != CARD["checkpoint_sha256"] and 0.5 < row["agreement"] <= 1


def test_micro_loads_offline_with_its_own_preprocessing() -> None:
    vit = load_model("micro")
    assert (vit.depth, vit.dim, vit.num_heads, vit.mlp_dim) == (6, 192, 3, 768)
    assert vit.num_classes == CARD["num_classes"] == 48
    assert vit.data_config.input_size == 32 and vit.data_config.mean == (0.5, 0.5, 0.5)
    rand = load_model("micro", random_weights=True)
    w, r = vit.blocks[0].fc1.weight, rand.blocks[0].fc1.weight
    assert w.shape == r.shape and not torch.equal(w, r)


@pytest.mark.heavy
def test_micro_reaches_its_recorded_source_accuracy() -> None:
    """Reduced (CI): 1000 test images, within 3.5 points (> 3 binomial std). Full: every image, within 0.2."""
    vit = load_model("micro")
    test = load_data("mini:source", DataContext(input_size=32)).test
    n = len(test) if heavy_scale() == "full" else 1000  # type: ignore[arg-type]
    idx = np.random.default_rng(0).permutation(len(test))[:n]  # type: ignore[arg-type]
    tf = make_transform(vit.data_config)
    correct = 0
    with torch.no_grad():
        for i in range(0, n, 250):
            items = [test[int(j)] for j in idx[i : i + 250]]
            x = torch.stack([tf(img) for img, _ in items])
            y = torch.tensor([label for _, label in items])
            correct += int((vit.logits(x).argmax(1) == y).sum())
    acc = correct / n
    tol = 0.002 if n == len(test) else 0.035  # type: ignore[arg-type]
    assert abs(acc - CARD["source_test_acc"]) <= tol, (acc, CARD["source_test_acc"])
