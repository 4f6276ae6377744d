"""Linear probe (README, "Reproducing the paper offline"): logistic regression on standardised last-block features.

Features are ``ViT.features`` (mean over tokens of the last block's output) of the pretrained model on
eval-transformed images. A ``StandardScaler`` and a multinomial ``LogisticRegression`` are fit on the
train split; the inverse regularisation ``C`` is chosen on the validation split from :data:`C_GRID`
(unless given), and the test accuracy of the model fit on the train split is reported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vitplast.configs import default_of
from vitplast.data import DataBundle, Transformed, make_transform
from vitplast.data.base import check_trainable
from vitplast.errors import warn
from vitplast.io import output_dir, versions, write_json_atomic
from vitplast.models.vit import ViT
from vitplast.precision import Precision, resolve_precision
from vitplast.progress import Advance, Progress, phase
from vitplast.runtime import describe_device, resolve_device, resolve_workers
from vitplast.train import cache
from vitplast.train.batches import loader
from vitplast.train.config import ProbeConfig
from vitplast.train.scoring import HITS_FILE, save_hits

C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)


@torch.inference_mode()
def extract_features(
    vit: ViT,
    dataset: Dataset[Any],
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    precision: Precision | None = None,
    advance: Advance | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(X [N, d] float32, y [N] int64)``: ``vit.features`` of every image, in dataset order, the forward
    run under ``precision`` (default fp32); ``advance(k)`` is called with each batch's size."""
    vit.eval()
    prec = precision or resolve_precision("fp32", device)
    feats, labels = [], []
    ds = Transformed(dataset, make_transform(vit.data_config))
    for x, y in loader(ds, batch_size, workers, pin=device.type == "cuda"):
        with prec.forward():
            f = vit.features(x.to(device, non_blocking=True))
        feats.append(f.float().cpu().numpy())
        labels.append(y.numpy())
        if advance is not None:
            advance(len(y))
    return np.concatenate(feats), np.concatenate(labels)


def fit_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    C: float | None = None,
    grid: Sequence[float] = C_GRID,
    max_iter: int = 2000,
) -> dict[str, Any]:
    """Fit scaler + logistic regression on ``train``; pick ``C`` on ``val`` (or use ``C``); score all splits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(c: float) -> Any:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
        return clf.fit(*train)

    candidates = [C] if C is not None else list(grid)
    val_accs: dict[str, float] = {}
    best: tuple[float, float, Any] | None = None
    for c in candidates:
        clf = fit(c)
        acc = float(clf.score(*val))
        val_accs[repr(c)] = acc
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    assert best is not None
    val_acc, c, clf = best
    return {
        "C": c,
        "val_acc_per_C": val_accs,
        "train_acc": float(clf.score(*train)),
        "val_acc": val_acc,
        "test_acc": float(clf.score(*test)),
        "test_hits": np.asarray(clf.predict(test[0]) == test[1]),
    }


def linear_probe(
    model: str | ViT,
    data: str | DataBundle,
    *,
    out: str | Path | None = None,
    C: float | None = None,
    batch_size: int = default_of(ProbeConfig, "batch_size"),
    device: str = "auto",
    workers: int | None = None,
    random_weights: bool = False,
    precision: str = "auto",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Linear probe of ``model`` on ``data`` (module docstring); writes ``config.json`` and ``result.json``
    to ``out`` when given (all or nothing) and returns the result. Features are extracted under
    ``precision`` (:mod:`vitplast.precision`) and fitted in float32/float64 by scikit-learn."""
    ProbeConfig(C=C, batch_size=batch_size, precision=precision)  # the probe's own settings, checked first
    t0 = time.perf_counter()
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    vit = model if isinstance(model, ViT) else cache.model(model, random_weights=random_weights)
    bundle = data if isinstance(data, DataBundle) else cache.data(data, vit.data_config.input_size)
    warnings = check_trainable(bundle)
    n_workers = resolve_workers(workers, dev)
    vit.to(dev)
    sizes = {s: len(bundle.split(s)) for s in ("train", "val", "test")}  # type: ignore[arg-type]
    advance = phase(progress, f"probe features {bundle.name}", sum(sizes.values()))
    splits = {s: extract_features(vit, bundle.split(s), batch_size, dev, n_workers, prec, advance) for s in sizes}
    t_feat = time.perf_counter() - t0
    for msg in warnings:
        warn(msg)
    fitted = fit_probe(splits["train"], splits["val"], splits["test"], C=C)
    hits = fitted.pop("test_hits")
    result = {
        "model": vit.name,
        "data": data if isinstance(data, str) else bundle.name,
        "train": "probe",
        **fitted,
        "n_train": len(splits["train"][1]),
        "n_val": len(splits["val"][1]),
        "n_test": len(splits["test"][1]),
        "feature_dim": int(splits["train"][0].shape[1]),
        "num_classes": bundle.num_classes,
        "feature_seconds": t_feat,
        "wall_seconds": time.perf_counter() - t0,
        "device": describe_device(dev),
        "precision": precision,
        "precision_used": prec.name,
        "warnings": warnings,
    }
    if out is not None:
        config = {
            "probe": {"model": result["model"], "data": result["data"], "C": C, "C_grid": list(C_GRID),
                      "batch_size": batch_size, "random_weights": random_weights, "precision": precision},
            "data_config": vit.data_config.to_dict(),
            "versions": versions(),
        }
        with output_dir(Path(out)) as stage:
            write_json_atomic(stage / "config.json", config)
            save_hits(stage / HITS_FILE, hits)
            write_json_atomic(stage / "result.json", result)
    return result
