"""Benchmark: a reduced mini reproduction with run bundles against the same reproduction one run per trial.

``vitplast reproduce --suite mini`` (``docs/mini-protocol.md``) on a few targets (``--targets``), shortened
(``--steps``), one lr grid for every group (``--lrs``: no pilot, one stage) and ``--seeds``, runs twice in this
process with the local executor, into two temporary folders: once with ``--bundle 1`` and once with ``--bundle K``.
Before them the model, the data sets and the LP-FT probe heads of the targets are loaded into the in-process
cache (:mod:`vitplast.train.cache`), so neither reproduction pays for them and the second does not profit from
the first. Each reproduction is the whole command: the sweep (finetuning runs, probes, plasticity analyses),
the selector scores and the report.

Reported per reproduction: its wall time; ``finetuning``: the time inside finetuning trials (the union of the
finetuning tasks' start-to-done intervals in ``events.jsonl``: a bundle's members share one); ``training``: the
runs' ``train_seconds`` summed (each run's share of its bundle's step time, so the sum is the time spent in
training steps); the bundles' sizes (``bundle_size`` of ``results.csv``). Then the ratios bundle / one run per
trial, the number of runs, and the checks: both folders hold the same run ids, and the largest absolute difference
between the two test accuracies of a run. Exit status 1 when the run ids differ or a run failed.

Usage: ``python benchmarks/reproduce_bundle.py [--targets latin,count] [--steps 30] [--lrs 1e-3] [--seeds 0,1]
[--model micro-long] [--k 6] [--threads 1] [--no-write]`` writes this benchmark's section of
``benchmarks/RESULTS.md``; ``--smoke`` (``--quick`` on ``digits`` with ``micro``, 12 runs of 3 steps) checks the
script in a few minutes and writes nothing. The bundled checkpoints ``micro`` and ``micro-long`` ship with the
package (no network); ``--random-weights`` uses the architecture without them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from results import write_section

from vitplast.cli import main as vitplast
from vitplast.suites import SuiteOptions, suite_of
from vitplast.sweep import build_plan
from vitplast.sweep.execute import read_events
from vitplast.sweep.kinds import FINETUNE

SMOKE = {"targets": "digits", "model": "micro", "k": 6}
REAL = {"targets": "latin,count", "model": "micro-long", "k": 6}


def design(args: argparse.Namespace) -> list[str]:
    """The options of ``vitplast reproduce --suite mini`` that choose what runs."""
    cmd = ["--model", args.model, "--targets", args.targets]
    cmd += ["--quick"] if args.smoke else ["--steps", str(args.steps), "--lrs", args.lrs, "--seeds", args.seeds]
    return cmd + (["--random-weights"] if args.random_weights else [])


def argv(args: argparse.Namespace, out: Path, k: int) -> list[str]:
    """The ``vitplast reproduce`` command of one reproduction."""
    return ["reproduce", "--suite", "mini", *design(args), "--out", str(out), "--executor", "local", "--bundle", str(k),
            "--cpus-per-trial", str(args.threads)]


def warm_up(args: argparse.Namespace) -> None:
    """Model, data sets and LP-FT heads of every target into the in-process cache (one run's ``prepare`` each)."""
    from vitplast.train.loop import prepare

    seeds = None if args.smoke else tuple(int(s) for s in args.seeds.split(","))
    opts = SuiteOptions(quick=args.smoke, model=args.model, random_weights=args.random_weights,
                        targets=tuple(args.targets.split(",")), seeds=seeds)
    seen: set[tuple[str, int | None]] = set()
    for task in build_plan(suite_of("mini").spec(opts, dry_run=True)).of_kind(FINETUNE):
        cfg = FINETUNE.config(task)
        key = (cfg.data, cfg.seed if cfg.random_weights else None)  # random weights: one backbone per seed
        if key not in seen:
            seen.add(key)
            prepare(cfg)


def finetuning_seconds(root: Path) -> float:
    """Length of the union of the finetuning tasks' ``start``-``done`` intervals (``events.jsonl``)."""
    starts: dict[str, float] = {}
    spans = []
    for e in read_events(root):
        if e.get("kind") == FINETUNE.name and e["event"] == "start":
            starts[e["id"]] = e["time"]
        elif e.get("kind") == FINETUNE.name and e["event"] == "done" and e["id"] in starts:
            spans.append((starts.pop(e["id"]), e["time"]))
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        total += max(0.0, b - max(a, end))
        end = max(end, b)
    return total


def reproduce(args: argparse.Namespace, out: Path, k: int) -> dict[str, Any]:
    """Run one reproduction (its output in ``out.log``) and read its figures."""
    t0 = time.perf_counter()
    code = 0
    with open(out.with_suffix(".log"), "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            vitplast(argv(args, out, k))
        except SystemExit as exc:
            code = int(exc.code or 0)
    wall = time.perf_counter() - t0
    if code:
        print(out.with_suffix(".log").read_text()[-3000:], file=sys.stderr)
        raise SystemExit(f"reproduce --bundle {k} failed with exit status {code}")
    runs = pd.read_csv(out / "results.csv")
    sizes = Counter(runs.groupby("bundle_train_seconds")["bundle_size"].first())
    return {"k": k, "wall": wall, "finetuning": finetuning_seconds(out), "training": runs["train_seconds"].sum(),
            "runs": runs, "sizes": ", ".join(f"{n} x {s}" for s, n in sorted(sizes.items(), reverse=True)),
            "probes": len(pd.read_csv(out / "probes.csv")), "analyses": len(pd.read_csv(out / "analyses.csv"))}


def compare(single: pd.DataFrame, bundled: pd.DataFrame) -> tuple[bool, float, int]:
    """``(same run ids, max |test_acc difference|, runs not done)``."""
    a, b = single.set_index("id"), bundled.set_index("id")
    same = set(a.index) == set(b.index)
    both = a.index.intersection(b.index)
    diff = float((a.loc[both, "test_acc"] - b.loc[both, "test_acc"]).abs().max()) if len(both) else float("nan")
    failed = int((a["status"] != "done").sum() + (b["status"] != "done").sum())
    return same, diff, failed


def report(args: argparse.Namespace, rows: list[dict[str, Any]], load: tuple[float, float]) -> tuple[str, bool]:
    single, bundled = rows
    same, diff, failed = compare(single["runs"], bundled["runs"])
    device = str(single["runs"]["device"].iloc[0])
    n = len(single["runs"])
    lines = [
        "## A reduced mini reproduction: run bundles against one run per trial (`benchmarks/reproduce_bundle.py`)",
        "",
        f"{datetime.date.today().isoformat()}, {platform.machine()} with {os.cpu_count()} CPUs, device {device}, torch "
        f"{torch.__version__}, {args.threads} torch thread(s) per trial, load average {load[0]:.1f} before / "
        f"{load[1]:.1f} after. `vitplast reproduce --suite mini {' '.join(design(args))} --executor local`, once "
        f"with `--bundle 1` and once with `--bundle {args.k}`, in one process (model, data and LP-FT heads cached "
        f"beforehand): {n} finetuning runs, {single['probes']} probes, {single['analyses']} plasticity analyses. "
        "Wall: the whole command (sweep, selector scores, report); finetuning: the time inside finetuning trials; "
        "training: the runs' `train_seconds` summed (each run's share of its bundle's step time).",
        "",
        "| --bundle | wall s | finetuning s | training s | bundles (count x size) |",
        "|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['k']} | {r['wall']:.1f} | {r['finetuning']:.1f} | {r['training']:.1f} | {r['sizes']} |")
    ratio = {key: bundled[key] / single[key] for key in ("wall", "finetuning", "training")}
    lines += ["", f"Bundle / one run per trial: wall {ratio['wall']:.2f}x, finetuning {ratio['finetuning']:.2f}x, "
              f"training {ratio['training']:.2f}x (below 1: the bundles are faster). Same run ids in both: "
              f"{'yes' if same else 'NO'} ({n} runs{f', {failed} not done' if failed else ''}); test accuracies: largest "
              f"absolute difference {diff:.4f}."]
    return "\n".join(lines), same and not failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", help=f"comma list of mini targets (default {REAL['targets']})")
    ap.add_argument("--model", help=f"default {REAL['model']}")
    ap.add_argument("--k", type=int, help=f"runs per bundle of the bundled reproduction (default {REAL['k']})")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lrs", default="1e-3", help="one lr grid for every group (no pilot)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="a tiny check of the script; writes nothing")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    for key, value in (SMOKE if args.smoke else REAL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    warm_up(args)
    with tempfile.TemporaryDirectory() as d:
        rows = [reproduce(args, Path(d) / f"bundle-{k}", k) for k in (1, args.k)]
    text, ok = report(args, rows, (load_before, os.getloadavg()[0]))
    print(text, flush=True)
    if not (args.smoke or args.no_write):
        write_section("reproduce_bundle", text)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
