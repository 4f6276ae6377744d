"""Initialising the new classifier from a linear probe (LP-FT; Kumar et al., ICLR 2022).

``head_init="probe"`` fits a logistic regression on standardised classifier inputs ``f = vit.pre_logits(x)``
of the train split (eval transform; in a finetuning run with ``C`` chosen on the validation split, as the linear
probe chooses it) and writes it into the classifier:
``logits = W (f - mu) / sigma + b = (W / sigma) f + (b - W mu / sigma)``. Finetuning then starts from the
probe's solution instead of a random head. The paper's protocol (``head_init="random"``) is the default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vitplast.data import DataBundle, Transformed, make_transform
from vitplast.models import ViT
from vitplast.train.batches import loader


@torch.no_grad()
def classifier_inputs(vit: ViT, dataset: Any, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(F [N, d], y [N])``: the classifier's inputs for every image of ``dataset`` (eval transform)."""
    was_training = vit.module.training
    vit.eval()
    feats, labels = [], []
    device = vit.device
    for x, y in loader(Transformed(dataset, make_transform(vit.data_config)), batch_size, 0):
        feats.append(vit.pre_logits(x.to(device)).float().cpu().numpy())
        labels.append(y.numpy())
    vit.train(was_training)
    return np.concatenate(feats), np.concatenate(labels)


def init_head_from_probe(vit: ViT, bundle: DataBundle, C: float = 1.0, max_iter: int = 2000) -> float:
    """Set the classifier to the standardised logistic-regression probe; returns its train accuracy."""
    w, b, acc = fit_probe_head(vit, bundle, C, max_iter)
    set_head(vit, w, b)
    return acc


def set_head(vit: ViT, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Copy ``(weight, bias)`` (from :func:`fit_probe_head`) into the classifier, in its dtype and device."""
    head = vit.classifier
    with torch.no_grad():
        head.weight.copy_(weight.to(head.weight))
        head.bias.copy_(bias.to(head.bias))


def fit_probe_head(vit: ViT, bundle: DataBundle, C: float | None = 1.0,
                   max_iter: int = 2000) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The standardised probe on the train split (module docstring) as a classifier ``(weight [C, d], bias
    [C])`` in float64 on the CPU, and its train accuracy. It reads the backbone only, not the current head.
    ``C=None`` chooses the inverse regularisation on the validation split from
    :data:`vitplast.train.probe.C_GRID` (ties: the first), as the linear probe does."""
    from sklearn.linear_model import LogisticRegression

    from vitplast.train.probe import C_GRID

    f, y = classifier_inputs(vit, bundle.train)
    mu, sigma = f.mean(0), f.std(0) + 1e-6
    z = (f - mu) / sigma
    if C is None:
        fv, yv = classifier_inputs(vit, bundle.val)
        fits = [LogisticRegression(C=c, max_iter=max_iter).fit(z, y) for c in C_GRID]
        scores = [clf.score((fv - mu) / sigma, yv) for clf in fits]
        clf = fits[scores.index(max(scores))]
    else:
        clf = LogisticRegression(C=C, max_iter=max_iter).fit(z, y)
    w = np.zeros((vit.num_classes, f.shape[1]))
    b = np.zeros(vit.num_classes)
    w[clf.classes_] = clf.coef_ if len(clf.classes_) > 2 else np.vstack([-clf.coef_, clf.coef_])
    b[clf.classes_] = clf.intercept_ if len(clf.classes_) > 2 else np.array([-clf.intercept_[0], clf.intercept_[0]])
    if len(clf.classes_) < vit.num_classes:  # classes absent from train can never win
        missing = np.setdiff1d(np.arange(vit.num_classes), clf.classes_)
        b[missing] = -1e4
    acc = float(clf.score(z, y))
    return torch.as_tensor(w / sigma), torch.as_tensor(b - (w / sigma) @ mu), acc
