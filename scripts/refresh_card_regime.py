"""Re-measure the regime section of a bundled model's card (``docs/diagnostics.md``, "Regime targets and indicators").

Usage: ``python scripts/refresh_card_regime.py NAME [--no-probe] [--device cpu]``. Runs
:func:`vitplast.train.model_card.regime` on the shipped weights with the ViT-B-matched embedding scale
(``0.70 / token RMS``, the token RMS the card records; the new pass measures it again and must agree) and, unless ``--no-probe``,
:func:`~vitplast.train.model_card.probe_gap`; writes them into ``model_card.json`` (the chosen row of a recipe
search gets the same regime, the other rows keep their numbers and their verdicts on the current targets) and
re-renders ``model_card.md``. The weights and the other fields are untouched.
"""

from __future__ import annotations

import argparse
import json

from vitplast.diagnostics import PAPER_REFERENCE
from vitplast.io import write_json_atomic
from vitplast.models.micro import BUNDLED
from vitplast.train.model_card import REGIME_TARGETS, model_card_markdown, probe_gap, regime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(BUNDLED))
    parser.add_argument("--no-probe", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    folder = BUNDLED[args.name]
    path = folder / "model_card.json"
    card = json.loads(path.read_text())
    recorded = card["regime"]["token_rms"]["source"]
    scale = round(PAPER_REFERENCE["rms_per_element"] / recorded, 3)
    new = regime(args.name, args.device, vitb_scale=scale)
    if abs(new["token_rms"]["source"] - recorded) > 1e-4 * recorded:
        raise SystemExit(f"token RMS {new['token_rms']['source']} differs from the card's {recorded}: not written")
    for row in card.get("recipe_search", []):  # the other recipes' verdicts under the current targets
        row["regime"] = new if row.get("chosen") else {
            **row["regime"], "targets": REGIME_TARGETS, "met": {k: row["regime"]["met"][k] for k in REGIME_TARGETS}}
    card["regime"] = new
    if not args.no_probe:
        card["probe_gap"] = probe_gap(args.name, device=args.device)
    write_json_atomic(path, card)
    (folder / "model_card.md").write_text(model_card_markdown(card))
    print(f"wrote {path} and model_card.md: ranking at c = {scale}: {new['ranking_vitb_scale']}")


if __name__ == "__main__":
    main()
