"""Scoring a finished run's best checkpoint on another data set (``vitplast evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitplast.data import make_transform
from vitplast.errors import VitplastError
from vitplast.io import write_json_atomic
from vitplast.models.vit import ViT
from vitplast.precision import resolve_precision
from vitplast.progress import Progress
from vitplast.runtime import resolve_device, resolve_workers
from vitplast.train import cache
from vitplast.train import checkpoint as ck
from vitplast.train.groups import freeze_except
from vitplast.train.loop import build_model
from vitplast.train.rundir import RunDir
from vitplast.train.scoring import score


def load_run_model(run_dir: str | Path, model: ViT | None = None) -> ViT:
    """The best-validation model of a finished run: base model from its spec (or ``model``, which must
    be the run's base model), its new head, and the trained tensors of ``best.safetensors``."""
    rd = RunDir(Path(run_dir))
    cfg = rd.train_config()
    stored = rd.read_config()
    rd.read_result()  # the run must be finished
    vit = build_model(cfg, int(stored["num_classes"]), model)
    freeze_except(vit, cfg.train)
    if ck.frozen_fingerprint(vit) != stored.get("fingerprint"):
        raise VitplastError(f"the frozen weights of {cfg.model} differ from those the run in {rd.path} was trained on")
    ck.load_state(vit, ck.load_tensors(rd.best))
    vit.eval()
    return vit


def evaluate_run(
    run_dir: str | Path,
    data: str,
    split: str = "test",
    *,
    device: str = "auto",
    workers: int | None = None,
    batch_size: int = 256,
    model: ViT | None = None,
    precision: str = "auto",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score the best checkpoint of ``run_dir`` on ``split`` of ``data`` (per-sample accuracy and loss), the
    forward pass under ``precision`` (:mod:`vitplast.precision`, recorded in the entry) in inference mode.

    The entry ``{data, split, acc, loss, n, ...}`` is added to ``result.json``'s ``evaluations`` (replacing
    an earlier entry for the same data and split) and returned. The data set must have as many classes
    as the run's head.
    """
    rd = RunDir(Path(run_dir))
    stored = rd.read_config()
    result = rd.read_result()
    if batch_size < 1:
        raise VitplastError(f"--batch-size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    size = int(stored.get("data_config", {}).get("input_size", 0)) or None
    bundle = cache.data(data, size)
    ds = bundle.split(split)
    if bundle.num_classes != int(stored["num_classes"]):
        raise VitplastError(
            f"{data} has {bundle.num_classes} classes but the run's head has {stored['num_classes']}"
        )
    vit = load_run_model(rd.path, model).to(dev)
    s = score(vit.logits, ds, make_transform(vit.data_config), batch_size, dev, resolve_workers(workers, dev), prec,
              progress, f"evaluating on {data} {split}")
    entry = {"data": data, "split": split, "data_name": bundle.name, "info": bundle.info, **s.to_dict(),
             "precision": precision, "precision_used": prec.name}
    evals = [e for e in result.get("evaluations", []) if (e.get("data"), e.get("split")) != (data, split)]
    result["evaluations"] = [*evals, entry]
    write_json_atomic(rd.result, result)
    return entry
