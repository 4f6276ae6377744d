"""Benchmark: sweep throughput with 1 vs 2 concurrent trials, and Ray Tune's overhead per trial.

The same ``N`` tiny finetuning runs (micro-ViT architecture, random weights, ``random`` images) are executed
from scratch, each configuration in a fresh sweep directory:

* ``local``: the in-process executor, one task after the other, 1 torch thread;
* ``ray c=1 (1 thread)``: Ray Tune, one trial at a time, 1 CPU per trial;
* ``ray c=1 (2 threads)``: Ray Tune, one trial at a time, 2 CPUs (torch threads) per trial;
* ``ray c=2 (1 thread each)``: Ray Tune, two concurrent trials of 1 CPU.

Reported per configuration: wall time of ``run_sweep`` (planning, Ray start, execution, tables), the start-up
time until the first task starts, the mean time a task spends inside ``execute_task`` (from
``events.jsonl``), the mean gap between the end of one task and the start of the next on the same slot,
and the throughput in runs per minute after start-up. Ray overhead per trial = (Ray c=1 execution time -
local execution time) / N, with the same threads. The machine's load average is printed: on a shared machine
the absolute numbers move, the ratios measured in one run are the figures to read.

Usage: ``python benchmarks/sweep_overhead.py [--runs 6] [--steps 4] [--write]`` (``--write`` replaces this
benchmark's section of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from results import write_section

from vitplast.sweep import Resources, parse_sweep, run_sweep
from vitplast.sweep.execute import read_events

HERE = Path(__file__).resolve().parent


def spec(runs: int, steps: int) -> Any:
    lrs = [0.01 * (i + 1) for i in range(runs)]
    return parse_sweep({
        "name": "bench", "models": ["timm:vit_micro_patch4_32"], "datasets": ["random:48"], "groups": ["mha"],
        "lrs": lrs, "seeds": [0],
        "train": {"steps": steps, "batch_size": 16, "eval_every": steps, "random_weights": True},
        "probe": False, "plasticity": False, "run": {"device": "cpu"},
    })


def measure(name: str, executor: str, resources: Resources, runs: int, steps: int, tmp: Path) -> dict[str, Any]:
    out = tmp / name.replace(" ", "_").replace("(", "").replace(")", "").replace("=", "")
    t0 = time.time()
    outcome = run_sweep(spec(runs, steps), out, executor=executor, resources=resources)
    wall = time.time() - t0
    assert not outcome.failed and outcome.ran == runs, (outcome.failed, outcome.ran)
    ev = read_events(out)
    starts = {e["id"]: e["time"] for e in ev if e["event"] == "start"}
    dones = {e["id"]: (e["time"], e["seconds"]) for e in ev if e["event"] == "done"}
    first = min(starts.values())
    last = max(t for t, _ in dones.values())
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for e in ev:
        if e["event"] in ("start", "done"):
            by_pid.setdefault(e["pid"], []).append((e["time"], 1.0 if e["event"] == "start" else 0.0))
    gaps = []
    for seq in by_pid.values():
        seq.sort()
        gaps += [b[0] - a[0] for a, b in itertools.pairwise(seq) if a[1] == 0.0 and b[1] == 1.0]
    return {
        "name": name,
        "wall": wall,
        "startup": first - t0,
        "execution": last - first,
        "task": statistics.mean(s for _, s in dones.values()),
        "gap": statistics.mean(gaps) if gaps else float("nan"),
        "per_min": 60 * runs / (last - first) if last > first else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    load_before = os.getloadavg()
    configs = [
        ("local", "local", Resources(cpus_per_trial=1)),
        ("ray c=1 (1 thread)", "ray", Resources(cpus_per_trial=1, gpus_per_trial=0, max_concurrent=1)),
        ("ray c=1 (2 threads)", "ray", Resources(cpus_per_trial=2, gpus_per_trial=0, max_concurrent=1)),
        ("ray c=2 (1 thread each)", "ray", Resources(cpus_per_trial=1, gpus_per_trial=0, max_concurrent=2)),
    ]
    with tempfile.TemporaryDirectory(prefix="vitplast-bench-") as tmp:
        # warm-up: imports, data and model construction paths (not measured)
        measure("warmup", "local", Resources(cpus_per_trial=1), 1, 1, Path(tmp))
        rows = [measure(n, e, r, args.runs, args.steps, Path(tmp)) for n, e, r in configs]
    load_after = os.getloadavg()
    local, ray1 = rows[0], rows[1]
    overhead = (ray1["execution"] - local["execution"]) / args.runs
    lines = [
        "## Sweep throughput and Ray overhead (`benchmarks/sweep_overhead.py`)",
        "",
        f"{args.runs} identical finetuning runs (micro-ViT architecture, random weights, `random:48`, {args.steps} "
        f"steps of batch 16, one evaluation), {platform.machine()} with {os.cpu_count()} CPUs, "
        f"load average {load_before[0]:.1f} before / {load_after[0]:.1f} after (the machine is shared), "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| executor | wall s | start-up s | execution s | mean task s | gap between tasks s | runs / min |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['wall']:.1f} | {r['startup']:.1f} | {r['execution']:.1f} | {r['task']:.2f} | "
                     f"{r['gap']:.2f} | {r['per_min']:.2f} |")
    c2 = rows[3]
    lines += [
        "",
        f"Ray overhead per trial (c=1, 1 thread, vs in-process): {overhead:+.2f} s; Ray start-up (ray.init, trial actors, "
        f"imports in the worker) {ray1['startup'] - local['startup']:+.1f} s more than in-process. "
        f"Two concurrent 1-thread trials: {c2['per_min'] / ray1['per_min']:.2f}x the throughput of one 1-thread trial and "
        f"{c2['per_min'] / rows[2]['per_min']:.2f}x that of one 2-thread trial.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section("sweep_overhead", text)


if __name__ == "__main__":
    main()
