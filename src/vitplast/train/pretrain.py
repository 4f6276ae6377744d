"""Pretraining the bundled micro-ViT on ``mini:source`` (``vitplast pretrain``), with the training engine.

Recipe (3,000 steps of batch 128: 1 minute on an H100, 2.4 hours at the 2.8 s per step measured on the
2 CPU cores of the build machine): ``timm:vit_micro_patch4_32`` from a random initialisation seeded by
``seed``, all parameters trained, AdamW (weight decay 0.05 on matrices),
linear warmup then cosine decay, gradient clipping at 1.0, label smoothing 0.1, augmentation = random crop
of the 32 px image padded by 4 px (reflect) + horizontal flip, best-validation checkpoint.

The export is the full ``state_dict`` (classifier for the source classes included) in float16
safetensors, with ``model_card.json`` / ``model_card.md``. The recorded source test accuracy is measured
on the exported float16 weights, loaded back the way ``load_model("micro")`` loads them. The card also records
the regime the checkpoint reached (:mod:`vitplast.train.model_card`). The second bundled model, ``micro-long``,
was made with ``--steps 4000 --batch-size 1024 --lr 0.003 --warmup-steps 200 --weight-decay 0.01 --name
micro-long`` on a GPU (its card lists every recipe tried).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from vitplast.configs import cli_name, default_of
from vitplast.data import make_transform
from vitplast.io import write_json_atomic, write_text_atomic
from vitplast.models import load_model
from vitplast.models.micro import ARCH, BUNDLED, CHECKPOINT_NAME
from vitplast.progress import Progress
from vitplast.reading import read_json
from vitplast.runtime import resolve_device
from vitplast.train import checkpoint as ck
from vitplast.train.config import PretrainConfig, RunOptions
from vitplast.train.loop import prepare, run
from vitplast.train.model_card import model_card_markdown, regime
from vitplast.train.scoring import score

CARD_FILES = (CHECKPOINT_NAME, "model_card.json", "model_card.md")


def pretrain(
    out: str | Path,
    *,
    device: str = "auto",
    workers: int | None = None,
    resume: bool = False,
    install: bool = False,
    progress: Progress | None = None,
    command: str | None = None,
    install_dir: Path | None = None,
    plots: bool = False,
    regime_pairs: int = 256,
    **settings: Any,
) -> dict[str, Any]:
    """Pretrain the micro-ViT into run directory ``out``, export it there (``micro_vit.safetensors``,
    ``model_card.json``, ``model_card.md``) and, with ``install``, copy those into ``install_dir`` (default: the
    package's folder of bundled model ``name``, ``micro`` or ``micro-long``). ``settings`` are
    :class:`~vitplast.train.config.PretrainConfig`'s (steps, batch size, lr, seed, data, precision, name, ...).
    The card records the regime the checkpoint reached (:func:`vitplast.train.model_card.regime`,
    ``regime_pairs`` pairs; 0 skips it). Returns the model card."""
    pc = PretrainConfig(**settings)
    t0 = time.perf_counter()
    cfg = pc.train_config(f"timm:{ARCH}")
    dev = resolve_device(device)  # an unavailable device: refused before the data are built
    prep = prepare(cfg)
    opts = RunOptions(device=device, workers=workers, plots=plots)
    result = run(prep, Path(out), opts, resume=resume, progress=progress)
    out = Path(out)
    ckpt = out / CHECKPOINT_NAME
    ck.save_tensors(ckpt, {k: v.half() if v.is_floating_point() else v for k, v in ck.full_state(prep.vit).items()},
                    {"arch": ARCH, "classes": json.dumps(prep.bundle.classes)})
    shipped = load_model(f"timm:{ARCH}@{ckpt}").to(dev)
    test = score(shipped.logits, prep.bundle.test, make_transform(shipped.data_config), 256, dev)
    card = {
        "name": pc.name,
        "arch": ARCH,
        "checkpoint": CHECKPOINT_NAME,
        "checkpoint_bytes": ckpt.stat().st_size,
        "checkpoint_sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
        "dtype": "float16",
        "params": sum(p.numel() for p in prep.vit.module.parameters()),
        "source": pc.data,
        "classes": prep.bundle.classes,
        "num_classes": prep.bundle.num_classes,
        "splits": {s: len(prep.bundle.split(s)) for s in ("train", "val", "test")},  # type: ignore[arg-type]
        "source_test_acc": test.acc,
        "source_test_n": test.n,
        "source_test_acc_fp32": result["test_acc"],
        "best_val_acc": result["best_val_acc"],
        "best_step": result["best_step"],
        "recipe": cfg.to_dict(),
        "seed": pc.seed,
        "command": command or _command(pc, device),
        "wall_seconds": time.perf_counter() - t0,
        "train_seconds": result["train_seconds"],
        "images_per_s": result["images_per_s"],
        "device": result["device"],
        "versions": read_json(out / "config.json").get("versions", {}),
    }
    if regime_pairs > 0:
        card["regime"] = regime(f"timm:{ARCH}@{ckpt}", device, regime_pairs)
    write_json_atomic(out / "model_card.json", card)
    write_text_atomic(out / "model_card.md", model_card_markdown(card))
    if install:
        install_files(out, install_dir or BUNDLED[pc.name])
    return card


def _command(s: PretrainConfig, device: str) -> str:
    """The command line that re-creates this model (``--out``/``--install`` aside)."""
    extra = "".join(f" {cli_name(k)} {_word(getattr(s, k))}" for k in ("data", "warmup_steps", "weight_decay", "name")
                    if getattr(s, k) != default_of(PretrainConfig, k))
    return (f"vitplast pretrain --steps {s.steps} --batch-size {s.batch_size} --lr {s.lr} --seed {s.seed} "
            f"--device {device}{extra}")


def _word(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def install_files(out: Path, target: Path) -> None:
    """Copy the checkpoint and model card from ``out`` into ``target`` (each file replaced atomically)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in CARD_FILES:
        tmp = target / f".{name}.tmp"
        shutil.copyfile(out / name, tmp)
        os.replace(tmp, target / name)
