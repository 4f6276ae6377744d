"""The training engine shared by ``finetune`` and ``pretrain``.

One update ``s`` (1-based in the logs) on an effective batch of ``B`` images split in ``A`` micro-batches::

    loss   = sum over micro-batches of  CE_sum(micro-batch) / B      (per-sample mean over the batch)
    g      = d loss / d theta   for trainable theta only (frozen tensors have requires_grad False)
    g     <- g * min(1, clip / (||g|| + 1e-6))                        (norm logged before clipping)
    theta <- optimizer step with lr(s)                               (see :mod:`vitplast.train.optim`)

Every ``eval_every`` updates and after the last one the model is scored on the validation split; the
best validation accuracy (ties keep the earlier step) is checkpointed and, at the end, scored on the
test split. The resume state (weights, optimizer state, random state, counters) is saved at each
evaluation, and the data order and augmentation are functions of the step (:mod:`vitplast.train.batches`),
so an interrupted run resumed with ``resume=True`` ends with the result of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn

from vitplast.data import DataBundle, DataContext, load_data, make_transform
from vitplast.errors import VitplastError
from vitplast.io import versions, write_json_atomic
from vitplast.models import load_model
from vitplast.models.vit import ViT
from vitplast.runtime import describe_device, resolve_device, resolve_workers
from vitplast.train import checkpoint as ck
from vitplast.train.batches import SeededAugment, StreamSampler, loader, train_transform
from vitplast.train.config import RunOptions, TrainConfig
from vitplast.train.groups import count_params, freeze_except
from vitplast.train.optim import clip_gradients, grad_norms, lr_at, make_optimizer, set_lr
from vitplast.train.rundir import RunDir
from vitplast.train.scoring import HITS_FILE, Score, save_hits, score

StepCallback = Callable[[int, ViT], None]


@dataclass
class Prepared:
    """A validated run, ready to start: model with its new head and frozen tensors, data, trainables."""

    cfg: TrainConfig
    vit: ViT
    bundle: DataBundle
    groups: dict[str, list[nn.Parameter]]
    fingerprint: str

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for ps in self.groups.values() for p in ps]

    def param_counts(self) -> dict[str, int]:
        return {g: count_params(ps) for g, ps in self.groups.items()}


@dataclass
class TrainState:
    step: int = 0
    best_acc: float = -math.inf
    best_step: int | None = None
    best_loss: float | None = None
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    diverged_at: int | None = None


def build_model(cfg: TrainConfig, num_classes: int, model: ViT | None = None) -> ViT:
    """The model of a run: loaded from ``cfg.model`` (random init seeded by ``cfg.seed``) or ``model``,
    with a new classifier for ``num_classes`` classes initialised under ``cfg.seed``."""
    if model is None:
        model = load_model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model.reset_head(num_classes)
    return model


def load_bundle(cfg: TrainConfig, input_size: int) -> DataBundle:
    return load_data(cfg.data, DataContext(input_size=input_size))


def prepare(cfg: TrainConfig, model: ViT | None = None, data: DataBundle | None = None) -> Prepared:
    """Validate ``cfg`` and build model and data; raises :class:`VitplastError` before anything is written."""
    cfg.validate()
    if model is None:
        model = load_model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed)
    bundle = data if data is not None else load_bundle(cfg, model.data_config.input_size)
    n_train = len(bundle.train)  # type: ignore[arg-type]
    if n_train == 0 or len(bundle.val) == 0:  # type: ignore[arg-type]
        raise VitplastError(f"data {cfg.data!r} has an empty train or validation split")
    if cfg.batch_size > n_train:
        raise VitplastError(f"--batch-size {cfg.batch_size} is larger than the train split of {cfg.data} ({n_train})")
    vit = build_model(cfg, bundle.num_classes, model)
    if cfg.head_init == "probe":
        from vitplast.train.head_init import init_head_from_probe

        init_head_from_probe(vit, bundle)
    groups = freeze_except(vit, cfg.train)
    return Prepared(cfg, vit, bundle, groups, ck.frozen_fingerprint(vit))


def run(
    prep: Prepared,
    out: Path,
    opts: RunOptions | None = None,
    resume: bool = False,
    callback: StepCallback | None = None,
) -> dict[str, Any]:
    """Train ``prep`` into run directory ``out`` (see module docstring); returns ``result.json``'s content.

    On return the model holds the best-validation weights. A directory that already holds the finished
    run (with ``resume``) is not retrained: its result is returned and its best weights loaded.
    """
    opts = opts or RunOptions()
    cfg, vit = prep.cfg, prep.vit
    rd = RunDir(Path(out))
    existing = rd.check_reuse(cfg, resume)
    device = resolve_device(opts.device)
    workers = resolve_workers(opts.workers, device)
    if existing:
        stored = rd.read_config()
        if stored.get("fingerprint") != prep.fingerprint:
            raise VitplastError(f"--resume: the frozen weights of {cfg.model} differ from those of the run in {rd.path}")
        if rd.result.is_file():
            ck.load_state(vit, ck.load_tensors(rd.best))
            return rd.read_result()
    vit.to(device)
    optimizer = make_optimizer(prep.params, cfg)
    state = TrainState()
    if existing and rd.last.is_file():
        state = _restore(rd, vit, optimizer, device)
        rd.reset_metrics(state.step)
    else:
        rd.path.mkdir(parents=True, exist_ok=True)
        rd.write_config(_config_record(prep, device, workers))
        rd.reset_metrics(0)
        rd.best.unlink(missing_ok=True)
    with open(rd.metrics, "a") as log:
        _train(prep, state, rd, optimizer, device, workers, opts, log, callback)
    return _finish(prep, state, rd, device, workers, opts)


def _config_record(prep: Prepared, device: torch.device, workers: int) -> dict[str, Any]:
    counts = prep.param_counts()
    return {
        "train": prep.cfg.to_dict(),
        "data_name": prep.bundle.name,
        "num_classes": prep.bundle.num_classes,
        "classes": prep.bundle.classes,
        "data_info": prep.bundle.info,
        "splits": {s: len(prep.bundle.split(s)) for s in ("train", "val", "test")},  # type: ignore[arg-type]
        "model_name": prep.vit.name,
        "data_config": prep.vit.data_config.to_dict(),
        "trainable_params": sum(counts.values()),
        "trainable_params_per_group": counts,
        "total_params": count_params(list(prep.vit.module.parameters())),
        "fingerprint": prep.fingerprint,
        "runtime": {"device": str(device), "device_name": describe_device(device), "workers": workers},
        "versions": versions(),
    }


def _restore(rd: RunDir, vit: ViT, optimizer: torch.optim.Optimizer, device: torch.device) -> TrainState:
    saved = ck.load_torch(rd.last)
    ck.load_state(vit, saved["weights"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["rng"])
    if device.type == "cuda" and saved.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    return TrainState(**saved["state"])


def _save_last(rd: RunDir, vit: ViT, optimizer: torch.optim.Optimizer, state: TrainState, device: torch.device) -> None:
    ck.save_torch(
        rd.last,
        {
            "weights": ck.trainable_state(vit),
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "state": vars(state).copy(),
        },
    )


def _write(log: TextIO, row: dict[str, Any]) -> None:
    log.write(json.dumps(row) + "\n")
    log.flush()


def _evaluate(prep: Prepared, split: str, device: torch.device, workers: int, opts: RunOptions) -> Score:
    vit = prep.vit
    vit.eval()
    try:
        bs = opts.eval_batch_size or prep.cfg.micro_batch
        return score(vit.logits, prep.bundle.split(split), make_transform(vit.data_config), bs, device, workers)
    finally:
        vit.train()


def _train(
    prep: Prepared,
    state: TrainState,
    rd: RunDir,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    workers: int,
    opts: RunOptions,
    log: TextIO,
    callback: StepCallback | None,
) -> None:
    cfg, vit = prep.cfg, prep.vit
    B = cfg.batch_size
    n_train = len(prep.bundle.train)  # type: ignore[arg-type]
    sampler = StreamSampler(n_train, cfg.seed, start=state.step * B, stop=cfg.steps * B)
    data = SeededAugment(prep.bundle.train, train_transform(vit.data_config, cfg.augment))
    batches = iter(loader(data, cfg.micro_batch, workers, sampler))
    params = prep.params
    session_start = time.perf_counter()
    wall_before = state.wall_seconds
    vit.train()
    with _progress(opts.progress, cfg.steps, state.step, f"{cfg.data} {','.join(cfg.train)}") as advance:
        while state.step < cfg.steps:
            t0 = time.perf_counter()
            lr = lr_at(state.step, cfg)
            set_lr(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
            loss_sum = torch.zeros((), device=device)
            for _ in range(cfg.grad_accum):
                x, y = next(batches)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                logits = vit.logits(x).float()
                loss = F.cross_entropy(logits, y, reduction="sum", label_smoothing=cfg.label_smoothing) / B
                loss.backward()
                loss_sum += loss.detach()
            total, per_group = grad_norms(prep.groups)
            loss_value = float(loss_sum)
            if not (math.isfinite(loss_value) and math.isfinite(total)):
                state.diverged_at = state.step + 1
                _write(log, {"kind": "train", "step": state.step + 1, "loss": loss_value, "lr": lr,
                             "grad_norm": total, "grad_norm_groups": per_group, "diverged": True})
                break
            clip_gradients(params, total, cfg.clip)
            optimizer.step()
            state.step += 1
            state.train_seconds += time.perf_counter() - t0
            _write(log, {"kind": "train", "step": state.step, "loss": loss_value, "lr": lr,
                         "grad_norm": total, "grad_norm_groups": per_group})
            if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
                val = _evaluate(prep, "val", device, workers, opts)
                _write(log, {"kind": "eval", "step": state.step, "val_loss": val.loss, "val_acc": val.acc,
                             "n": val.n})
                if val.acc > state.best_acc:
                    state.best_acc, state.best_step, state.best_loss = val.acc, state.step, val.loss
                    ck.save_tensors(rd.best, ck.trainable_state(vit), {"step": str(state.step)})
                state.wall_seconds = wall_before + time.perf_counter() - session_start
                _save_last(rd, vit, optimizer, state, device)
            advance(loss_value)
            if callback is not None:
                callback(state.step, vit)
    state.wall_seconds = wall_before + time.perf_counter() - session_start


def _finish(
    prep: Prepared, state: TrainState, rd: RunDir, device: torch.device, workers: int, opts: RunOptions
) -> dict[str, Any]:
    cfg = prep.cfg
    t0 = time.perf_counter()
    test: Score | None = None
    if state.best_step is not None:
        ck.load_state(prep.vit, ck.load_tensors(rd.best))
        test = _evaluate(prep, "test", device, workers, opts)
    prep.vit.eval()
    counts = prep.param_counts()
    images = state.step * cfg.batch_size
    result: dict[str, Any] = {
        "model": cfg.model,
        "data": cfg.data,
        "train": ",".join(cfg.train),
        "lr": cfg.lr,
        "optimizer": cfg.optimizer,
        "seed": cfg.seed,
        "steps": state.step,
        "best_step": state.best_step,
        "best_val_acc": state.best_acc if state.best_step is not None else None,
        "best_val_loss": state.best_loss,
        "test_acc": test.acc if test else None,
        "test_loss": test.loss if test else None,
        "n_test": test.n if test else 0,
        "trainable_params": sum(counts.values()),
        "trainable_params_per_group": counts,
        "wall_seconds": state.wall_seconds + time.perf_counter() - t0,
        "train_seconds": state.train_seconds,
        "images_per_s": images / state.train_seconds if state.train_seconds > 0 else None,
        "diverged_at": state.diverged_at,
        "device": describe_device(device),
        "evaluations": [],
    }
    from vitplast.train.plots import plot_curves

    plot_curves(rd.read_metrics(), rd.curves, title=f"{cfg.model} on {cfg.data}: {','.join(cfg.train)}")
    if test is not None and test.hits is not None:
        save_hits(rd.path / HITS_FILE, test.hits)
    write_json_atomic(rd.result, result)
    rd.last.unlink(missing_ok=True)
    return result


class _progress:
    """A rich progress bar over steps (no-op when disabled); ``advance(loss)`` moves it by one step."""

    def __init__(self, enabled: bool, total: int, done: int, label: str) -> None:
        self.enabled, self.total, self.done, self.label = enabled, total, done, label
        self._bar: Any = None

    def __enter__(self) -> Callable[[float], None]:
        if not self.enabled:
            return lambda loss: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), transient=True,
        )
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=self.total, completed=self.done, loss="-")
        return lambda loss: self._bar.update(task, advance=1, loss=f"{loss:.4f}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
