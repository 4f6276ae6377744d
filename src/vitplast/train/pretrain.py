"""Pretraining the bundled micro-ViT on ``mini:source`` (``vitplast pretrain``), with the training engine.

Recipe (3,000 steps of batch 128: 1 minute on an H100, 2.4 hours at the 2.8 s per step measured on the
2 CPU cores of the build machine): ``timm:vit_micro_patch4_32`` from a random initialisation seeded by
``seed``, all parameters trained, AdamW (weight decay 0.05 on matrices),
linear warmup then cosine decay, gradient clipping at 1.0, label smoothing 0.1, augmentation = random crop
of the 32 px image padded by 4 px (reflect) + horizontal flip, best-validation checkpoint.

The export is the full ``state_dict`` (classifier for the source classes included) in float16
safetensors, with ``model_card.json`` / ``model_card.md``. The recorded source test accuracy is measured
on the exported float16 weights, loaded back the way ``load_model("micro")`` loads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from vitplast.data import make_transform
from vitplast.io import write_json_atomic, write_text_atomic
from vitplast.models import load_model
from vitplast.models.micro import ARCH, MICRO_DIR
from vitplast.progress import Progress
from vitplast.runtime import resolve_device
from vitplast.train import checkpoint as ck
from vitplast.train.config import PRETRAIN_DEFAULTS, PRETRAIN_SOURCE, RunOptions, pretrain_config
from vitplast.train.loop import prepare, run
from vitplast.train.scoring import score

SOURCE = PRETRAIN_SOURCE
CHECKPOINT_NAME = "micro_vit.safetensors"
CARD_FILES = (CHECKPOINT_NAME, "model_card.json", "model_card.md")
#: Default recipe (``vitplast pretrain`` options and the fixed parts), declared torch-free in train/config.py.
DEFAULTS: dict[str, Any] = PRETRAIN_DEFAULTS


def pretrain(
    out: str | Path,
    *,
    steps: int = DEFAULTS["steps"],
    batch_size: int = DEFAULTS["batch_size"],
    lr: float = DEFAULTS["lr"],
    seed: int = 0,
    data: str = SOURCE,
    device: str = "auto",
    workers: int | None = None,
    resume: bool = False,
    install: bool = False,
    progress: Progress | None = None,
    command: str | None = None,
    install_dir: Path = MICRO_DIR,
    precision: str = "auto",
    plots: bool = False,
) -> dict[str, Any]:
    """Pretrain the micro-ViT into run directory ``out``, export it there (``micro_vit.safetensors``,
    ``model_card.json``, ``model_card.md``) and, with ``install``, copy those into ``install_dir``
    (the package's ``models/micro/``). ``precision``: :mod:`vitplast.precision`. Returns the model card."""
    t0 = time.perf_counter()
    cfg = pretrain_config(f"timm:{ARCH}", steps, batch_size, lr, seed, data, precision=precision)
    prep = prepare(cfg)
    opts = RunOptions(device=device, workers=workers, plots=plots)
    result = run(prep, Path(out), opts, resume=resume, progress=progress)
    out = Path(out)
    ckpt = out / CHECKPOINT_NAME
    ck.save_tensors(ckpt, {k: v.half() if v.is_floating_point() else v for k, v in ck.full_state(prep.vit).items()},
                    {"arch": ARCH, "classes": json.dumps(prep.bundle.classes)})
    dev = resolve_device(device)
    shipped = load_model(f"timm:{ARCH}@{ckpt}").to(dev)
    test = score(shipped.logits, prep.bundle.test, make_transform(shipped.data_config), 256, dev)
    card = {
        "name": "micro",
        "arch": ARCH,
        "checkpoint": CHECKPOINT_NAME,
        "checkpoint_bytes": ckpt.stat().st_size,
        "checkpoint_sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
        "dtype": "float16",
        "params": sum(p.numel() for p in prep.vit.module.parameters()),
        "source": data,
        "classes": prep.bundle.classes,
        "num_classes": prep.bundle.num_classes,
        "splits": {s: len(prep.bundle.split(s)) for s in ("train", "val", "test")},  # type: ignore[arg-type]
        "source_test_acc": test.acc,
        "source_test_n": test.n,
        "source_test_acc_fp32": result["test_acc"],
        "best_val_acc": result["best_val_acc"],
        "best_step": result["best_step"],
        "recipe": cfg.to_dict(),
        "seed": seed,
        "command": command or _command(steps, batch_size, lr, seed, data, device),
        "wall_seconds": time.perf_counter() - t0,
        "train_seconds": result["train_seconds"],
        "images_per_s": result["images_per_s"],
        "device": result["device"],
        "versions": json.loads((out / "config.json").read_text()).get("versions", {}),
    }
    write_json_atomic(out / "model_card.json", card)
    write_text_atomic(out / "model_card.md", model_card_markdown(card))
    if install:
        install_files(out, install_dir)
    return card


def _command(steps: int, batch_size: int, lr: float, seed: int, data: str, device: str) -> str:
    """The command line that re-creates this model (``--out``/``--install`` aside)."""
    extra = "" if data == SOURCE else f" --data {data}"
    return (f"vitplast pretrain --steps {steps} --batch-size {batch_size} --lr {lr} --seed {seed} "
            f"--device {device}{extra}")


def install_files(out: Path, target: Path) -> None:
    """Copy the checkpoint and model card from ``out`` into ``target`` (each file replaced atomically)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in CARD_FILES:
        tmp = target / f".{name}.tmp"
        shutil.copyfile(out / name, tmp)
        os.replace(tmp, target / name)


def model_card_markdown(card: dict[str, Any]) -> str:
    """Human-readable model card from ``model_card.json``'s content."""
    r = card["recipe"]
    lines = [
        "# micro-ViT (vitplast)",
        "",
        f"`{card['arch']}`: timm VisionTransformer, 32 px input, patch 4, width 192, depth 6, 3 heads, "
        f"{card['params']:,} parameters, stored as {card['dtype']} ({card['checkpoint_bytes'] / 1e6:.1f} MB).",
        "Load it with `vitplast.models.load_model(\"micro\")` or `--model micro`.",
        "",
        "## Training",
        "",
        f"- data: `{card['source']}` ({card['num_classes']} classes; train/val/test "
        f"{card['splits']['train']}/{card['splits']['val']}/{card['splits']['test']} images)",
        f"- from random initialisation (seed {card['seed']}), all parameters trained for {r['steps']} steps "
        f"of batch {r['batch_size']}",
        f"- AdamW, lr {r['lr']}, weight decay {r['weight_decay']} (matrices only), {r['warmup_steps']} warmup "
        f"steps then cosine decay, gradient clipping at {r['clip']}, label smoothing {r['label_smoothing']}",
        "- augmentation: random 32 px crop of the image padded by 4 px (reflect) + horizontal flip",
        f"- checkpoint: best validation accuracy ({card['best_val_acc'] or 0:.4f} at step {card['best_step']})",
        f"- command: `{card['command']}`",
        f"- device: {card['device']}; wall time {card['wall_seconds'] / 60:.1f} min "
        f"({card['images_per_s']:.0f} images/s in training)",
        "",
        "## Result",
        "",
        f"Source test accuracy (float16 weights as shipped): **{100 * card['source_test_acc']:.2f} %** "
        f"on {card['source_test_n']} images (float32 before export: {100 * card['source_test_acc_fp32']:.2f} %).",
        "",
        f"SHA-256 of `{card['checkpoint']}`: `{card['checkpoint_sha256']}`",
        "",
        *_reproducing_markdown(card.get("reproductions", [])),
    ]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.2f} h"


def _reproducing_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The card's "Reproducing" section, with a table of recorded re-creations (``card["reproductions"]``:
    ``device, command, wall_seconds, seconds_per_step, best_val_acc, best_step, source_test_acc,
    source_test_acc_fp32, agreement`` each)."""
    lines = [
        "## Reproducing",
        "",
        "Run the command above (with `--device cpu` on a laptop). Initialisation, data order and augmentation "
        "depend only on the seed, so two runs on one device give bitwise-identical weights "
        "(`tests/test_train_cli.py`); on another device the floating-point results differ, so the weights differ "
        "too. `tests/test_micro_checkpoint.py` checks that the shipped file loads offline and scores its recorded "
        "accuracy.",
        "",
    ]
    if not rows:
        return [*lines, "No re-creation on another device has been recorded yet.", ""]
    lines += [
        "Recorded re-creations (same command and seed; *agreement* = share of the source test images on which "
        "the re-created model predicts the same class as the shipped one):",
        "",
        "| device | command | wall time | s / step | best val acc (step) | source test acc fp16 (fp32) | agreement |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['device']} | `{r['command']}` | {_duration(r['wall_seconds'])} | {r['seconds_per_step']:.3g} | "
            f"{100 * r['best_val_acc']:.2f} % ({r['best_step']}) | {100 * r['source_test_acc']:.2f} % "
            f"({100 * r['source_test_acc_fp32']:.2f} %) | {100 * r['agreement']:.1f} % |"
        )
    return [*lines, ""]
