"""``recommend``: rank the trainable groups with each selector, pick a set under a parameter budget, and
optionally settle it with short pilot finetunes (successive halving). Definitions: docs/selectors.md.

The budget counts backbone parameters (the selectable groups ``embed ln1 mha ln2 fc1 fc2``); the head (new
classifier and final norm) is always trained and not counted. A budget <= 1 is a fraction of the backbone,
a budget > 1 a number of parameters. Each selector's set is built greedily: groups in its ranking order, each
added if it still fits (a group it cannot score is never added).

At ``granularity="block"`` the same greedy rule walks the ``(component, block)`` units in the order of each
selector's per-block scores (:meth:`Scores.unit_ranking`; whole blocks at a time for ``last-k`` / ``first-k``),
and the set is written as unit sets (``mha@8-11``, :mod:`vitplast.units`). A selector that cannot score at the
granularity (no per-block scores; no group scores) is skipped, and the result says why.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from vitplast.data import DataBundle, DataContext, load_data
from vitplast.errors import VitplastError, warn
from vitplast.models import ViT, as_vit, load_model
from vitplast.progress import Progress, phase
from vitplast.selectors.base import Scores, SelectorData, block_params, group_params, numel
from vitplast.selectors.config import RecommendConfig
from vitplast.selectors.data import load_selector_data
from vitplast.selectors.registry import get_selector, selector_index
from vitplast.selectors.result import RecommendResult
from vitplast.train.groups import SELECTABLE
from vitplast.units import format_units, resolve

#: The pilot's finetuning recipe: the mini suite's (AdamW lr 1e-3, batch 32, no augmentation, new random head).
PILOT_RECIPE: dict[str, Any] = {"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "augment": "none"}


def budget_set(s: Scores, sizes: dict[str, int], budget: int) -> tuple[str, ...]:
    """Greedy: walk ``s.ranking()``, add each scored group whose parameters still fit in ``budget``; the set is
    returned in canonical group order."""
    chosen: list[str] = []
    used = 0
    for g in s.ranking():
        if not math.isnan(s.groups[g]) and used + sizes[g] <= budget:
            chosen.append(g)
            used += sizes[g]
    return tuple(g for g in SELECTABLE if g in chosen)


def budget_units(s: Scores, unit_sizes: dict[str, list[int]], budget: int) -> tuple[str, ...]:
    """Greedy over units: walk ``s.unit_ranking()`` (grouped into whole blocks, in order of their best unit, when
    ``s.whole_blocks``), add each scored unit (block) whose parameters still fit in ``budget``. Returns the set as
    canonical unit sets (a component chosen in every block is its group)."""
    atoms: dict[Any, list[tuple[str, int]]] = {}
    for c, b in s.unit_ranking():
        if not math.isnan(s.blocks[c][b]):
            atoms.setdefault(b if s.whole_blocks else (c, b), []).append((c, b))
    chosen: dict[str, list[int]] = {}
    used = 0
    for units in atoms.values():
        size = sum(unit_sizes[c][b] for c, b in units)
        if used + size <= budget:
            used += size
            for c, b in units:
                chosen.setdefault(c, []).append(b)
    if not chosen:
        return ()
    depth = len(next(iter(unit_sizes.values())))
    return resolve(format_units({c: tuple(sorted(bs)) for c, bs in chosen.items()}), depth)


def unusable(s: Scores, granularity: str) -> str | None:
    """Why selector scores ``s`` cannot rank at ``granularity`` (None: they can)."""
    if granularity == "block" and not any(not math.isnan(v) for per in s.blocks.values() for v in per):
        return "has no per-block scores"
    if granularity == "group" and all(math.isnan(v) for v in s.groups.values()):
        return "scores whole blocks only (use --granularity block)"
    return None


def candidates(sets: dict[str, tuple[str, ...]], k: int) -> list[tuple[str, ...]]:
    """Distinct non-empty sets, most often recommended first (ties: first seen), at most ``k``."""
    seen: dict[tuple[str, ...], int] = {}
    for s in sets.values():
        if s:
            seen[s] = seen.get(s, 0) + 1
    return sorted(seen, key=lambda s: -seen[s])[:k]


def halving_schedule(n: int, steps: int) -> list[tuple[int, int]]:
    """``[(candidates, steps)]`` per round: keep the better half (rounded up), double the steps, until one is left."""
    rounds = [(n, steps)]
    while rounds[-1][0] > 1:
        rounds.append((math.ceil(rounds[-1][0] / 2), rounds[-1][1] * 2))
    return rounds


def run_pilot(
    vit: ViT, bundle: DataBundle, cands: list[tuple[str, ...]], steps: int, seed: int, device: str,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """Successive halving over ``cands``: every round finetunes each remaining set from the pretrained weights
    for the round's steps (:data:`PILOT_RECIPE`), ranks by best validation accuracy and keeps the better half."""
    from vitplast.train import finetune

    schedule = halving_schedule(len(cands), steps)
    advance = phase(progress, "pilot finetuning", sum(n * s for n, s in schedule))
    rows: list[dict[str, Any]] = []
    alive = list(cands)
    recipe = dict(PILOT_RECIPE, batch_size=min(PILOT_RECIPE["batch_size"], len(bundle.train)))  # type: ignore[arg-type]
    for r, (_, n_steps) in enumerate(schedule):
        accs = []
        for groups in alive:
            model = as_vit(copy.deepcopy(vit.module), vit.name)
            res = finetune(model, bundle, train=list(groups), steps=n_steps, eval_every=n_steps, seed=seed,
                           device=device, callback=lambda step, m: advance(1), **recipe)
            acc = float(res.result.get("best_val_acc") or 0.0)
            accs.append(acc)
            rows.append({"round": r, "steps": n_steps, "groups": ",".join(groups), "val_acc": acc,
                         "test_acc": res.test_acc})
        order = sorted(range(len(alive)), key=lambda i: -accs[i])
        keep = order[: math.ceil(len(alive) / 2)] if len(alive) > 1 else order
        for i, row in enumerate(rows[-len(alive):]):
            row["kept"] = i in keep
        alive = [alive[i] for i in keep]
    return rows, alive[0]


def recommend(cfg: RecommendConfig, progress: Progress | None = None) -> RecommendResult:
    """Load the model and data of ``cfg``, run its selectors, budget their sets and (``cfg.pilot``) run the pilot.
    Nothing is written: :meth:`RecommendResult.save` writes the files and draws the figure."""
    vit = load_model(cfg.model, random_weights=cfg.random_weights, seed=cfg.seed)
    from vitplast.runtime import resolve_device

    vit.to(resolve_device(cfg.device))
    needs_source = any(selector_index()[n].needs_source for n in cfg.selectors)
    advance = phase(progress, "loading images", 1)
    data = load_selector_data(vit, cfg.data, cfg.images, cfg.seed, source=cfg.source if needs_source else None)
    advance(1)
    result = recommend_for(vit, data, cfg, progress)
    result.images_used = len(data.images)
    if result.images_used < cfg.images:
        message = f"--images {cfg.images} is more than the data hold: using {result.images_used}"
        warn(message)
        result.warnings.append(message)
    return result


def recommend_for(vit: ViT, data: SelectorData, cfg: RecommendConfig, progress: Progress | None = None) -> RecommendResult:
    """:func:`recommend` on an already loaded model and data (the pilot loads ``cfg.data`` itself)."""
    sizes = {g: numel(ps) for g, ps in group_params(vit).items()}
    units = {c: [numel(ps) for ps in per] for c, per in block_params(vit).items()}
    budget = cfg.budget_params(sum(sizes.values()))
    advance = phase(progress, "scoring", len(cfg.selectors))
    scores: dict[str, Scores] = {}
    skipped: dict[str, str] = {}
    for name in cfg.selectors:
        s = get_selector(name)(vit, data)
        why = unusable(s, cfg.granularity)
        if why is None:
            scores[name] = s
        else:
            skipped[name] = why
        advance(1)
    if not scores:
        raise VitplastError(f"no selector scores at --granularity {cfg.granularity}: "
                            + "; ".join(f"{n} {w}" for n, w in skipped.items()))
    blockwise = cfg.granularity == "block"
    sets = {n: budget_units(s, units, budget) if blockwise else budget_set(s, sizes, budget) for n, s in scores.items()}
    result = RecommendResult(cfg, scores, sizes, budget, sets, unit_sizes=units, skipped=skipped)
    if cfg.pilot is not None:
        cands = candidates(sets, cfg.candidates)
        if not cands:
            smallest = min(v for per in units.values() for v in per) if blockwise else min(sizes.values())
            raise VitplastError(f"no {'unit' if blockwise else 'group'} fits in the budget of {budget} parameters: "
                                f"raise --budget (smallest: {smallest} parameters)")
        bundle = load_data(cfg.data, DataContext(input_size=vit.data_config.input_size, seed=cfg.seed))
        result.pilot, result.winner = run_pilot(vit, bundle, cands, cfg.pilot, cfg.seed, cfg.device, progress)
    return result
