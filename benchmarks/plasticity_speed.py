"""Benchmark: the streaming plasticity estimator against the naive implementation.

ViT-Base-sized random weights (``timm:vit_base_patch16_224``), 224 px Gaussian images fed as a stream of
batches. For each implementation and number of pairs, a fresh subprocess measures wall time and peak
resident memory above the loaded model (``ru_maxrss`` minus the RSS after loading), so runs do not share
allocator state. FLOPs are counted analytically (multiply-add = 2 FLOPs) and compared with the plain
float32 matmul rate measured in the same subprocess, so ratios are robust to a shared, noisy machine.

Usage: ``python benchmarks/plasticity_speed.py [--pairs 16 64 128] [--device cpu|cuda] [--write]``
(``--write`` replaces this benchmark's section of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from results import write_section

HERE = Path(__file__).resolve().parent
MODEL = "timm:vit_base_patch16_224"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def flops_per_pair(depth: int, n: int, d: int, m: int, patch_in: int, impl: str) -> float:
    """Analytic FLOPs per pair (2 per multiply-add); both images of the pair are embedded."""
    embed = 2 * 2 * (n - 1) * patch_in * d
    attn = 2 * (2 * 3 * n * d * d + 2 * 2 * n * n * d + 2 * n * d * d)  # two streams: qkv, QK^T + AV, proj
    if impl == "estimator":
        gram = 2 * n * d * d + 2 * 2 * depth * d * d  # D^T D once, contracted with every layer's W^T W
        return embed + depth * attn + gram
    ffn = 2 * (2 * n * d * m + 2 * n * m * d)  # FC1 on X and Y, FC2 on zero-padded X and Y
    return embed + depth * (attn + ffn)


def matmul_gflops(device: torch.device, rows: int, d: int, m: int, reps: int = 5) -> float:
    a = torch.randn(rows, d, device=device)
    w = torch.randn(d, m, device=device)
    a @ w
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ w
    sync(device)
    return 2 * rows * d * m * reps / (time.perf_counter() - t) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def worker(impl: str, pairs: int, batch: int, device_name: str) -> dict[str, float]:
    from vitplast.models import load_model
    from vitplast.plasticity import measure_plasticity
    from vitplast.reference import naive_plasticity

    device = torch.device(device_name)
    vit = load_model(MODEL, random_weights=True).to(device)
    size = vit.data_config.input_size

    def stream(seed: int):  # type: ignore[no-untyped-def]
        g = torch.Generator(device=device).manual_seed(seed)
        for i in range(0, pairs, batch):
            yield torch.randn(min(batch, pairs - i), 3, size, size, generator=g, device=device)

    n, d, m, depth = vit.seq_len(), vit.dim, vit.mlp_dim, vit.depth
    # warm-up (one small batch) so one-off allocations and kernel selection are not timed
    with torch.no_grad():
        measure_plasticity(vit, torch.randn(2, 3, size, size, device=device), torch.randn(2, 3, size, size, device=device))
    rate_before = matmul_gflops(device, batch * n, d, m)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = rss_mb()
    t = time.perf_counter()
    if impl == "estimator":
        measure_plasticity(vit, stream(1), stream(2), batch_size=batch)
    else:
        with torch.no_grad():
            naive_plasticity(vit, None, None, batches=zip(stream(1), stream(2), strict=True))
    sync(device)
    seconds = time.perf_counter() - t
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20 - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    rate = (rate_before + matmul_gflops(device, batch * n, d, m)) / 2
    flops = flops_per_pair(depth, n, d, m, 3 * 16 * 16, impl) * pairs
    return {
        "seconds": seconds,
        "pairs_per_s": pairs / seconds,
        "peak_mb": max(peak, 0.0),
        "gflops_achieved": flops / seconds / 1e9,
        "matmul_gflops": rate,
        "flop_limited_s": flops / (rate * 1e9),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, nargs="+", default=[16, 64, 128])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--impls", nargs="+", default=["estimator", "naive"])
    ap.add_argument("--write", action="store_true", help="replace this benchmark's section of RESULTS.md")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="results file for --write")
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "PAIRS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.batch_size, args.device)))
        return
    rows = []
    for pairs in args.pairs:
        for impl in args.impls:
            cmd = [sys.executable, __file__, "--worker", impl, str(pairs), "--batch-size", str(args.batch_size),
                   "--device", args.device]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"worker {impl} {pairs} failed")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r.update(impl=impl, pairs=pairs)
            rows.append(r)
            print(f"{impl:9s} {pairs:4d} pairs: {r['pairs_per_s']:7.2f} pairs/s  peak +{r['peak_mb']:8.0f} MB  "
                  f"{r['gflops_achieved']:7.1f} GFLOP/s (matmul {r['matmul_gflops']:.1f})  "
                  f"time / FLOP-limited = {r['seconds'] / r['flop_limited_s']:.2f}", flush=True)
    text = report(rows, args)
    print(text)
    if args.write:
        section = "plasticity_speed" if args.device == "cpu" else "plasticity_speed_gpu"
        write_section(section, text, args.results)


def report(rows: list[dict], args: argparse.Namespace) -> str:  # type: ignore[type-arg]
    by = {(r["impl"], r["pairs"]): r for r in rows}
    cpu = platform.processor() or platform.machine()
    dev = args.device if args.device == "cpu" else torch.cuda.get_device_name(0)
    lines = [
        "## Plasticity estimator vs naive (`benchmarks/plasticity_speed.py`)",
        "",
        f"ViT-Base/16 random weights, 224 px, batch {args.batch_size}, device `{dev}` ({cpu}, "
        f"{rows[0]['threads']} torch threads), {time.strftime('%Y-%m-%d')}. Peak memory is above the loaded "
        "model; each cell is a fresh process.",
        "",
        "| pairs | estimator pairs/s | naive pairs/s | speed-up | estimator peak MB | naive peak MB | memory ratio "
        "| estimator GFLOP/s | matmul GFLOP/s | time / FLOP-limited time |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in args.pairs:
        e, n = by.get(("estimator", p)), by.get(("naive", p))
        if e is None or n is None:
            continue
        lines.append(
            f"| {p} | {e['pairs_per_s']:.2f} | {n['pairs_per_s']:.2f} | {e['pairs_per_s'] / n['pairs_per_s']:.2f}x "
            f"| {e['peak_mb']:.0f} | {n['peak_mb']:.0f} | {n['peak_mb'] / max(e['peak_mb'], 1):.0f}x "
            f"| {e['gflops_achieved']:.1f} | {e['matmul_gflops']:.1f} | {e['seconds'] / e['flop_limited_s']:.2f} |"
        )
    lines += [
        "",
        "Goals: speed-up >= 1.8x, estimator memory flat in the number of pairs and >= 10x below naive at 64 pairs, "
        "time within 1.3x of the FLOP-limited time (FLOPs of the estimator's own algorithm at the plain matmul rate).",
    ]
    return "\n".join(lines) + "\n"



if __name__ == "__main__":
    main()
