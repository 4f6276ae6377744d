"""Record a re-creation of the bundled micro-ViT in its model card.

    python scripts/record_reproduction.py RUN_DIR

``RUN_DIR`` is the ``--out`` of a ``vitplast pretrain`` run made with the card's command and seed (on any
device). The script scores the re-created float16 checkpoint and the shipped one on the ``mini:source``
test split, measures how often they predict the same class, and adds a row to ``reproductions`` in the
package's ``model_card.json`` (a row for the same device and command is replaced), then rewrites
``model_card.md`` from the JSON. The shipped checkpoint is not touched.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from vitplast.data import DataContext, load_data, make_transform
from vitplast.data.transforms import Transformed
from vitplast.io import write_json_atomic, write_text_atomic
from vitplast.models import load_model
from vitplast.models.micro import ARCH, CHECKPOINT_NAME, MICRO_DIR
from vitplast.train.batches import loader
from vitplast.train.model_card import model_card_markdown


@torch.no_grad()
def predictions(spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true classes of model ``spec`` on the whole ``mini:source`` test split."""
    vit = load_model(spec)
    test = load_data("mini:source", DataContext(input_size=vit.data_config.input_size)).test
    preds, labels = [], []
    for x, y in loader(Transformed(test, make_transform(vit.data_config)), 256, 0):
        preds.append(vit.logits(x).argmax(1))
        labels.append(y)
    return torch.cat(preds), torch.cat(labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="the --out directory of the re-creating `vitplast pretrain`")
    args = parser.parse_args()
    card_path = MICRO_DIR / "model_card.json"
    if not (args.run_dir / "model_card.json").is_file():
        print(f"error: {args.run_dir} holds no model_card.json: give the --out of a finished `vitplast pretrain`",
              file=sys.stderr)
        return 2
    shipped, new = json.loads(card_path.read_text()), json.loads((args.run_dir / "model_card.json").read_text())
    recipe = {k: new["recipe"].get(k) for k in shipped["recipe"]}  # options added since keep their defaults
    if recipe != shipped["recipe"]:
        diff = sorted(k for k in recipe if recipe[k] != shipped["recipe"][k])
        print(f"error: the run's recipe differs from the shipped model's in {', '.join(diff)}", file=sys.stderr)
        return 2
    ours, truth = predictions("micro")
    theirs, _ = predictions(f"timm:{ARCH}@{args.run_dir / CHECKPOINT_NAME}")
    row = {
        "device": f"{new['device']}, torch {new['versions'].get('torch', '?')}",
        "command": new["command"],
        "wall_seconds": new["wall_seconds"],
        "seconds_per_step": new["train_seconds"] / new["recipe"]["steps"],
        "best_val_acc": new["best_val_acc"],
        "best_step": new["best_step"],
        "source_test_acc": new["source_test_acc"],
        "source_test_acc_fp32": new["source_test_acc_fp32"],
        "agreement": float((theirs == ours).float().mean()),
        "checkpoint_sha256": new["checkpoint_sha256"],
    }
    print(f"here: re-created model {100 * float((theirs == truth).float().mean()):.2f} %, shipped model "
          f"{100 * float((ours == truth).float().mean()):.2f} % on {len(truth)} test images")
    rows = [r for r in shipped.get("reproductions", []) if (r["device"], r["command"]) != (row["device"], row["command"])]
    shipped["reproductions"] = [*rows, row]
    write_json_atomic(card_path, shipped)
    write_text_atomic(MICRO_DIR / "model_card.md", model_card_markdown(shipped))
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
