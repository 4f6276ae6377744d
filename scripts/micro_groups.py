"""Finetune each group of the micro-ViT on a mini set from the CLI, next to the linear probe; print a table.

Usage: ``python scripts/micro_groups.py --out DIR [--data mini:digits] [--steps 240] [--optimizer adamw]
[--lr 0.001] [--batch-size 32] [--heads random,probe] [--device auto]``.
Runs ``vitplast probe`` once and ``vitplast finetune`` for every configuration with a random head (the paper's
protocol) and with a probe-initialised head (LP-FT), then writes ``DIR/groups.md`` and ``DIR/groups.csv``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

CONFIGS = ["full", "embed", "ln1", "mha", "ln2", "fc1", "fc2"]


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "vitplast.cli", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", default="mini:digits")
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--optimizer", default="adamw", choices=["sgd", "adamw"])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--heads", default="random,probe", help="head initialisations to run: random (paper), probe (LP-FT)")
    args = ap.parse_args()
    cli("probe", "--model", "micro", "--data", args.data, "--device", args.device, "--out", str(args.out / "probe"))
    probe = json.loads((args.out / "probe" / "result.json").read_text())["test_acc"]
    rows = []
    heads = args.heads.split(",")
    for head in heads:
        for cfg in CONFIGS:
            run = args.out / f"{cfg}-{head}"
            cli("finetune", "--model", "micro", "--data", args.data, "--train", cfg, "--steps", str(args.steps),
                "--batch-size", str(args.batch_size), "--optimizer", args.optimizer, "--lr", str(args.lr),
                "--eval-every", str(max(1, args.steps // 2)),
                "--augment", "none", "--head-init", head, "--seed", "0", "--device", args.device, "--out", str(run))
            r = json.loads((run / "result.json").read_text())
            rows.append({"group": cfg, "head_init": head, "test_acc": r["test_acc"], "best_val_acc": r["best_val_acc"],
                         "trainable_params": r.get("trainable_params"), "gain_vs_probe": (r["test_acc"] - probe) / probe})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "groups.csv", index=False)
    wide = df.pivot(index="group", columns="head_init", values="test_acc").reindex(CONFIGS)
    names = {"random": "random head (paper)", "probe": "probe-initialised head (LP-FT)"}
    lines = [f"Linear probe: **{100 * probe:.1f} %** test accuracy on `{args.data}`; finetuning {args.steps} steps "
             f"of batch {args.batch_size}, {args.optimizer} lr {args.lr}, no augmentation, seed 0.", "",
             "| trained group | " + " | ".join(names[h] for h in heads) + " |", "|---|" + "---:|" * len(heads)]
    for g, r in wide.iterrows():
        lines.append(f"| {g} | " + " | ".join(f"{100 * r[h]:.1f} %" for h in heads) + " |")
    (args.out / "groups.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
