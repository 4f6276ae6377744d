"""The LP-FT start scored on its own is a finetuning run whose weights never move (lr 0), in every number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vitplast.train import cache, loop
from vitplast.train.api import finetune
from vitplast.train.config import TrainConfig
from vitplast.train.scoring import HITS_FILE, load_hits
from vitplast.train.start import evaluate_start


def _cfg(seed: int = 1, **kw: object) -> TrainConfig:
    settings = {"train": "mha", "head_init": "probe", "batch_size": 32, "steps": 4, "eval_every": 2} | kw
    return TrainConfig.for_data("micro", "random:96", seed=seed, **settings)


def test_the_start_equals_a_run_at_lr_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = evaluate_start(_cfg(), tmp_path / "start")
    monkeypatch.setattr(loop, "lr_at", lambda step, cfg: 0.0)  # the config refuses lr 0: the schedule gives it
    run = finetune("micro", "random:96", _cfg(), out=tmp_path / "run", device="cpu").result
    assert run["best_step"] == 2  # every evaluation ties with the first: nothing moved
    assert (start["val_acc"], start["val_loss"]) == (run["best_val_acc"], run["best_val_loss"])
    assert (start["test_acc"], start["test_loss"], start["n_test"]) == (run["test_acc"], run["test_loss"],
                                                                        run["n_test"])
    hits = load_hits(tmp_path / "start" / HITS_FILE)
    assert hits is not None and hits.size == start["n_test"] > 0
    assert np.array_equal(hits, load_hits(tmp_path / "run" / HITS_FILE))
    assert start["correct"] == int(hits.sum())
    written = json.loads((tmp_path / "start" / "result.json").read_text())
    assert written["test_acc"] == start["test_acc"] and written["wall_seconds"] > 0
    config = json.loads((tmp_path / "start" / "config.json").read_text())
    assert config["train"]["head_init"] == "probe" and config["fingerprint"] and "trainable_params" not in config


def test_a_trained_run_leaves_its_start(tmp_path: Path) -> None:
    """The comparison above can fail: at a real lr the run's validation loss moves away from the start's."""
    start = evaluate_start(_cfg())
    run = finetune("micro", "random:96", _cfg(lr=3e-2), device="cpu").result
    assert run["best_val_loss"] != start["val_loss"]


def test_the_start_of_pretrained_weights_does_not_depend_on_the_seed() -> None:
    a = evaluate_start(_cfg(seed=0))
    cache.clear()  # the probe head is fitted again, under the other seed
    b = evaluate_start(_cfg(seed=5, head_init="random"))
    assert (a["val_loss"], a["test_loss"]) == (b["val_loss"], b["test_loss"])  # the probe replaces the seeded head
