"""Benchmark: training-step time of each trainable group against ``full`` (issue 5).

One step = forward + backward + gradient norms / clipping + SGD-momentum update, exactly the engine's
pieces (:mod:`vitplast.train.optim`), on in-memory Gaussian batches (no data loading). Models: the
micro-ViT (32 px) and ViT-Base-sized random weights (``timm:vit_base_patch16_224``, 224 px), on CPU.
Configurations are interleaved round by round and the median step time is reported, so the ratios to
``full`` (measured in the same run) are robust to a shared, noisy machine.

Frozen tensors have ``requires_grad=False``, so autograd computes no weight gradient for them; the row
``ln1 (masked)`` shows the naive alternative (every tensor requires grad, the optimizer only updates
``ln1``) for comparison. Expectation: a group whose weights are small (``ln1``, ``ln2``) still needs the
input-gradient pass through every later layer, but no weight-gradient matmuls, so its step costs about
(forward + input-gradient) / (forward + input-gradient + weight-gradient), i.e. roughly 2/3 of ``full``.

Usage: ``python benchmarks/finetune_speed.py [--rounds 3] [--threads 2] [--write]`` (``--write``
replaces this benchmark's section of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from results import write_section

from vitplast.models import load_model
from vitplast.models.vit import ViT
from vitplast.train.config import TrainConfig
from vitplast.train.groups import count_params, freeze_except
from vitplast.train.optim import clip_gradients, grad_norms, make_optimizer

HERE = Path(__file__).resolve().parent
CONFIGS = ("full", "embed", "ln1", "mha", "ln2", "fc1", "fc2", "ln1 (masked)")
MODELS = {"micro-ViT (32 px)": ("timm:vit_micro_patch4_32", 64), "ViT-B/16 (224 px)": ("timm:vit_base_patch16_224", 4)}


def setup(vit: ViT, name: str) -> tuple[dict[str, list[torch.nn.Parameter]], torch.optim.Optimizer]:
    if name == "ln1 (masked)":
        groups = freeze_except(vit, ("ln1",))
        for p in vit.module.parameters():
            p.requires_grad_(True)  # naive: autograd computes every weight gradient
    else:
        groups = freeze_except(vit, (name,))
    params = [p for ps in groups.values() for p in ps]
    return groups, make_optimizer(params, TrainConfig(model="m", data="d"))


def step(vit: ViT, groups: dict[str, list[torch.nn.Parameter]], opt: torch.optim.Optimizer,
         x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    for p in vit.module.parameters():
        p.grad = None
    F.cross_entropy(vit.logits(x), y).backward()
    total, _ = grad_norms(groups)
    clip_gradients([p for ps in groups.values() for p in ps], total, 1.0)
    opt.step()


def bench_model(spec: str, batch: int, rounds: int, steps: int) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    vit = load_model(spec, random_weights=True)
    vit.reset_head(10)
    vit.train()
    size = vit.data_config.input_size
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    times: dict[str, list[float]] = {c: [] for c in CONFIGS}
    counts: dict[str, int] = {}
    for r in range(rounds + 1):  # round 0 warms up (allocator, kernel selection) and is not recorded
        for c in CONFIGS:
            groups, opt = setup(vit, c)
            counts[c] = count_params([p for ps in groups.values() for p in ps])
            step(vit, groups, opt, x, y)  # first step allocates optimizer state
            t = time.perf_counter()
            for _ in range(steps):
                step(vit, groups, opt, x, y)
            if r > 0:
                times[c].append((time.perf_counter() - t) / steps)
    full = statistics.median(times["full"])
    return {c: {"ms": 1e3 * statistics.median(v), "ratio": statistics.median(v) / full,
                "min_ratio": min(v) / full, "max_ratio": max(v) / full, "trainable": counts[c]}
            for c, v in times.items()}


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    names = list(results)
    head = "| configuration | " + " | ".join(f"{n}: ms / step | ratio to full" for n in names) + " |"
    sep = "|---|" + "---:|---:|" * len(names)
    lines = [head, sep]
    for c in CONFIGS:
        cells = []
        for n in names:
            r = results[n][c]
            cells.append(f"{r['ms']:.1f} | {r['ratio']:.2f} ({r['min_ratio']:.2f}-{r['max_ratio']:.2f})")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """``ln1``, ``ln2`` and ``ln1 (masked)`` step time as a fraction of ``full``, per model."""
    parts = []
    for c in ("ln1", "ln2", "ln1 (masked)"):
        ratios = " / ".join(f"{r[c]['ratio']:.2f}" for r in results.values())
        parts.append(f"`{c}` {ratios}")
    return ", ".join(parts) + " of `full` (" + " / ".join(n.split(",")[0] for n in results) + ")"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1, help="timed steps per configuration and round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    t0 = time.perf_counter()
    for name in args.models:
        spec, batch = MODELS[name]
        results[f"{name}, batch {batch}"] = bench_model(spec, batch, args.rounds, args.steps)
        print(f"{name}: done", flush=True)
    tab = table(results)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
               f"{args.threads} threads")
    text = (
        "## Finetuning step time per trainable group (`benchmarks/finetune_speed.py`)\n\n"
        f"CPU ({machine}); random weights, Gaussian inputs, SGD momentum + clipping as in the engine; median of "
        f"{args.rounds} interleaved rounds of {args.steps} step(s) (range of the ratio in brackets); "
        f"total {time.perf_counter() - t0:.0f} s.\n\n"
        f"{tab}\n\n"
        "Frozen tensors have `requires_grad=False`, so autograd computes no weight gradient for them. `ln1` and "
        "`ln2` still back-propagate input gradients through every block (the head is trained), so their expected "
        "cost is the forward + input-gradient passes without the weight-gradient matmuls, about 2/3 of `full`. "
        "`ln1 (masked)` is the naive alternative (every tensor requires grad, only `ln1` is updated). "
        f"Measured here: {summary(results)}.\n"
    )
    print(text)
    if args.write:
        write_section("finetune_speed", text)
        print(f"wrote section to {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
