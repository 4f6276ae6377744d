"""Benchmarks of the finetuning engine: step time per group, engine vs a plain PyTorch loop, fixed cost.

Three parts (``--parts``), each a ratio measured side by side in one run, each its own section of RESULTS.md:

* ``groups``: training-step time of each trainable group against ``full`` (below);
* ``engine``: the engine's training step (:class:`vitplast.train.loop._Engine`: autocast, per-group gradient
  norms, clipping, fused optimizer) against a minimal hand-written PyTorch step (forward, cross-entropy,
  backward, ``clip_grad_norm_``, ``torch.optim.SGD`` with momentum) on the same model, batch, precision and
  frozen groups, for ``full ln1 mha fc2`` in fp32 and bf16 on the micro-ViT at batch 32 (the mini recipe);
* ``fixed``: the fixed cost of one ``vitplast finetune`` (in-process CLI call, imports excluded, model and data
  rebuilt as in a fresh process): ``T(N2) - N2 x marginal``, with ``marginal = (T(N2) - T(N1)) / (N2 - N1)``.

Part ``groups``:

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

Usage: ``python benchmarks/finetune_speed.py [--parts engine fixed] [--rounds 3] [--threads 2] [--write]``
(``--write`` replaces the parts' sections of ``benchmarks/RESULTS.md``).
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
from steppers import engine_stepper, plain_stepper

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


ENGINE_CONFIGS = (("full", "fp32"), ("ln1", "fp32"), ("mha", "fp32"), ("fc2", "fp32"), ("full", "bf16"), ("mha", "bf16"))


def bench_engine(rounds: int, steps: int, batch: int = 16) -> dict[tuple[str, str], dict[str, float]]:
    """Median CPU seconds (process time: robust to other processes on a shared machine; run it on one thread) per
    step of the engine and of :func:`steppers.plain_step`, interleaved, per (group, precision)."""
    from vitplast.precision import resolve_precision

    torch.manual_seed(0)
    vit = load_model("micro")
    vit.reset_head(10)
    vit.train()
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    cpu = torch.device("cpu")
    out: dict[tuple[str, str], dict[str, float]] = {}
    for group, precision in ENGINE_CONFIGS:
        step = {"engine": engine_stepper(vit, group, precision, x, y, cpu),
                "plain": plain_stepper(vit, group, resolve_precision(precision, cpu).dtype, x, y)}
        times: dict[str, list[float]] = {"engine": [], "plain": []}
        for r in range(rounds + 1):  # round 0 warms up (optimizer state, allocator) and is not recorded
            for kind in ("engine", "plain"):
                t = time.process_time()
                for _ in range(steps):
                    step[kind]()
                if r > 0:
                    times[kind].append((time.process_time() - t) / steps)
        ratios = [e / p for e, p in zip(times["engine"], times["plain"], strict=True)]
        out[(group, precision)] = {"engine_ms": 1e3 * statistics.median(times["engine"]),
                                   "plain_ms": 1e3 * statistics.median(times["plain"]),
                                   "ratio": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
        print(group, precision, out[(group, precision)], flush=True)
    return out


def bench_fixed(n1: int, n2: int, repeats: int, plots: bool, batch: int, data: str = "mini:faces") -> dict[str, float]:
    """Wall and process CPU seconds of in-process ``vitplast finetune`` runs of ``n1`` and ``n2`` steps (median
    of ``repeats``), the marginal step and the fixed cost ``T(n2) - n2 x marginal`` of each clock."""
    import tempfile

    from vitplast.cli import main as cli_main
    from vitplast.train import cache

    def once(steps: int) -> tuple[float, float]:
        cache.clear()  # model and data are rebuilt, as in a fresh process (the data's disk cache is kept)
        with tempfile.TemporaryDirectory() as tmp:
            t, c = time.perf_counter(), time.process_time()
            try:
                cli_main(["finetune", "--model", "micro", "--data", data, "--train", "mha", "--steps", str(steps),
                          "--batch-size", str(batch),
                          "--eval-every", str(steps), "--device", "cpu", "--out", f"{tmp}/run",
                          "--plots" if plots else "--no-plots"])
            except SystemExit as exc:
                assert not exc.code, exc.code
            return time.perf_counter() - t, time.process_time() - c

    once(1)  # imports (torch, timm, scikit-learn for the data set) and the data set's disk cache
    out: dict[str, float] = {}
    runs1, runs2 = [once(n1) for _ in range(repeats)], [once(n2) for _ in range(repeats)]
    for i, clock in enumerate(("wall", "cpu")):
        t1, t2 = statistics.median(r[i] for r in runs1), statistics.median(r[i] for r in runs2)
        marginal = (t2 - t1) / (n2 - n1)
        out |= {f"{clock}_t1": t1, f"{clock}_t2": t2, f"{clock}_marginal": marginal,
                f"{clock}_fixed": t2 - n2 * marginal}
    return out


def engine_text(res: dict[tuple[str, str], dict[str, float]], machine: str, rounds: int, steps: int,
                seconds: float, batch: int) -> str:
    lines = ["| group | precision | engine CPU ms / step | plain PyTorch CPU ms / step | engine / plain (range) |",
             "|---|---|---:|---:|---:|"]
    for (g, p), r in res.items():
        lines.append(f"| {g} | {p} | {r['engine_ms']:.0f} | {r['plain_ms']:.0f} | "
                     f"{r['ratio']:.2f} ({r['min']:.2f}-{r['max']:.2f}) |")
    worst = max(r["ratio"] for r in res.values())
    bf = [res[(g, "fp32")]["engine_ms"] / res[(g, "bf16")]["engine_ms"] for g, p in res if p == "bf16"]
    return (
        "## Engine step vs a plain PyTorch loop (`benchmarks/finetune_speed.py --parts engine`)\n\n"
        f"CPU ({machine}), {time.strftime('%Y-%m-%d')}; micro-ViT (shipped weights), batch {batch} of 32 px Gaussian "
        "images, SGD momentum 0.9, clipping at 1.0; the engine step (autocast, per-group gradient norms, clipping, "
        "fused SGD) and a minimal hand-written step (forward, cross-entropy, backward, `clip_grad_norm_`, "
        f"`torch.optim.SGD`) interleaved; process CPU time per step (the machine is shared: wall times there vary "
        f"2x from step to step), median of {rounds} rounds of {steps} steps; total {seconds:.0f} s.\n\n"
        + "\n".join(lines)
        + f"\n\nWorst median engine / plain ratio: {worst:.2f} (goal <= 1.10). Engine step time fp32 / bf16 on this "
        f"CPU: {' / '.join(f'{v:.2f}' for v in bf)} for full / mha (above 1: bf16 faster).\n"
    )


def fixed_text(rows: dict[str, dict[str, float]], machine: str, n1: int, n2: int, repeats: int, batch: int) -> str:
    table = "\n".join(f"| {k} | {c} | {r[c + '_t1']:.2f} | {r[c + '_t2']:.2f} | {r[c + '_marginal']:.3f} | "
                      f"{r[c + '_fixed']:.2f} |" for k, r in rows.items() for c in ("wall", "cpu"))
    return (
        "## Fixed cost of one CLI finetune (`benchmarks/finetune_speed.py --parts fixed`)\n\n"
        f"CPU ({machine}), {time.strftime('%Y-%m-%d')}; `vitplast finetune --model micro --data mini:faces "
        f"--train mha --batch-size {batch}` (otherwise the mini recipe: AdamW, one evaluation at the end), called "
        "in-process after a "
        f"warm-up call (imports excluded), model and data rebuilt for each call; median of {repeats}.\n\n"
        f"| figure | clock | T({n1} steps) s | T({n2} steps) s | marginal s / step | fixed cost s |\n"
        f"|---|---|---:|---:|---:|---:|\n{table}\n\n"
        "The fixed cost is T(N) - N x marginal: model construction, data loading, the validation and test passes "
        "(32 + 40 images), checkpoints and result files, and with `--plots` (the default of a single CLI run; "
        "sweeps and the library draw no figure) `curves.png`. Goal <= 3 s. On one thread, process CPU time is the "
        "wall time an idle core would take; the wall times here are inflated by the other processes sharing the 2 "
        "cores (see the load average).\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="*", default=["engine", "fixed"], choices=["groups", "engine", "fixed", "gpu"])
    ap.add_argument("--deadline", type=float, default=240.0, help="gpu part: seconds after which optional rows are skipped")
    ap.add_argument("--json", type=Path, help="gpu part: also write the raw figures here")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1, help="timed steps per configuration and round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="batch of the engine and fixed-cost parts")
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
               f"{args.threads} threads, load average {os.getloadavg()[0]:.1f} at the start")
    if "engine" in args.parts:
        t0 = time.perf_counter()
        res = bench_engine(args.rounds, args.steps, args.batch)
        text = engine_text(res, machine, args.rounds, args.steps, time.perf_counter() - t0, args.batch)
        print(text)
        if args.write:
            write_section("finetune_engine", text)
    if "fixed" in args.parts:
        n1, n2 = 1, 4
        reps = max(1, args.rounds)
        rows = {flag: bench_fixed(n1, n2, reps, flag == "--plots", args.batch) for flag in ("--no-plots", "--plots")}
        text = fixed_text(rows, machine, n1, n2, reps, args.batch)
        print(text)
        if args.write:
            write_section("finetune_fixed_cost", text)
    if "groups" in args.parts:
        groups_part(args)
    if "gpu" in args.parts:
        from gpu_speed import gpu_part

        gpu_part(args.deadline, args.write, args.json)


def groups_part(args: argparse.Namespace) -> None:
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
