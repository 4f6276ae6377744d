"""Scoring a classifier on a labelled set: loss and accuracy averaged per sample (README, "Reproducing the paper offline").

``accuracy = (number of correct predictions) / N`` and ``loss = (sum of per-sample cross-entropies) / N``
over all ``N`` images, so a partial last batch weighs by its size (not one batch, one vote).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from vitplast.data.transforms import Transformed
from vitplast.precision import Precision, resolve_precision
from vitplast.progress import Progress, phase
from vitplast.train.batches import loader


@dataclass(frozen=True)
class Score:
    """Per-sample averages over ``n`` images."""

    loss: float
    acc: float
    n: int
    correct: int
    #: per-image correctness in dataset order (bool ``[n]``), for the report's paired bootstrap
    hits: np.ndarray | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "acc": self.acc, "n": self.n, "correct": self.correct}


@torch.inference_mode()
def score(
    logits_fn: Callable[[Tensor], Tensor],
    dataset: Dataset[Any],
    transform: Callable[[Any], Tensor] | None,
    batch_size: int,
    device: torch.device,
    workers: int = 0,
    precision: Precision | None = None,
    progress: Progress | None = None,
    label: str = "scoring",
) -> Score:
    """Cross-entropy and accuracy of ``logits_fn`` on ``dataset`` (images passed through ``transform``);
    the forward runs under ``precision`` (default fp32), the loss and counts are summed in float32/int."""
    ds = Transformed(dataset, transform) if transform is not None else dataset
    prec = precision or resolve_precision("fp32", device)
    advance = phase(progress, label, len(ds))  # type: ignore[arg-type]
    loss_sum, correct, n = 0.0, 0, 0
    hits: list[np.ndarray] = []
    for x, y in loader(ds, batch_size, workers, pin=device.type == "cuda"):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with prec.forward():
            logits = logits_fn(x)
        logits = logits.float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        ok = logits.argmax(dim=1) == y
        hits.append(ok.cpu().numpy())
        correct += int(ok.sum())
        n += int(y.numel())
        advance(int(y.numel()))
    if n == 0:
        return Score(float("nan"), float("nan"), 0, 0)
    return Score(loss_sum / n, correct / n, n, correct, np.concatenate(hits))


HITS_FILE = "test_hits.npz"


def save_hits(path: str | Path, hits: np.ndarray) -> None:
    """Write per-image correctness compactly and atomically: ``npz`` with ``bits`` (``np.packbits``) and ``n``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, bits=np.packbits(np.asarray(hits, dtype=bool)), n=np.int64(len(hits)))
    os.replace(tmp, path)


def load_hits(path: str | Path) -> np.ndarray | None:
    """The bool array :func:`save_hits` wrote, or ``None`` when the file is missing or unreadable."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            return np.unpackbits(z["bits"], count=int(z["n"])).astype(bool)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
