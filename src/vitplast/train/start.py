"""The LP-FT start scored on its own: the model and head a finetuning run with ``head_init="probe"`` starts from,
evaluated before any step (``docs/mini-protocol.md``, "Two probes, two feature sets").

:func:`evaluate_start` builds the run exactly as :func:`vitplast.train.loop.prepare` builds it (pretrained
backbone, the standardised logistic-regression probe on the classifier's input fitted on the train split with
``C`` chosen on validation, :mod:`vitplast.train.head_init`) and scores the validation and test splits with the
engine's own evaluation (:func:`vitplast.train.loop.evaluate_split`). Its numbers are those of a finetuning run
whose weights never move (lr 0): ``val_acc`` = its ``best_val_acc``, ``test_acc`` and ``test_hits.npz`` = its test
score. With pretrained weights the head does not depend on the run's seed (the probe overwrites the seeded
random head), so one start serves every seed of a target; with random weights the backbone is the seed's.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from vitplast.io import output_dir, write_json_atomic
from vitplast.precision import resolve_precision
from vitplast.runtime import describe_device, resolve_device, resolve_workers
from vitplast.train.config import RunOptions, TrainConfig
from vitplast.train.loop import config_record, evaluate_split, prepare
from vitplast.train.scoring import HITS_FILE, save_hits


def start_config(cfg: TrainConfig) -> TrainConfig:
    """The start of ``cfg``'s run as a config: ``cfg`` with ``head_init="probe"``."""
    return dataclasses.replace(cfg, head_init="probe")


def evaluate_start(cfg: TrainConfig, out: str | Path | None = None, opts: RunOptions | None = None) -> dict[str, Any]:
    """Score the LP-FT start of ``cfg`` (module docstring) on the validation and test splits; returns the result
    and, with ``out``, writes ``config.json`` (the run's record, :func:`~vitplast.train.loop.config_record`, without
    trainable counts),
    ``test_hits.npz`` and ``result.json`` there, all or nothing. Result: ``val_acc``, ``val_loss``, ``n_val``,
    ``test_acc``, ``test_loss``, ``n_test``, ``correct`` (test), ``wall_seconds``."""
    t0 = time.perf_counter()
    opts = opts or RunOptions()
    prep = prepare(start_config(cfg))
    device = resolve_device(opts.device)
    workers = resolve_workers(opts.workers, device)
    prec = resolve_precision(prep.cfg.precision, device)
    prep.vit.to(device)
    val = evaluate_split(prep, "val", device, workers, opts, prec)
    test = evaluate_split(prep, "test", device, workers, opts, prec)
    c = prep.cfg
    result = {
        "model": c.model, "data": c.data, "train": "start", "seed": c.seed, "random_weights": c.random_weights,
        "val_acc": val.acc, "val_loss": val.loss, "n_val": val.n,
        "test_acc": test.acc, "test_loss": test.loss, "n_test": test.n, "correct": test.correct,
        "precision": c.precision, "precision_used": prec.name, "device": describe_device(device),
        "warnings": list(prep.bundle.info.get("warnings", [])), "wall_seconds": time.perf_counter() - t0,
    }
    if out is not None:
        config = {k: v for k, v in config_record(prep, device, workers, prec).items()
                  if not k.startswith("trainable_params")}  # nothing is trained
        with output_dir(Path(out)) as stage:
            write_json_atomic(stage / "config.json", config)
            if test.hits is not None:
                save_hits(stage / HITS_FILE, test.hits)
            write_json_atomic(stage / "result.json", result)
    return result
