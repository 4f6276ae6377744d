"""Run bundles: K finetuning runs of one model on one data set trained together in one process.

``docs/mini-protocol.md`` ("Run bundles") states what is shared and what is per run. In short: runs whose configs
agree on :data:`~vitplast.train.config.BUNDLE_SHARED` (model, data, steps, batch, evaluation schedule, augmentation, precision, optimizer,
label smoothing; and the seed when the weights are random) may differ in seed, learning rate, schedule, trained
group (``ln-control`` included), weight decay, momentum, clipping and head initialisation. Each member ``k`` keeps
every tensor any member trains as ``P[k]`` of a stacked ``[K, *shape]`` tensor; tensors no member trains are the
model's own, shared. The forward pass is ``torch.func.vmap`` of the model's ``logits`` (through
``functional_call``) over the members, so one step of the bundle is one (batched) pass instead of K.

Per member, exactly as in the single run (:mod:`vitplast.train.loop`): its seed's data order and augmentation
(one stream per distinct seed, shared by the members with that seed), its head initialisation (the member is built
by :func:`vitplast.train.loop.prepare`), its gradient mask (entries it does not train get a gradient of exactly 0,
so they keep their bits), the gradient norm per group and its clipping, its lr schedule and optimizer
(:mod:`vitplast.train.bundle_optim`), its validation schedule and best checkpoint, its run directory with the same
files, and its test score. A member whose loss or gradient norm is not finite is recorded as diverged at that step
and removed from the bundle before the update; the others continue unchanged (no computation mixes members).

Resume: ``last.pt`` of a member is the single run's file (same optimizer ``state_dict``), written at every
evaluation. Members restarting at different steps train as separate sessions, one per starting step; finished
members (``result.json`` present) are not retrained. A bundle larger than the device's memory allows
(:mod:`vitplast.train.bundle_memory`) is trained as consecutive sessions that fit.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from vitplast.data import DataBundle, make_transform
from vitplast.errors import VitplastError, warn
from vitplast.models.vit import ViT
from vitplast.precision import Precision, resolve_precision
from vitplast.runtime import resolve_device, resolve_workers
from vitplast.train import cache
from vitplast.train import checkpoint as ck
from vitplast.train.batches import SeededAugment, StreamSampler, loader, train_transform
from vitplast.train.bundle_memory import members_that_fit
from vitplast.train.bundle_optim import BatchedOptimizer
from vitplast.train.config import BUNDLE_SHARED, RunOptions, TrainConfig, bundle_key
from vitplast.train.loop import Prepared, TrainState, _write, config_record, prepare, run, write_result
from vitplast.train.optim import lr_at
from vitplast.train.rundir import RunDir
from vitplast.train.scoring import Score

#: Images of one batched evaluation forward (members x batch) per device type: members are scored in chunks
#: below it. On a CPU a batch of 256 already keeps the cores busy and larger passes only cost memory traffic
#: (measured: 3 members in one pass 1.4x slower than one after another), so members are scored one by one.
EVAL_IMAGES = {"cpu": 256, "cuda": 16384}


@dataclass
class Member:
    """One run of a bundle: its config, run directory, what it trains (tensor names, in the single run's
    parameter order, per group) and its progress."""

    cfg: TrainConfig
    rd: RunDir
    names: list[str]
    groups: dict[str, list[str]]
    masks: dict[str, Tensor]
    record: dict[str, Any]
    counts: dict[str, int]
    warnings: list[str]
    init: dict[str, Tensor]
    state: TrainState = field(default_factory=TrainState)
    saved: dict[str, Any] | None = None
    log: TextIO | None = None


class _Logits(nn.Module):
    """``vit.logits`` as a module holding the model, so that ``functional_call`` can swap its tensors."""

    def __init__(self, vit: ViT) -> None:
        super().__init__()
        self.net = vit.module
        self._vit = [vit]  # not a submodule: the view only holds references to ``net``'s modules

    def forward(self, x: Tensor) -> Tensor:
        return self._vit[0].logits(x)


def _member(cfg: TrainConfig, model: ViT | None, data: DataBundle | None, out: Path, resume: bool,
            device: torch.device, workers: int, prec: Precision) -> tuple[Member | None, dict[str, Any] | None, Prepared]:
    """Build member ``cfg`` as the single run would (:func:`prepare`, on a copy of ``model`` when given); a
    finished run returns its result instead of a member."""
    prep = prepare(cfg, None if model is None else cache.fresh_copy(model), data)
    rd = RunDir(Path(out))
    existing = rd.check_reuse(cfg, resume)
    if existing and rd.read_config().get("fingerprint") != prep.fingerprint:
        raise VitplastError(f"--resume: the frozen weights of {cfg.model} differ from those of the run in {rd.path}")
    if existing and rd.result.is_file():
        return None, rd.read_result(), prep
    name_of = {id(p): n for n, p in prep.vit.module.named_parameters()}
    groups = {g: [name_of[id(p)] for p in ps] for g, ps in prep.groups.items()}
    names = [n for ns in groups.values() for n in ns]
    masks = {name_of[id(p)]: m.bool() for p, m in prep.masks}
    init = {n: p.detach().clone() for n, p in prep.vit.module.named_parameters() if n in set(names)}
    m = Member(cfg, rd, names, groups, masks, config_record(prep, device, workers, prec), prep.param_counts(),
               list(prep.bundle.info.get("warnings", [])), init)
    if existing and rd.has_resume_state():
        m.saved, _ = rd.load_resume_state(warn=warn)
        m.state = TrainState.saved(m.saved["state"])
        m.init.update({k: v for k, v in m.saved["weights"].items() if k in m.init})
    return m, None, prep


def train_bundle(cfgs: Sequence[TrainConfig], outs: Sequence[str | Path], opts: RunOptions | None = None,
                 resume: bool = False, model: ViT | None = None, data: DataBundle | None = None) -> list[dict[str, Any]]:
    """Train the runs ``cfgs`` into run directories ``outs`` as one bundle (module docstring); returns each run's
    ``result.json`` content, in order. Each result equals the single run's (:func:`vitplast.train.loop.run`) up to
    floating-point rounding. ``model`` / ``data``: the base model (copied per run, never changed) and data set
    instead of loading ``cfg.model`` / ``cfg.data``. With fp16 (a loss scaler per run) the runs are trained one
    after the other."""
    opts = opts or RunOptions()
    if len(cfgs) != len(outs) or not cfgs:
        raise VitplastError("a bundle needs one output directory per run")
    if len({bundle_key(c) for c in cfgs}) > 1:
        raise VitplastError("these runs cannot share a bundle: they differ in " + ", ".join(
            f for f in BUNDLE_SHARED if len({getattr(c, f) for c in cfgs}) > 1) or "their random weights' seed")
    if len({Path(o).resolve() for o in outs}) < len(outs):
        raise VitplastError("two runs of a bundle have the same output directory")
    device = resolve_device(opts.device)
    prec = resolve_precision(cfgs[0].precision, device)
    if prec.scaled:
        return [run(prepare(c, None if model is None else cache.fresh_copy(model), data), Path(o), opts, resume=resume)
                for c, o in zip(cfgs, outs, strict=True)]
    workers = resolve_workers(opts.workers, device)
    results: dict[int, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        members: list[tuple[int, Member]] = []
        base: ViT | None = None
        given = data  # None: every member takes model, data and LP-FT head from the cache, as a single run does
        for i, (cfg, out) in enumerate(zip(cfgs, outs, strict=True)):
            stack.enter_context(RunDir(Path(out)).starting())
            m, done, prep = _member(cfg, model, given, Path(out), resume, device, workers, prec)
            data = prep.bundle
            if base is None:
                base = prep.vit
            if m is None:
                results[i] = done or {}
            else:
                members.append((i, m))
        assert base is not None and data is not None
        own = dict(base.module.named_parameters())
        trained = sum(own[n].numel() for n in {n for _, m in members for n in m.names})
        fit = members_that_fit(base, cfgs[0], trained, device) if members else 1
        for s in sorted({m.state.step for _, m in members}):
            group = [(i, m) for i, m in members if m.state.step == s]
            for a in range(0, len(group), fit):  # a bundle that would not fit trains in consecutive sessions
                part = group[a:a + fit]
                session = _Session([m for _, m in part], base, data, device, workers, prec, opts)
                for (i, _), result in zip(part, session.run(), strict=True):
                    results[i] = result
    return [results[i] for i in range(len(cfgs))]


class _Session:
    """Members that start at the same step, trained together to the end."""

    def __init__(self, members: list[Member], base: ViT, data: DataBundle, device: torch.device, workers: int,
                 prec: Precision, opts: RunOptions) -> None:
        self.members, self.base, self.data = members, base, data
        self.device, self.workers, self.prec, self.opts = device, workers, prec, opts
        self.cfg = members[0].cfg
        base.to(device)
        base.prefer_batchable_kernels()
        for p in base.module.parameters():
            p.requires_grad_(False)
        self.fn = _Logits(base)
        own = dict(base.module.named_parameters())
        self.names = [n for n in own if any(n in m.init for m in members)]
        self.params: dict[str, Tensor] = {}
        self.masks: dict[str, Tensor] = {}
        decay: dict[str, list[float]] = {}
        for n in self.names:
            self.params[n] = torch.stack([m.init.get(n, own[n].detach().cpu()).to(device) for m in members])
            trained = [n in m.init for m in members]
            if not all(trained) or any(n in m.masks for m in members):
                self.masks[n] = torch.stack([m.masks.get(n, torch.full(own[n].shape, t)).to(device)
                                             for m, t in zip(members, trained, strict=True)])
            decay[n] = [m.cfg.weight_decay if t and own[n].ndim >= 2 and n not in m.masks else 0.0
                        for m, t in zip(members, trained, strict=True)]
        for t in self.params.values():
            t.requires_grad_(True)
        for m in members:
            m.init = {}
        self.opt = BatchedOptimizer(self.params, [m.cfg for m in members], decay)
        for k, m in enumerate(members):
            if m.saved is not None:
                self.opt.load_member_state(k, m.names, list(m.masks), m.saved["optimizer"])
                m.saved = None
        self.opt.steps = [m.state.step for m in members]

    # --- members -----------------------------------------------------------------------------------------
    def _select(self, keep: list[int]) -> None:
        """Drop every member not in ``keep`` from the stacked tensors, masks and optimizer."""
        idx = torch.tensor(keep, dtype=torch.long, device=self.device)
        params = {}
        for n, p in self.params.items():
            q = p.detach()[idx].clone().requires_grad_(True)
            q.grad = None if p.grad is None else p.grad[idx]
            params[n] = q
        self.params = params
        self.masks = {n: m[idx] for n, m in self.masks.items()}
        self.opt.select(keep, params)
        self.members = [self.members[i] for i in keep]

    def _weights(self, k: int) -> dict[str, Tensor]:
        """Member ``k``'s trained tensors and the model's buffers (:func:`checkpoint.trainable_state`)."""
        m = self.members[k]
        mine = set(m.names)
        out = {n: self.params[n][k].detach().cpu().clone().contiguous() for n in self.names if n in mine}
        out.update({n: b.detach().cpu().clone().contiguous() for n, b in self.base.module.named_buffers()})
        return out

    # --- steps -------------------------------------------------------------------------------------------
    def _forward(self, params: dict[str, Tensor], x: Tensor, shared_x: bool) -> Tensor:
        """Logits ``[K, b, C]`` of the stacked ``params`` on ``x`` (``[b, ...]`` shared, or ``[K, b, ...]``)."""
        def one(p: dict[str, Tensor], xi: Tensor) -> Tensor:
            return functional_call(self.fn, {f"net.{n}": t for n, t in p.items()}, (xi,))

        with self.prec.forward():
            out: Tensor = vmap(one, in_dims=(0, None if shared_x else 0))(params, x)
        return out.float()

    def _streams(self, start: int) -> tuple[list[Any], list[int]]:
        """One batch iterator per distinct seed of the members, and each member's iterator index."""
        cfg, vit = self.cfg, self.base
        seeds = sorted({m.cfg.seed for m in self.members})
        data = SeededAugment(self.data.train, train_transform(vit.data_config, cfg.augment))
        n = len(self.data.train)  # type: ignore[arg-type]
        its = [iter(loader(data, cfg.micro_batch, self.workers,
                           StreamSampler(n, s, start=start * cfg.batch_size, stop=cfg.steps * cfg.batch_size),
                           pin=self.device.type == "cuda")) for s in seeds]
        return its, [seeds.index(m.cfg.seed) for m in self.members]

    def _step(self, its: list[Any], which: list[int]) -> Tensor:
        """Forward and backward of one update for every member; returns the losses ``[K]``."""
        cfg, dev = self.cfg, self.device
        for p in self.params.values():
            p.grad = None
        total = torch.zeros(len(self.members), device=dev)
        idx = torch.tensor(which, dtype=torch.long, device=dev)
        ls = cfg.label_smoothing
        for _ in range(cfg.grad_accum):
            xs, ys = zip(*(next(it) for it in its), strict=True)
            x, y = torch.stack(xs).to(dev)[idx], torch.stack(ys).to(dev)[idx]
            logits = self._forward(self.params, x, shared_x=False)
            loss = vmap(lambda lg, t: F.cross_entropy(lg, t, reduction="sum", label_smoothing=ls))(logits, y)
            loss = loss / cfg.batch_size
            loss.sum().backward()
            total += loss.detach()
        with torch.no_grad():
            for n, mask in self.masks.items():
                g = self.params[n].grad
                if g is not None:
                    g.copy_(torch.where(mask, g, torch.zeros((), device=dev)))
        return total

    def _norms(self) -> list[tuple[float, dict[str, float]]]:
        """Per member ``(total, per_group)`` gradient norms (as :func:`vitplast.train.optim.grad_norms`)."""
        with torch.no_grad():
            names = list(self.params)
            per_name = torch.stack([torch.linalg.vector_norm(self.params[n].grad.flatten(1), dim=1)  # type: ignore[union-attr]
                                    for n in names]).cpu()
        row = {n: i for i, n in enumerate(names)}
        out = []
        for k, m in enumerate(self.members):
            groups = {g: float(torch.linalg.vector_norm(per_name[[row[n] for n in ns], k])) if ns else 0.0
                      for g, ns in m.groups.items()}
            out.append((math.sqrt(sum(v * v for v in groups.values())), groups))
        return out

    def _clip(self, totals: list[float]) -> None:
        coefs = [min(1.0, m.cfg.clip / (t + 1e-6)) if m.cfg.clip > 0 else 1.0
                 for m, t in zip(self.members, totals, strict=True)]
        if all(c >= 1.0 for c in coefs):
            return
        with torch.no_grad():
            for p in self.params.values():
                if p.grad is not None:
                    p.grad.mul_(torch.tensor(coefs, device=self.device).view(-1, *([1] * (p.ndim - 1))))

    # --- evaluation --------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str, params: dict[str, Tensor]) -> list[Score]:
        """Per-sample loss and accuracy of each stacked member on ``split`` (as :func:`scoring.score`)."""
        K = next(iter(params.values())).shape[0]
        chunk = max(1, EVAL_IMAGES.get(self.device.type, 256) // self.opts.eval_batch(self.cfg))
        sums = [0.0] * K
        correct = [0] * K
        hits: list[list[Any]] = [[] for _ in range(K)]
        n = 0
        self.base.eval()
        try:
            ds = self.data.split(split)
            from vitplast.data.transforms import Transformed

            for x, y in loader(Transformed(ds, make_transform(self.base.data_config)), self.opts.eval_batch(self.cfg),
                               self.workers, pin=self.device.type == "cuda"):
                x, y = x.to(self.device), y.to(self.device)
                for a in range(0, K, chunk):
                    logits = self._forward({k: v[a:a + chunk] for k, v in params.items()}, x, shared_x=True)
                    for j in range(logits.shape[0]):
                        sums[a + j] += float(F.cross_entropy(logits[j], y, reduction="sum"))
                        ok = logits[j].argmax(dim=1) == y
                        hits[a + j].append(ok.cpu().numpy())
                        correct[a + j] += int(ok.sum())
                n += int(y.numel())
        finally:
            self.base.train()
        if n == 0:
            return [Score(float("nan"), float("nan"), 0, 0)] * K
        import numpy as np

        return [Score(sums[k] / n, correct[k] / n, n, correct[k], np.concatenate(hits[k])) for k in range(K)]

    # --- the session -------------------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        """Train every member to the end and write their results. Timing (:class:`TrainState`): each update's
        wall time ``dt`` is divided among the members that make it (a member that diverges in it gets none), so
        the members' ``train_seconds`` added in this session sum to the session's training time ``T`` (the sum of
        its ``dt``); every member adds ``T`` to its ``bundle_train_seconds`` and has ``bundle_size`` the members
        the session started with."""
        everyone = list(self.members)
        before = [m.state.bundle_train_seconds for m in everyone]
        for m in everyone:
            m.state.bundle_size = len(everyone)
        with contextlib.ExitStack() as stack:
            for m in everyone:
                if m.saved is None and m.state.step == 0:
                    m.rd.path.mkdir(parents=True, exist_ok=True)
                    m.rd.write_config(m.record)
                    m.rd.reset_metrics(0)
                    m.rd.best.unlink(missing_ok=True)
                else:
                    m.rd.reset_metrics(m.state.step)
                m.log = stack.enter_context(open(m.rd.metrics, "a"))
            for msg in dict.fromkeys(w for m in everyone for w in m.warnings):
                warn(msg)
            total = self._train()
        for m, b in zip(everyone, before, strict=True):
            m.state.bundle_train_seconds = b + total
        return self._finish(everyone)

    def _train(self) -> float:
        """Train the members to the end; returns the summed step time ``T`` (:meth:`run`)."""
        cfg = self.cfg
        total = 0.0
        step = self.members[0].state.step
        its, which = self._streams(step)
        wall_before = [m.state.wall_seconds for m in self.members]
        start = time.perf_counter()
        self.base.train()
        while step < cfg.steps and self.members:
            t0 = time.perf_counter()
            lrs = [lr_at(step, m.cfg) for m in self.members]
            losses = self._step(its, which).tolist()
            norms = self._norms()
            bad = [k for k, (loss, (tot, _)) in enumerate(zip(losses, norms, strict=True))
                   if not (math.isfinite(loss) and math.isfinite(tot))]
            for k in bad:
                m = self.members[k]
                m.state.diverged_at = step + 1
                _write(m.log, {"kind": "train", "step": step + 1, "loss": losses[k], "lr": lrs[k],  # type: ignore[arg-type]
                               "grad_norm": norms[k][0], "grad_norm_groups": norms[k][1], "diverged": True})
                m.state.wall_seconds = wall_before[k] + time.perf_counter() - start
            if bad:
                keep = [k for k in range(len(self.members)) if k not in bad]
                self._select(keep)
                which = [which[k] for k in keep]
                lrs, losses, norms = [lrs[k] for k in keep], [losses[k] for k in keep], [norms[k] for k in keep]
                wall_before = [wall_before[k] for k in keep]
                if not self.members:
                    break
            self._clip([t for t, _ in norms])
            self.opt.step(lrs)
            step += 1
            dt = time.perf_counter() - t0
            total += dt
            for k, m in enumerate(self.members):
                m.state.step = step
                m.state.train_seconds += dt / len(self.members)
                m.state.bundle_train_seconds += dt
                _write(m.log, {"kind": "train", "step": step, "loss": losses[k], "lr": lrs[k],  # type: ignore[arg-type]
                               "grad_norm": norms[k][0], "grad_norm_groups": norms[k][1]})
            if step % cfg.eval_every == 0 or step == cfg.steps:
                self._validate(step, [wall_before[k] + time.perf_counter() - start for k in range(len(self.members))])
        for k, m in enumerate(self.members):
            m.state.wall_seconds = wall_before[k] + time.perf_counter() - start
        return total

    def _validate(self, step: int, walls: list[float]) -> None:
        scores = self.evaluate("val", {n: p.detach() for n, p in self.params.items()})
        for k, (m, val) in enumerate(zip(self.members, scores, strict=True)):
            st = m.state
            _write(m.log, {"kind": "eval", "step": step, "val_loss": val.loss, "val_acc": val.acc,  # type: ignore[arg-type]
                           "n": val.n})
            if val.acc > st.best_acc:
                st.best_acc, st.best_step, st.best_loss = val.acc, step, val.loss
                ck.save_tensors(m.rd.best, self._weights(k), {"step": str(step)})
            st.wall_seconds = walls[k]
            m.rd.save_resume_state(ck.resume_record(
                self._weights(k), self.opt.member_state(k, m.names, list(m.masks)), st, self.device))

    def _finish(self, members: list[Member]) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        scored = [m for m in members if m.state.best_step is not None]
        tests: dict[int, Score] = {}
        if scored:
            own = dict(self.base.module.named_parameters())
            best = [ck.load_tensors(m.rd.best) for m in scored]
            params = {n: torch.stack([b.get(n, own[n].detach().cpu()) for b in best]).to(self.device)
                      for n in self.params}
            for m, s in zip(scored, self.evaluate("test", params), strict=True):
                tests[id(m)] = s
        self.base.eval()
        return [self._result(m, tests.get(id(m)), time.perf_counter() - t0) for m in members]

    def _result(self, m: Member, test: Score | None, finish_seconds: float) -> dict[str, Any]:
        return write_result(m.rd, m.cfg, m.state, test, m.counts, self.prec.name, False,
                            m.state.wall_seconds + finish_seconds, m.warnings, self.device)
