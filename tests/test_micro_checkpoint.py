"""The bundled micro-ViTs (``micro``, ``micro-long``): each loads offline, matches its model card, scores its
recorded source accuracy, and (``micro-long``) its card's regime is what the weights and a fresh analysis give."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import heavy_scale
from vitplast.configs import BUNDLED_MODELS
from vitplast.data import DataContext, load_data, make_transform
from vitplast.models import load_model
from vitplast.models.micro import BUNDLED, CHECKPOINT_NAME
from vitplast.train.model_card import REGIME_TARGETS, model_card_markdown


def card(name: str) -> dict[str, Any]:
    return json.loads((BUNDLED[name] / "model_card.json").read_text())  # type: ignore[no-any-return]


def test_every_bundled_model_has_a_folder() -> None:
    assert tuple(BUNDLED) == BUNDLED_MODELS == ("micro", "micro-long")
    assert all(card(n)["name"] == n for n in BUNDLED)


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_checkpoint_file_matches_its_card(name: str) -> None:
    data = (BUNDLED[name] / CHECKPOINT_NAME).read_bytes()
    c = card(name)
    assert len(data) <= 12 * 2**20
    assert hashlib.sha256(data).hexdigest() == c["checkpoint_sha256"]
    assert (BUNDLED[name] / "model_card.md").read_text().count(c["checkpoint_sha256"]) == 1


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_markdown_card_is_rendered_from_the_json_card(name: str) -> None:
    c = card(name)
    assert (BUNDLED[name] / "model_card.md").read_text() == model_card_markdown(c)
    for row in c.get("reproductions", []):  # a re-creation: same command but the device, different file
        assert row["command"].replace(" --device cpu", " --device cuda") == c["command"]
        assert row["checkpoint_sha256"] != c["checkpoint_sha256"] and 0.5 < row["agreement"] <= 1


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_bundled_model_loads_offline_with_its_own_preprocessing(name: str) -> None:
    vit = load_model(name)
    assert (vit.depth, vit.dim, vit.num_heads, vit.mlp_dim) == (6, 192, 3, 768)
    assert vit.num_classes == card(name)["num_classes"] == 48
    assert vit.data_config.input_size == 32 and vit.data_config.mean == (0.5, 0.5, 0.5)
    rand = load_model(name, random_weights=True)
    w, r = vit.blocks[0].fc1.weight, rand.blocks[0].fc1.weight
    assert w.shape == r.shape and not torch.equal(w, r)


def test_the_two_bundled_models_differ_and_micro_long_records_its_search() -> None:
    a, b = load_model("micro"), load_model("micro-long")
    assert not torch.equal(a.blocks[0].fc1.weight, b.blocks[0].fc1.weight)
    c = card("micro-long")
    assert "--name micro-long" in c["command"] and c["recipe"]["steps"] * c["recipe"]["batch_size"] > 3000 * 128
    chosen = [r for r in c["recipe_search"] if r.get("chosen")]
    assert len(chosen) == 1 and chosen[0]["regime"] == c["regime"]
    assert chosen[0]["source_test_acc"] == c["source_test_acc"]


MET = {"micro": {"token_rms": False, "gamma_dev": False},
       "micro-long": {"token_rms": False, "gamma_dev": True}}


@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_card_regime_matches_the_weights(name: str) -> None:
    """rms(|gamma - 1|) per LayerNorm recomputed from the shipped tensors (naive), and the card's verdicts
    recomputed from the card's own numbers against the declared targets."""
    r = card(name)["regime"]
    state = load_file(str(BUNDLED[name] / CHECKPOINT_NAME))
    for ln, key in (("ln1", "norm1"), ("ln2", "norm2")):
        naive = [float(((state[f"blocks.{i}.{key}.weight"].float() - 1) ** 2).mean().sqrt()) for i in range(6)]
        assert r["gamma_dev_rms"][ln] == pytest.approx(naive, abs=1e-6)
    assert r["targets"] == REGIME_TARGETS and r["middle_layers"] == [1, 2, 3, 4]
    gd = max(max(v) for v in r["gamma_dev_rms"].values())
    assert r["met"] == {
        "token_rms": r["token_rms"]["source"] >= 0.5,
        "gamma_dev": gd >= 0.2,
    }
    assert r["met"] == MET[name]  # what the cards, the README and docs/diagnostics.md say


@pytest.mark.heavy
@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_card_regime_is_reproduced_by_a_fresh_analysis(name: str) -> None:
    from vitplast.train.model_card import regime

    fresh, recorded = regime(name, "cpu"), card(name)["regime"]
    assert fresh["met"] == recorded["met"] and fresh["ranking_mean"] == recorded["ranking_mean"]
    assert fresh["token_rms"]["source"] == pytest.approx(recorded["token_rms"]["source"], rel=1e-4)
    for key in ("source_embedded", "source"):
        assert fresh["attn_entropy"][key] == pytest.approx(recorded["attn_entropy"][key], rel=1e-4)
    for key, values in recorded.get("indicators", {}).items():  # recorded by scripts/refresh_card_regime.py
        assert fresh["indicators"][key] == pytest.approx(values, rel=1e-4)
    assert fresh["ranking_relative"] == recorded.get("ranking_relative", fresh["ranking_relative"])
    for comp, value in recorded["plasticity_mean"].items():
        assert fresh["plasticity_mean"][comp] == pytest.approx(value, rel=1e-4)


@pytest.mark.heavy
@pytest.mark.parametrize("name", BUNDLED_MODELS)
def test_bundled_model_reaches_its_recorded_source_accuracy(name: str) -> None:
    """Reduced (CI): 1000 test images, within 3.5 points (> 3 binomial std). Full: every image, within 0.2."""
    vit = load_model(name)
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
    assert abs(acc - card(name)["source_test_acc"]) <= tol, (acc, card(name)["source_test_acc"])
