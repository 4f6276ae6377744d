"""Benchmark: a run bundle of K finetuning runs against the same K runs one after another (CPU, micro-ViT).

The runs follow the mini recipe (AdamW, batch 32, no augmentation; :data:`vitplast.train.config.RECIPES`) on the
bundled ``micro`` checkpoint: the groups ``full embed ln1 mha ln2 fc1 fc2 ln-control`` in turn, each with three
seeds and two learning rates (group-major, the order in which sweeps pack runs), shortened to ``--steps`` updates with one validation at the end (then the test
score). For each K the bundle (:func:`vitplast.train.bundle.train_bundle`) and the K single runs
(:func:`vitplast.train.finetune`, model and data from the in-process cache, as in a sweep worker) run side by side
in one process with the same torch threads. Reported: training throughput (training images per second summed over
the runs, from each run's ``train_seconds``), the same over the whole wall time (set-up, evaluations, files), and
the ratios bundle / one-after-another. ``--profile K`` adds where the time of a bundle of K runs goes.
The machine's load average is printed: on a shared machine read the ratios, not the absolute rates.

Usage: ``python benchmarks/bundle_speed.py [--ks 1 3 9 27] [--steps 3] [--threads 1] [--data mini:digits]
[--profile 9] [--write]`` (``--write`` replaces this benchmark's section of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import itertools
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from results import write_section

from vitplast.train import bundle as bundle_mod
from vitplast.train import finetune
from vitplast.train.bundle_optim import BatchedOptimizer
from vitplast.train.config import RunOptions, TrainConfig

GROUPS = ("full", "embed", "ln1", "mha", "ln2", "fc1", "fc2", "ln-control")


def configs(k: int, data: str, steps: int) -> list[TrainConfig]:
    grid = itertools.product(GROUPS, (0, 1, 2), (1e-3, 3e-4))
    return [TrainConfig.for_data("micro", data, train=g, lr=lr, seed=s, steps=steps, eval_every=steps)
            for g, s, lr in itertools.islice(grid, k)]


def run_bundle(cfgs: list[TrainConfig], tmp: Path, opts: RunOptions) -> tuple[float, float]:
    """``(train_seconds, wall_seconds)`` of the bundle (its members' shares of the training time add up to it)."""
    t0 = time.perf_counter()
    results = bundle_mod.train_bundle(cfgs, [tmp / f"b{i}" for i in range(len(cfgs))], opts)
    return sum(r["train_seconds"] for r in results), time.perf_counter() - t0


def run_single(cfgs: list[TrainConfig], tmp: Path, opts: RunOptions) -> tuple[float, float]:
    """``(sum of train_seconds, wall_seconds)`` of the runs one after another."""
    t0 = time.perf_counter()
    train = sum(finetune(c.model, c.data, c, opts, out=tmp / f"s{i}").result["train_seconds"]
                for i, c in enumerate(cfgs))
    return train, time.perf_counter() - t0


class Timers:
    """Seconds spent in wrapped callables, by label."""

    def __init__(self) -> None:
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(float)

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[label] += time.perf_counter() - t0

        return timed

    def iterator(self, label: str, it: Iterator[Any]) -> Iterator[Any]:
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                self.seconds[label] += time.perf_counter() - t0
            yield item


def profile(cfgs: list[TrainConfig], tmp: Path, opts: RunOptions) -> str:
    """Where one bundle's wall time goes (wrapping the engine's pieces)."""
    t = Timers()
    s = bundle_mod._Session
    saved = {n: getattr(s, n) for n in ("_forward", "_step", "_norms", "_clip", "evaluate", "_validate", "_finish")}
    opt_step, loader = BatchedOptimizer.step, bundle_mod.loader
    s._forward = t.wrap("forward passes (train and evaluation)", s._forward)  # type: ignore[method-assign]
    s._step = t.wrap("step: data + forward + backward + masks", s._step)  # type: ignore[method-assign]
    s._norms = t.wrap("gradient norms per member and group", s._norms)  # type: ignore[method-assign]
    s._clip = t.wrap("clipping", s._clip)  # type: ignore[method-assign]
    s.evaluate = t.wrap("evaluations (val and test)", s.evaluate)  # type: ignore[method-assign]
    s._validate = t.wrap("validation + checkpoints", s._validate)  # type: ignore[method-assign]
    s._finish = t.wrap("test + results", s._finish)  # type: ignore[method-assign]
    BatchedOptimizer.step = t.wrap("optimizer", opt_step)  # type: ignore[method-assign]
    bundle_mod.loader = lambda *a, **kw: _Timed(t, loader(*a, **kw))  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        bundle_mod.train_bundle(cfgs, [tmp / f"p{i}" for i in range(len(cfgs))], opts)
        total = time.perf_counter() - t0
    finally:
        for n, f in saved.items():
            setattr(s, n, f)
        BatchedOptimizer.step, bundle_mod.loader = opt_step, loader  # type: ignore[method-assign]
    lines = [f"Where the time of one bundle of K={len(cfgs)} goes (wall {total:.1f} s; nested rows overlap):", "",
             "| part | seconds | share |", "|---|---:|---:|"]
    for label, sec in sorted(t.seconds.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {label} | {sec:.2f} | {100 * sec / total:.0f} % |")
    return "\n".join(lines)


class _Timed:
    """A DataLoader whose iteration is timed as ``data loading``."""

    def __init__(self, t: Timers, inner: Any) -> None:
        self.t, self.inner = t, inner

    def __iter__(self) -> Iterator[Any]:
        return self.t.iterator("data loading (train and evaluation)", iter(self.inner))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", type=int, nargs="*", default=[1, 3, 9, 27])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default="mini:digits")
    ap.add_argument("--profile", type=int, default=0, metavar="K")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(args.threads)
    opts = RunOptions(device="cpu")
    load_before = os.getloadavg()
    rows: list[tuple[float, ...]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        finetune("micro", args.data, configs(1, args.data, 1)[0], opts, out=tmp / "warm")  # caches, imports
        for k in args.ks:
            cfgs = configs(k, args.data, args.steps)
            images = k * args.steps * cfgs[0].batch_size
            (sub := tmp / f"k{k}").mkdir()
            bt, bw = run_bundle(cfgs, sub, opts)
            st, sw = run_single(cfgs, sub, opts)
            rows.append((k, images / st, images / bt, st / bt, images / sw, images / bw, sw / bw, os.getloadavg()[0]))
            report(args, rows, load_before)
        if args.profile:
            text = (f"## Where a bundle's time goes (`benchmarks/bundle_speed.py --profile {args.profile}`)\n\n"
                    f"{datetime.date.today().isoformat()}, {os.cpu_count()} CPUs, {args.threads} torch thread(s), "
                    f"load average {os.getloadavg()[0]:.1f}, {args.data}, {args.steps} steps, one validation.\n\n"
                    + profile(configs(args.profile, args.data, args.steps), tmp, opts))
            print(text, flush=True)
            if args.write:
                write_section("bundle_speed_profile", text)


def report(args: argparse.Namespace, rows: list[tuple[float, ...]], load_before: tuple[float, ...]) -> None:
    """Print the table so far (and write it with ``--write``)."""
    lines = [
        "## Run bundles against runs one after another (`benchmarks/bundle_speed.py`)",
        "",
        f"{datetime.date.today().isoformat()}, {platform.machine()} with {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, {args.threads} torch thread(s), load average {load_before[0]:.1f} before / "
        f"{os.getloadavg()[0]:.1f} after (the machine is shared with other jobs: read the ratios). The bundled "
        f"micro-ViT on {args.data}, the mini recipe shortened to {args.steps} steps of batch 32 with one validation; "
        "runs: each group kind in turn with 3 seeds x 2 lrs (the order sweeps pack them). Images/s are training "
        "images summed over the K runs; train: from the runs' train_seconds; wall: the whole call (set-up, "
        "evaluations, files).",
        "",
        "| K | train img/s, one after another | train img/s, bundle | ratio | wall img/s, one after another | "
        "wall img/s, bundle | ratio | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, st, bt, r, sw, bw, rw, load in rows:
        lines.append(f"| {k:.0f} | {st:.1f} | {bt:.1f} | {r:.2f} | {sw:.1f} | {bw:.1f} | {rw:.2f} | {load:.1f} |")
    text = "\n".join(lines)
    print(text, flush=True)
    if args.write:
        write_section("bundle_speed", text)


if __name__ == "__main__":
    main()
