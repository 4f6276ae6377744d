"""Scoring a finished run's best checkpoint on another data set (``vitplast evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from vitplast.configs import default_of
from vitplast.data import make_transform
from vitplast.errors import VitplastError
from vitplast.io import write_json_atomic
from vitplast.models.vit import ViT
from vitplast.precision import resolve_precision
from vitplast.progress import Progress
from vitplast.runtime import resolve_device, resolve_workers
from vitplast.train import cache
from vitplast.train import checkpoint as ck
from vitplast.train.config import EvaluateConfig
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


def label_mapping(data_classes: list[str], run_classes: list[str], label_map: str | None) -> list[int] | None:
    """``mapping[i]`` = the run's class index for the data set's class ``i``; ``None`` when they are identical.

    Without ``label_map`` the class names must be the run's, in the same order. ``label_map`` is ``index``
    (data class ``i`` is the run's class ``i``; same number of classes) or ``DATA=RUN,...`` naming, for
    every class of the data set, a class of the run.
    """
    if label_map is None:
        if data_classes == run_classes:
            return None
        if sorted(data_classes) == sorted(run_classes):
            return [run_classes.index(c) for c in data_classes]
        raise VitplastError(
            f"the data set's classes ({_names(data_classes)}) are not the run's ({_names(run_classes)}): "
            "pass --label-map DATA=RUN,... (or --label-map index to match by position)"
        )
    if label_map.strip() == "index":
        if len(data_classes) != len(run_classes):
            raise VitplastError(
                f"--label-map index: the data set has {len(data_classes)} classes but the run's head has {len(run_classes)}"
            )
        return list(range(len(data_classes)))
    pairs = dict(_pair(item) for item in label_map.split(",") if item.strip())
    missing = [c for c in data_classes if c not in pairs]
    unknown = [r for r in pairs.values() if r not in run_classes]
    if missing or unknown or set(pairs) - set(data_classes):
        raise VitplastError(
            f"--label-map must map every data class ({_names(data_classes)}) to a run class ({_names(run_classes)})"
        )
    return [run_classes.index(pairs[c]) for c in data_classes]


def _pair(item: str) -> tuple[str, str]:
    if item.count("=") != 1:
        raise VitplastError(f"--label-map: expected DATA=RUN, got {item.strip()!r}")
    a, b = item.split("=")
    return a.strip(), b.strip()


def _names(classes: list[str]) -> str:
    return ", ".join(classes[:4]) + (", ..." if len(classes) > 4 else "")


class Relabelled(Dataset[tuple[Any, int]]):
    """``base`` with every label ``y`` replaced by ``mapping[y]``."""

    def __init__(self, base: Dataset[tuple[Any, int]], mapping: list[int]) -> None:
        self.base, self.mapping = base, mapping

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, int]:
        x, y = self.base[i]
        return x, self.mapping[y]


def evaluate_run(
    run_dir: str | Path,
    data: str,
    split: str = "test",
    *,
    device: str = "auto",
    workers: int | None = None,
    batch_size: int = default_of(EvaluateConfig, "batch_size"),
    model: ViT | None = None,
    precision: str = "auto",
    progress: Progress | None = None,
    label_map: str | None = None,
) -> dict[str, Any]:
    """Score the best checkpoint of ``run_dir`` on ``split`` of ``data`` (per-sample accuracy and loss), the
    forward pass under ``precision`` (:mod:`vitplast.precision`, recorded in the entry) in inference mode.

    The entry ``{data, split, acc, loss, n, ...}`` is added to ``result.json``'s ``evaluations`` (replacing
    an earlier entry for the same data and split) and returned. The data set's classes must be the run's
    (by name), or ``label_map`` must say how they correspond (:func:`label_mapping`); the mapping used is
    recorded in the entry.
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
    run_classes = [str(c) for c in stored.get("classes") or range(int(stored["num_classes"]))]
    mapping = label_mapping([str(c) for c in bundle.classes], run_classes, label_map)
    if mapping is not None:
        ds = Relabelled(ds, mapping)
    vit = load_run_model(rd.path, model).to(dev)
    s = score(vit.logits, ds, make_transform(vit.data_config), batch_size, dev, resolve_workers(workers, dev), prec,
              progress, f"evaluating on {data} {split}")
    entry = {"data": data, "split": split, "data_name": bundle.name, "info": bundle.info, **s.to_dict(),
             "precision": precision, "precision_used": prec.name}
    if mapping is not None:
        entry["label_map"] = {c: run_classes[m] for c, m in zip(bundle.classes, mapping, strict=True)}
    evals = [e for e in result.get("evaluations", []) if (e.get("data"), e.get("split")) != (data, split)]
    result["evaluations"] = [*evals, entry]
    write_json_atomic(rd.result, result)
    return entry
