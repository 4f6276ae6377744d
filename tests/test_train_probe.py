"""Linear probe: features are the mean-pooled last-block tokens; C is chosen on validation."""

from __future__ import annotations

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer

from vitplast.data import DataBundle, TensorImageSet, make_transform
from vitplast.models import as_vit
from vitplast.train.probe import extract_features, fit_probe, linear_probe


def test_features_are_mean_of_last_block_tokens() -> None:
    torch.manual_seed(0)
    m = VisionTransformer(img_size=16, patch_size=8, embed_dim=12, depth=2, num_heads=2, num_classes=0)
    m.pretrained_cfg = {"input_size": (3, 16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0,
                        "interpolation": "bilinear"}
    vit = as_vit(m.eval(), "tiny")
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    X, y = extract_features(vit, TensorImageSet(images, [0, 1, 0, 1, 2]), 2, torch.device("cpu"))
    x = torch.stack([make_transform(vit.data_config)(im) for im in images])
    with torch.no_grad():
        h = m.blocks(m._pos_embed(m.patch_embed(x)))  # timm's own forward up to the last block
    np.testing.assert_allclose(X, h.mean(dim=1).numpy(), rtol=1e-5, atol=1e-6)
    assert y.tolist() == [0, 1, 0, 1, 2]


def test_fit_probe_standardises_and_picks_c_on_validation() -> None:
    rng = np.random.default_rng(0)

    def blobs(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        X = rng.normal(size=(n, 5))
        X[:, 0] += 6 * y  # the class signal
        X[:, 1:] *= 1e4  # noise dimensions on a very different scale
        return X, y

    res = fit_probe(blobs(300), blobs(100), blobs(200))
    assert res["test_acc"] > 0.9
    assert res["val_acc"] == max(res["val_acc_per_C"].values())
    assert res["val_acc_per_C"][repr(res["C"])] == res["val_acc"]
    fixed = fit_probe(blobs(300), blobs(100), blobs(200), C=0.5)
    assert fixed["C"] == 0.5 and list(fixed["val_acc_per_C"]) == ["0.5"]


def test_linear_probe_on_in_memory_model_and_bundle() -> None:
    torch.manual_seed(0)
    m = VisionTransformer(img_size=16, patch_size=8, embed_dim=12, depth=1, num_heads=2, num_classes=0)
    m.pretrained_cfg = {"input_size": (3, 16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0,
                        "interpolation": "bilinear"}
    labels = torch.arange(60) % 2
    images = torch.zeros(60, 3, 16, 16, dtype=torch.uint8)
    images[labels == 1] = 250  # trivially separable
    bundle = DataBundle.from_single("two", ["dark", "light"], TensorImageSet(images, labels))
    res = linear_probe(as_vit(m, "tiny"), bundle, device="cpu")
    assert res["test_acc"] == 1.0 and res["num_classes"] == 2 and res["feature_dim"] == 12
