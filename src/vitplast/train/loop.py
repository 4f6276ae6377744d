"""The training engine shared by ``finetune`` and ``pretrain``.

One update ``s`` (1-based in the logs) on an effective batch of ``B`` images split in ``A`` micro-batches::

    loss   = sum over micro-batches of  CE_sum(micro-batch) / B      (per-sample mean over the batch)
    g      = d loss / d theta   for trainable theta only (frozen tensors have requires_grad False)
    g     <- g * mask            for partially trained tensors (``ln-control``, :mod:`vitplast.train.groups`)
    g     <- g * min(1, clip / (||g|| + 1e-6))                        (norm logged before clipping)
    theta <- optimizer step with lr(s)                               (see :mod:`vitplast.train.optim`)

Every ``eval_every`` updates and after the last one the model is scored on the validation split; the
best validation accuracy (ties keep the earlier step) is checkpointed and, at the end, scored on the
test split. The resume state (weights, optimizer state, random state, counters) is saved at each
evaluation, and the data order and augmentation are functions of the step (:mod:`vitplast.train.batches`),
so an interrupted run resumed with ``resume=True`` ends with the result of an uninterrupted run.

The forward pass runs under the config's precision (:mod:`vitplast.precision`; fp16 scales the loss and
unscales the gradients before their norm is taken), everything else in float32. A non-finite loss or gradient
norm stops the run: ``result.json`` records ``"diverged": true`` and ``diverged_at`` (the step), and no file
holds a NaN or infinity literal (non-finite numbers are written as ``null``). ``curves.png`` is drawn only
with ``RunOptions(plots=True)``, once, at the end (``docs/precision.md``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn

from vitplast.components import LN_CONTROL
from vitplast.data import DataBundle, make_transform
from vitplast.data.base import check_trainable
from vitplast.errors import VitplastError, warn
from vitplast.io import versions, write_json_atomic
from vitplast.models.vit import ViT
from vitplast.precision import Precision, resolve_precision
from vitplast.progress import Progress, phase
from vitplast.runtime import check_compile, describe_device, resolve_device, resolve_workers
from vitplast.train import cache
from vitplast.train import checkpoint as ck
from vitplast.train.batches import SeededAugment, StreamSampler, loader, train_transform
from vitplast.train.config import RunOptions, TrainConfig
from vitplast.train.groups import Masks, control_masks, count_params, freeze_except, mask_gradients
from vitplast.train.optim import clip_gradients, grad_norms, lr_at, make_optimizer, set_lr
from vitplast.train.rundir import RunDir
from vitplast.train.scoring import HITS_FILE, Score, save_hits, score

StepCallback = Callable[[int, ViT], None]


@dataclass
class Prepared:
    """A validated run, ready to start: model with its new head and frozen tensors, data, trainables, and the
    masks of partially trained tensors (``ln-control``; empty otherwise)."""

    cfg: TrainConfig
    vit: ViT
    bundle: DataBundle
    groups: dict[str, list[nn.Parameter]]
    fingerprint: str
    masks: Masks = field(default_factory=list)

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for ps in self.groups.values() for p in ps]

    def param_counts(self) -> dict[str, int]:
        return {g: count_params(ps, self.masks) for g, ps in self.groups.items()}


@dataclass
class TrainState:
    """A run's counters, saved in ``last.pt``. Timing: ``train_seconds`` is the run's own share of the training
    step time, ``sum over its steps of dt_step / K_step`` (``dt_step`` the wall time of the (bundle's) update,
    ``K_step`` the runs that updated in it; 1 for a single run); ``bundle_train_seconds`` is the training time
    of the bundle sessions it trained in, ``sum over its sessions of sum over the session's steps of dt_step``
    (equal to ``train_seconds`` for a run trained alone); ``bundle_size`` the runs of its last session. A resumed
    run adds its new session to both sums."""

    step: int = 0
    best_acc: float = -math.inf
    best_step: int | None = None
    best_loss: float | None = None
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    diverged_at: int | None = None
    bundle_train_seconds: float = 0.0
    bundle_size: int = 1

    @staticmethod
    def saved(counters: dict[str, Any]) -> TrainState:
        """The state of ``last.pt``'s counters; one written before ``bundle_train_seconds`` existed counts its
        ``train_seconds`` as its bundle's."""
        state = TrainState(**counters)
        if "bundle_train_seconds" not in counters:
            state.bundle_train_seconds = state.train_seconds
        return state


def build_model(cfg: TrainConfig, num_classes: int, model: ViT | None = None) -> ViT:
    """The model of a run: loaded from ``cfg.model`` (random init seeded by ``cfg.seed``) or ``model``,
    with a new classifier for ``num_classes`` classes initialised under ``cfg.seed``."""
    if model is None:
        model = cache.model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model.reset_head(num_classes)
    return model


def prepare(cfg: TrainConfig, model: ViT | None = None, data: DataBundle | None = None) -> Prepared:
    """Build model and data of ``cfg`` (from the in-process :mod:`~vitplast.train.cache` unless given);
    raises :class:`VitplastError` before anything is written."""
    cached = model is None and data is None
    if model is None:
        model = cache.model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed)
    cfg = cfg.resolved(model.depth)  # block indices checked before the data is loaded
    bundle = data if data is not None else cache.data(cfg.data, model.data_config.input_size)
    check_trainable(bundle)  # warnings are recorded in bundle.info and printed when the run starts
    n_train = len(bundle.train)  # type: ignore[arg-type]
    if cfg.batch_size > n_train:
        raise VitplastError(f"--batch-size {cfg.batch_size} is larger than the train split of {cfg.data} ({n_train})")
    vit = build_model(cfg, bundle.num_classes, model)
    if cfg.head_init == "probe":
        from vitplast.train.head_init import fit_probe_head, set_head

        key = (cfg.model, cfg.random_weights, cfg.seed if cfg.random_weights else None, cfg.data,
               model.data_config.input_size)
        fit = lambda: fit_probe_head(vit, bundle, C=None)  # noqa: E731
        w, b, _ = cache.probe_head(key, fit) if cached else fit()
        set_head(vit, w, b)
    groups = freeze_except(vit, cfg.train)
    masks = control_masks(vit, cfg.seed) if cfg.train == (LN_CONTROL,) else []
    return Prepared(cfg, vit, bundle, groups, ck.frozen_fingerprint(vit), masks)


def evaluate_split(prep: Prepared, split: str, device: torch.device, workers: int, opts: RunOptions,
                   prec: Precision, progress: Progress | None = None) -> Score:
    """The engine's evaluation (:func:`~vitplast.train.scoring.score`): ``prep.vit`` in eval mode (left so) on
    ``split`` of its data, eval transform, batch :meth:`RunOptions.eval_batch`, forward under ``prec``. A run scores
    its validation checkpoints and its best checkpoint with it, and an LP-FT start (:mod:`vitplast.train.start`)
    its model before any step."""
    vit = prep.vit
    vit.eval()
    return score(vit.logits, prep.bundle.split(split), make_transform(vit.data_config), opts.eval_batch(prep.cfg),
                 device, workers, prec, progress, f"evaluating on {split}")


def run(
    prep: Prepared,
    out: Path,
    opts: RunOptions | None = None,
    resume: bool = False,
    callback: StepCallback | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train ``prep`` into run directory ``out`` (see module docstring); returns ``result.json``'s content.

    On return the model holds the best-validation weights. A directory that already holds the finished
    run (with ``resume``) is not retrained: its result is returned and its best weights loaded. A run that
    fails before its first checkpoint leaves no run directory (:meth:`RunDir.starting`); a second process on
    the same ``out`` is refused while this one runs (:meth:`RunDir.locked`).
    ``progress`` gets one phase per training session (units: steps) and one per evaluation (images).
    """
    rd = RunDir(Path(out))
    with rd.locked(), rd.starting():
        return _run(prep, out, opts, resume, callback, progress)


def _run(
    prep: Prepared, out: Path, opts: RunOptions | None, resume: bool, callback: StepCallback | None,
    progress: Progress | None,
) -> dict[str, Any]:
    opts = opts or RunOptions()
    cfg, vit = prep.cfg, prep.vit
    rd = RunDir(Path(out))
    existing = rd.check_reuse(cfg, resume)
    device = resolve_device(opts.device)
    workers = resolve_workers(opts.workers, device)
    prec = resolve_precision(cfg.precision, device)
    if opts.compile:
        check_compile(device)
    if existing:
        stored = rd.read_config()
        if stored.get("fingerprint") != prep.fingerprint:
            raise VitplastError(f"--resume: the frozen weights of {cfg.model} differ from those of the run in {rd.path}")
        if rd.result.is_file():
            ck.load_state(vit, ck.load_tensors(rd.best))
            return rd.read_result()
    vit.to(device)
    eng = _Engine(prep, rd, device, workers, opts, prec, progress)
    state = TrainState()
    if existing and rd.has_resume_state():
        state = eng.restore()
        rd.reset_metrics(state.step)
    else:
        rd.path.mkdir(parents=True, exist_ok=True)
        rd.write_config(config_record(prep, device, workers, prec))
        rd.reset_metrics(0)
        rd.best.unlink(missing_ok=True)
    for msg in prep.bundle.info.get("warnings", []):
        warn(msg)
    with open(rd.metrics, "a") as log:
        eng.train(state, log, callback)
    return eng.finish(state)


def write_result(rd: RunDir, cfg: TrainConfig, state: TrainState, test: Score | None, counts: dict[str, int],
                 precision_used: str, compiled: bool, wall_seconds: float, warnings: list[str],
                 device: torch.device) -> dict[str, Any]:
    """A finished run's ``result.json`` (its test hits beside it when scored; non-finite floats as null), written
    atomically; the resume state is removed. The one result record of a run, alone or in a bundle."""
    images = state.step * cfg.batch_size
    result: dict[str, Any] = {
        "model": cfg.model,
        "data": cfg.data,
        "train": ",".join(cfg.train),
        "lr": cfg.lr,
        "optimizer": cfg.optimizer,
        "seed": cfg.seed,
        "precision": cfg.precision,
        "precision_used": precision_used,
        "compiled": compiled,
        "steps": state.step,
        "best_step": state.best_step,
        "best_val_acc": state.best_acc if state.best_step is not None else None,
        "best_val_loss": state.best_loss,
        "test_acc": test.acc if test else None,
        "test_loss": test.loss if test else None,
        "n_test": test.n if test else 0,
        "trainable_params": sum(counts.values()),
        "trainable_params_per_group": counts,
        "wall_seconds": wall_seconds,
        "train_seconds": state.train_seconds,
        "bundle_size": state.bundle_size,
        "bundle_train_seconds": state.bundle_train_seconds,
        "images_per_s": images / state.train_seconds if state.train_seconds > 0 else None,
        "diverged": state.diverged_at is not None,
        "diverged_at": state.diverged_at,
        "warnings": warnings,
        "device": describe_device(device),
        "evaluations": [],
    }
    if test is not None and test.hits is not None:
        save_hits(rd.path / HITS_FILE, test.hits)
    result = _finite(result)
    write_json_atomic(rd.result, result)
    rd.remove_resume_state()
    return result


def config_record(prep: Prepared, device: torch.device, workers: int, prec: Precision) -> dict[str, Any]:
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
        "runtime": {"device": str(device), "device_name": describe_device(device), "workers": workers,
                    "precision": prec.name},
        "versions": versions(),
    }


def _finite(x: Any) -> Any:
    """``x`` with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def _write(log: TextIO, row: dict[str, Any]) -> None:
    log.write(json.dumps(_finite(row), allow_nan=False) + "\n")
    log.flush()


class _Engine:
    """One training session of a prepared run: optimizer, gradient scaler, forward function, evaluation."""

    def __init__(self, prep: Prepared, rd: RunDir, device: torch.device, workers: int, opts: RunOptions,
                 prec: Precision, progress: Progress | None) -> None:
        self.prep, self.rd, self.device, self.workers, self.opts = prep, rd, device, workers, opts
        self.prec, self.progress = prec, progress
        self.masks = [(p, m.to(device)) for p, m in prep.masks]
        self.optimizer = make_optimizer(prep.params, prep.cfg, device, no_decay=[p for p, _ in self.masks])
        self.scaler = torch.amp.GradScaler(device.type) if prec.scaled else None
        logits = prep.vit.logits
        self.forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(logits) if opts.compile else logits

    def restore(self) -> TrainState:
        saved, path = self.rd.load_resume_state(warn=warn)
        try:
            ck.load_state(self.prep.vit, saved["weights"])
            self.optimizer.load_state_dict(saved["optimizer"])
            if self.scaler is not None and saved.get("scaler"):
                self.scaler.load_state_dict(saved["scaler"])
            torch.set_rng_state(saved["rng"])
            if self.device.type == "cuda" and saved.get("cuda_rng") is not None:
                torch.cuda.set_rng_state(saved["cuda_rng"], self.device)
            state = TrainState.saved(saved["state"])
            fields = vars(state)
            if not all(isinstance(v, int | float | None) and not isinstance(v, bool) for v in fields.values()):
                raise TypeError("its counters must be numbers")
            if not isinstance(state.step, int) or not 0 <= state.step <= self.prep.cfg.steps:
                raise ValueError(f"step {state.step!r} is not in [0, {self.prep.cfg.steps}]")
            return state
        except (KeyError, TypeError, ValueError, RuntimeError, VitplastError) as exc:
            detail = " ".join(str(exc).split())[:120]
            raise VitplastError(f"--resume: checkpoint {path} does not fit this run ({detail})") from None

    def save_last(self, state: TrainState) -> None:
        self.rd.save_resume_state(ck.resume_record(
            ck.trainable_state(self.prep.vit), self.optimizer.state_dict(), state, self.device,
            self.scaler.state_dict() if self.scaler is not None else None))

    def evaluate(self, split: str) -> Score:
        try:
            return evaluate_split(self.prep, split, self.device, self.workers, self.opts, self.prec, self.progress)
        finally:
            self.prep.vit.train()

    def step(self, batches: Any, lr: float) -> tuple[float, float, dict[str, float], bool]:
        """One update (module docstring); returns ``(loss, grad_norm, per_group_norms, finite)`` (norms before
        clipping). A non-finite loss or norm leaves the weights untouched and returns ``finite`` False, except
        for fp16, where an overflowing gradient is the scaler's business (it skips the update and lowers the
        scale) as long as the loss is finite."""
        cfg, dev = self.prep.cfg, self.device
        set_lr(self.optimizer, lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=dev)
        for _ in range(cfg.grad_accum):
            x, y = next(batches)
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with self.prec.forward():
                logits = self.forward(x)
            loss = F.cross_entropy(logits.float(), y, reduction="sum", label_smoothing=cfg.label_smoothing)
            loss = loss / cfg.batch_size
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            loss_sum += loss.detach()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        mask_gradients(self.masks)
        total, per_group = grad_norms(self.prep.groups)
        loss_value = float(loss_sum)
        finite = math.isfinite(loss_value) and math.isfinite(total)
        if finite:
            clip_gradients(self.prep.params, total, cfg.clip)
        if self.scaler is not None and math.isfinite(loss_value):
            self.scaler.step(self.optimizer)  # skipped by the scaler when a gradient overflowed
            self.scaler.update()
            return loss_value, total, per_group, True
        if finite:
            self.optimizer.step()
        return loss_value, total, per_group, finite

    def train(self, state: TrainState, log: TextIO, callback: StepCallback | None) -> None:
        prep, rd = self.prep, self.rd
        cfg, vit = prep.cfg, prep.vit
        B = cfg.batch_size
        n_train = len(prep.bundle.train)  # type: ignore[arg-type]
        sampler = StreamSampler(n_train, cfg.seed, start=state.step * B, stop=cfg.steps * B)
        data = SeededAugment(prep.bundle.train, train_transform(vit.data_config, cfg.augment))
        batches = iter(loader(data, cfg.micro_batch, self.workers, sampler, pin=self.device.type == "cuda"))
        session_start = time.perf_counter()
        wall_before = state.wall_seconds
        state.bundle_size = 1
        vit.train()
        advance = phase(self.progress, f"training {cfg.data} {','.join(cfg.train)}", cfg.steps - state.step)
        while state.step < cfg.steps:
            t0 = time.perf_counter()
            lr = lr_at(state.step, cfg)
            loss_value, total, per_group, finite = self.step(batches, lr)
            if not finite:
                state.diverged_at = state.step + 1
                _write(log, {"kind": "train", "step": state.step + 1, "loss": loss_value, "lr": lr,
                             "grad_norm": total, "grad_norm_groups": per_group, "diverged": True})
                break
            state.step += 1
            dt = time.perf_counter() - t0
            state.train_seconds += dt
            state.bundle_train_seconds += dt
            _write(log, {"kind": "train", "step": state.step, "loss": loss_value, "lr": lr,
                         "grad_norm": total, "grad_norm_groups": per_group})
            if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
                val = self.evaluate("val")
                _write(log, {"kind": "eval", "step": state.step, "val_loss": val.loss, "val_acc": val.acc,
                             "n": val.n})
                if val.acc > state.best_acc:
                    state.best_acc, state.best_step, state.best_loss = val.acc, state.step, val.loss
                    ck.save_tensors(rd.best, ck.trainable_state(vit), {"step": str(state.step)})
                state.wall_seconds = wall_before + time.perf_counter() - session_start
                self.save_last(state)
            advance(1)
            if callback is not None:
                callback(state.step, vit)
        state.wall_seconds = wall_before + time.perf_counter() - session_start

    def finish(self, state: TrainState) -> dict[str, Any]:
        prep, rd = self.prep, self.rd
        cfg = prep.cfg
        t0 = time.perf_counter()
        test: Score | None = None
        if state.best_step is not None:
            ck.load_state(prep.vit, ck.load_tensors(rd.best))
            test = self.evaluate("test")
        prep.vit.eval()
        wall = state.wall_seconds + time.perf_counter() - t0  # the figure's time is not the run's
        if self.opts.plots:
            from vitplast.train.plots import plot_curves

            plot_curves(rd.read_metrics(), rd.curves, title=f"{cfg.model} on {cfg.data}: {','.join(cfg.train)}")
        return write_result(rd, cfg, state, test, prep.param_counts(), self.prec.name, self.opts.compile, wall,
                            list(prep.bundle.info.get("warnings", [])), self.device)
