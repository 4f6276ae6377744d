"""GPU part of the finetuning benchmarks (``python benchmarks/finetune_speed.py --parts gpu [--write]``).

On one CUDA device, with random weights and in-memory 224 px Gaussian batches (no data loading):

* ViT-B/16, batch 128, groups ``full`` and ``mha``: images/s of the engine's training step
  (:class:`vitplast.train.loop._Engine`: autocast, per-group gradient norms, clipping, fused SGD momentum) in
  fp32, tf32, bf16 and bf16 + ``torch.compile``, next to a minimal hand-written PyTorch step (forward,
  cross-entropy, backward, ``clip_grad_norm_``, ``torch.optim.SGD``) in bf16 and fp32; the other groups and
  the evaluation pass (``inference_mode``, batch 256) in bf16.
* the plasticity estimator's pairs/s in fp32 and bf16 on 256 pairs, and the largest relative difference of a
  per-layer mean between the two;
* ViT-L/16 (batch 64) and ViT-H/14 (batch 32) in bf16 for ``full``, ``mha``, ``ln1`` and evaluation, if the
  deadline allows: the figures behind ``vitplast reproduce --suite paper --dry-run``.

Each figure is the mean of ``STEPS`` timed steps after ``WARM`` untimed ones (compile time is reported on its
own); rows past ``deadline`` seconds are skipped and say so.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from results import write_section
from steppers import engine_stepper, plain_stepper

from vitplast.models import load_model
from vitplast.models.vit import ViT
from vitplast.precision import resolve_precision

WARM, STEPS = 3, 10
MODELS = {"B": ("timm:vit_base_patch16_224", 128), "L": ("timm:vit_large_patch16_224", 64),
          "H": ("timm:vit_huge_patch14_224", 32)}
DEV = torch.device("cuda")
if os.environ.get("GPU_SPEED_SMOKE"):  # a CPU dry run of the code paths on the micro-ViT (no figures)
    WARM, STEPS, DEV = 1, 1, torch.device("cpu")
    MODELS = {k: ("timm:vit_micro_patch4_32", 4) for k in MODELS}


def sync() -> None:
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def per_step(fn: Callable[[], Any], steps: int = STEPS, warm: int = WARM) -> float:
    """Mean seconds of ``fn`` over ``steps`` calls after ``warm`` untimed ones (device synchronised)."""
    for _ in range(warm):
        fn()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - t) / steps


def plain(vit: ViT, group: str, dtype: torch.dtype | None, x: torch.Tensor, y: torch.Tensor) -> Callable[[], Any]:
    """The hand-written step of ``finetune_speed.py``, with TF32 on for bf16 as the engine has it."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = dtype is not None
    return plain_stepper(vit, group, dtype, x, y)


def evaluation(vit: ViT, x: torch.Tensor) -> Callable[[], Any]:
    prec = resolve_precision("bf16", DEV)

    def fwd() -> None:
        with torch.inference_mode(), prec.forward():
            vit.logits(x)

    return fwd


def batch(vit: ViT, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    size = vit.data_config.input_size
    g = torch.Generator(device=DEV).manual_seed(0)
    return (torch.randn(n, 3, size, size, device=DEV, generator=g),
            torch.randint(0, 100, (n,), device=DEV, generator=g))


def model(spec: str) -> ViT:
    torch.manual_seed(0)
    vit = load_model(spec, random_weights=True)
    vit.reset_head(100)
    return vit.to(DEV).train()


def rows_for(key: str, vit: ViT, n: int, plan: list[tuple[str, str, str]], t0: float, deadline: float,
             rows: list[dict[str, Any]]) -> None:
    x, y = batch(vit, n)
    for group, kind, precision in plan:
        row: dict[str, Any] = {"model": key, "batch": n, "group": group, "kind": kind, "precision": precision}
        if time.perf_counter() - t0 > deadline:
            rows.append(row | {"skipped": "deadline"})
            continue
        if kind == "eval":
            xe, _ = batch(vit, 2 * n)
            row |= {"batch": 2 * n, "img_s": 2 * n / per_step(evaluation(vit, xe))}
        elif kind == "plain":
            dtype = torch.bfloat16 if precision == "bf16" else None
            row["img_s"] = n / per_step(plain(vit, group, dtype, x, y))
        else:
            compiled = kind == "engine+compile"
            fn = engine_stepper(vit, group, precision, x, y, DEV, compiled)
            if compiled:
                t = time.perf_counter()
                fn()
                sync()
                row["compile_s"] = time.perf_counter() - t
            row["img_s"] = n / per_step(fn)
        if DEV.type == "cuda":
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        print(json.dumps(row), flush=True)
        rows.append(row)
        torch.cuda.empty_cache()


def estimator(vit: ViT, pairs: int = 256) -> dict[str, Any]:
    from vitplast.plasticity import measure_plasticity

    g = torch.Generator(device=DEV).manual_seed(1)
    size = vit.data_config.input_size
    src = torch.randn(pairs, 3, size, size, device=DEV, generator=g)
    tgt = torch.randn(pairs, 3, size, size, device=DEV, generator=g)
    vit.eval()
    out: dict[str, Any] = {"pairs": pairs}
    means = {}
    for precision in ("fp32", "bf16", "fp32", "bf16"):  # the first of each warms up
        measure_plasticity(vit, src[:4], tgt[:4], batch_size=4, precision=precision)
        sync()
        t = time.perf_counter()
        res = measure_plasticity(vit, src, tgt, batch_size=64, precision=precision)
        sync()
        out[f"{precision}_pairs_s"] = pairs / (time.perf_counter() - t)
        means[precision] = res.table["mean"].to_numpy()
    out["max_rel_diff"] = float(abs(means["bf16"] / means["fp32"] - 1).max())
    vit.train()
    print(json.dumps(out), flush=True)
    return out


def gpu_part(deadline: float, write: bool, json_path: Path | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    b_plan = [(g, "engine", p) for g in ("full", "mha") for p in ("fp32", "tf32", "bf16")]
    b_plan += [(g, "plain", p) for g in ("full", "mha") for p in ("bf16", "fp32")]
    b_plan += [(g, "engine", "bf16") for g in ("embed", "ln1", "fc1")] + [("-", "eval", "bf16")]
    rows: list[dict[str, Any]] = []
    vit = model(MODELS["B"][0])
    rows_for("B", vit, MODELS["B"][1], b_plan, t0, deadline, rows)
    est = estimator(vit)
    rows_for("B", vit, MODELS["B"][1], [(g, "engine+compile", "bf16") for g in ("full", "mha")], t0, deadline,
             rows)
    del vit
    torch.cuda.empty_cache()
    for key in ("L", "H"):
        if time.perf_counter() - t0 > deadline:
            rows.append({"model": key, "skipped": "deadline"})
            continue
        vit = model(MODELS[key][0])
        plan = [(g, "engine", "bf16") for g in ("full", "mha", "ln1")] + [("-", "eval", "bf16")]
        rows_for(key, vit, MODELS[key][1], plan, t0, deadline, rows)
        del vit
        torch.cuda.empty_cache()
    res = {"device": torch.cuda.get_device_name(0) if DEV.type == "cuda" else "cpu (smoke run)", "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
           "cpu": platform.processor() or platform.machine(), "seconds": time.perf_counter() - t0,
           "rows": rows, "estimator": est}
    if json_path is not None:
        json_path.write_text(json.dumps(res, indent=1))
    text = gpu_text(res)
    print(text)
    if write:
        write_section("finetune_gpu", text)
    return res


def _get(res: dict[str, Any], model: str, group: str, kind: str, precision: str) -> float | None:
    for r in res["rows"]:
        if (r.get("model"), r.get("group"), r.get("kind"), r.get("precision")) == (model, group, kind, precision):
            return r.get("img_s")
    return None


def gpu_text(res: dict[str, Any]) -> str:
    """The RESULTS.md section of :func:`gpu_part`'s figures."""
    lines = ["| model (batch) | group | step | precision | img/s | vs engine fp32 | compile s |",
             "|---|---|---|---|---:|---:|---:|"]
    for r in res["rows"]:
        if "img_s" not in r:
            lines.append(f"| {r['model']} | {r.get('group', '-')} | {r.get('kind', '-')} | "
                         f"{r.get('precision', '-')} | skipped ({r['skipped']}) | | |")
            continue
        base = _get(res, r["model"], r["group"], "engine", "fp32")
        ratio = f"{r['img_s'] / base:.2f}x" if base and r["kind"] != "eval" else ""
        comp = f"{r['compile_s']:.0f}" if "compile_s" in r else ""
        lines.append(f"| ViT-{r['model']} ({r['batch']}) | {r['group']} | {r['kind']} | {r['precision']} | "
                     f"{r['img_s']:.0f} | {ratio} | {comp} |")
    goals = []
    for g in ("full", "mha"):
        e32, e16, p16 = (_get(res, "B", g, "engine", "fp32"), _get(res, "B", g, "engine", "bf16"),
                         _get(res, "B", g, "plain", "bf16"))
        if e32 and e16 and p16:
            goals.append(f"`{g}`: engine bf16 / fp32 = {e16 / e32:.2f}x (goal >= 3), plain bf16 / engine bf16 = "
                         f"{p16 / e16:.2f}x (goal <= 1.2)")
    est = res["estimator"]
    return (
        "## Finetuning and estimator speed on a GPU (`benchmarks/finetune_speed.py --parts gpu`)\n\n"
        f"{res['device']}, torch {res['torch']}, {res['date']}; random weights, in-memory 224 px Gaussian batches, "
        f"SGD momentum 0.9, clipping at 1.0; mean of {STEPS} steps after {WARM} warm-up steps; `eval` is the "
        "inference pass at twice the batch; `plain` is a hand-written PyTorch step on the same model, batch and "
        f"frozen tensors; total {res['seconds']:.0f} s.\n\n" + "\n".join(lines) + "\n\n"
        + "; ".join(goals) + ".\n\n"
        f"Plasticity estimator (ViT-B/16, {est['pairs']} pairs, batch 64): {est['fp32_pairs_s']:.0f} pairs/s in "
        f"fp32, {est['bf16_pairs_s']:.0f} in bf16 ({est['bf16_pairs_s'] / est['fp32_pairs_s']:.2f}x); the largest "
        f"relative difference of a per-layer mean between the two is {est['max_rel_diff']:.1e}.\n"
    )
