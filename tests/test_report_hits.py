"""Per-test-image correctness recorded by finetuning runs and probes (input of the paired bootstrap)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import tiny_train_data as tiny_data
from tests.tiny_models import tiny_train_vit as tiny_vit
from vitplast.train import finetune
from vitplast.train.probe import linear_probe
from vitplast.train.scoring import HITS_FILE, load_hits, save_hits


def test_hits_round_trip_compactly(tmp_path: Path) -> None:
    hits = np.random.default_rng(0).random(1001) < 0.5
    save_hits(tmp_path / "h.npz", hits)
    assert np.array_equal(load_hits(tmp_path / "h.npz"), hits)
    assert (tmp_path / "h.npz").stat().st_size < 600  # 1 bit per image plus the npz header
    assert load_hits(tmp_path / "missing.npz") is None


@pytest.mark.parametrize("kind", ["finetune", "probe"])
def test_runs_record_hits_that_equal_their_test_accuracy(tmp_path: Path, kind: str) -> None:
    vit, data = tiny_vit(), tiny_data()
    out = tmp_path / kind
    if kind == "finetune":
        finetune(vit, data, "mha", out=out, steps=4, batch_size=8, eval_every=2, lr=0.3, warmup_steps=0, seed=1,
                 device="cpu")
    else:
        linear_probe(vit, data, out=out, device="cpu")
    result = json.loads((out / "result.json").read_text())
    hits = load_hits(out / HITS_FILE)
    assert hits is not None and len(hits) == len(data.split("test"))  # type: ignore[arg-type]
    assert hits.mean() == pytest.approx(result["test_acc"])
