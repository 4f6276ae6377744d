"""The units suite: do per-block unit sets finetune better than whole groups and the practitioners' baselines?
(``docs/units-evidence.md``; the units and the block-level selectors are defined in ``docs/selectors.md``).

Design, declared before any run. At one parameter budget (:data:`BUDGET`, 20 % of the backbone; on the
micro-ViT a block is 16.5 % of the backbone, so at 10 % no whole block fits and ``last-k`` would be empty) and
on :data:`TARGETS` (one target per family of ``docs/mini-targets.md``: ``textures-c contrast 5``, ``latin``,
``position``), the contenders of a target are:

* the group-level sets: each selector's recommendation at ``--granularity group`` under the budget;
* the block-level sets: each selector's recommendation at ``--granularity block`` (``last-k`` and ``first-k``
  included; ``random`` is random draw 0), and random draws 1 and 2 (the ``random`` selector with data seeds 1
  and 2): :data:`RANDOM_DRAWS` random unit sets in all.

Identical unit sets are one contender, listed with every selector (or draw) that chose it; a selector whose set
is empty (nothing fits) adds none. Every contender fits the budget exactly by the parameter counts. The sets
come from a *selection* stage run first: the selectors score the pretrained model on :data:`IMAGES` training
images of the target (seed 0; the plasticity selectors pair them with ``mini:source`` images), and the result
is cached per target in ``DIR/units/`` (deterministic; a resumed reproduction reads it back).

Each contender is a finetuning run of the mini protocol (:data:`vitplast.suites.mini.PROTOCOL`: LP-FT, AdamW,
150 steps of batch 32, the best-validation checkpoint's test accuracy) that trains its unit set (and the head).
Learning rates: one grid for every contender (:data:`LRS`, since unit sets mix components), run on the pilot
seed 0 and widened on an edge up to :data:`vitplast.suites.mini.MAX_LRS` lrs
(:func:`vitplast.suites.lr_pilot.pilot_state`). Seeds 1 and 2 then run at the chosen lr for every block-level
contender and for *the best group-level set*: the group-level contender with the highest validation accuracy of
seed 0 at its chosen lr (ties: the first in selector order), so that test accuracy chooses nothing.

Analysis (:func:`units_report`, ``DIR/units_evidence.csv`` and ``.md``): per target and contender, the mean test
accuracy over seeds at the chosen lr, the trainable parameters, the regret against the contender with the best
mean validation accuracy (its test accuracy minus the contender's; negative when the contender did better on
test), and against ``last-k``: the seed-level difference (:func:`vitplast.report.inference.difference_test`,
seeds then test images, two-sided) with its 95 % interval and p, Holm over the family of all these comparisons
(every target), and the verdict of ``docs/statistics.md`` ("Verdicts"; smallest effect of interest 1.5 points):
better than last-k, worse than last-k, no better than last-k (a test with >= 80 % power that did not reject),
or inconclusive.

Size: 3 targets x contenders x (3 pilot lrs + 2 seeds for the finalists), plus widenings. The dry run, before the
selection has run, projects every selector's set as distinct (an upper bound; identical sets are run once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vitplast.errors import VitplastError
from vitplast.suites import mini
from vitplast.suites.lr_pilot import PilotState, candidate_lrs, ladder_step, pilot_state
from vitplast.suites.mini import Runs, finite

if TYPE_CHECKING:
    import pandas as pd

    from vitplast.selectors.base import Scores
    from vitplast.sweep.spec import SweepSpec

#: Parameter budget: a fraction of the backbone (the selectable groups; the head is always trained).
BUDGET = 0.2
#: One target per family of the mini targets (``docs/mini-targets.md``).
TARGETS: tuple[str, ...] = ("mini:textures-c:contrast:5", "mini:latin", "mini:position")
#: The pilot's initial lr grid, the same for every contender (AdamW, half-decades).
LRS: tuple[float, ...] = (1e-4, 3e-4, 1e-3)
#: Random unit sets per target: the ``random`` selector with data seeds 0, 1, ...
RANDOM_DRAWS = 3
#: The baseline every contender is compared with.
REFERENCE = "block:last-k"
#: Target images the selectors see, and the source of the plasticity selectors' pairs.
IMAGES = 32
SOURCE = "mini:source"
#: Sub-folder of the sweep folder with the design and the cached selection.
FOLDER = "units"
TABLE = "units_evidence"
GROUP, BLOCK, DRAW = "group:", "block:", "random draw "


@dataclass(frozen=True)
class Design:
    """What the suite runs (module docstring); written to ``DIR/units/design.json`` by the first real run."""

    model: str
    targets: tuple[str, ...] = TARGETS
    budget: float = BUDGET
    steps: int = mini.STEPS
    seeds: tuple[int, ...] = mini.SEEDS
    lrs: tuple[float, ...] = LRS
    random_weights: bool = False

    def __post_init__(self) -> None:
        unknown = [t for t in self.targets if t not in mini.GRADED_TARGETS]
        if not self.targets or unknown:
            raise VitplastError(f"--targets must be mini targets of docs/mini-targets.md "
                                f"({', '.join(mini.GRADED_TARGETS)}), got {', '.join(unknown) or 'none'}")
        if not 0 < self.budget <= 1:
            raise VitplastError(f"--budget must be a fraction in (0, 1] of the backbone, got {self.budget}")
        if len(set(self.seeds)) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise VitplastError(f"--seeds must list at least two distinct seeds, got {list(self.seeds)}")
        for lr in self.lrs:
            try:
                ladder_step(lr, up=True)
            except ValueError:
                raise VitplastError(f"--lrs must lie on the half-decade ladder 1, 3 x 10^k, got {lr:g}") from None


@dataclass(frozen=True)
class Contender:
    """A unit set (canonical items) with every selector or random draw that chose it and its parameters."""

    train: tuple[str, ...]
    sources: tuple[str, ...]
    params: int

    @property
    def id(self) -> str:
        """Stable name of the set: its canonical items joined by ``+`` (a sweep group)."""
        return "+".join(self.train)

    @property
    def group_level(self) -> bool:
        return any(s.startswith(GROUP) for s in self.sources)

    @property
    def block_level(self) -> bool:
        """Chosen at block granularity or drawn at random: runs every seed."""
        return any(not s.startswith(GROUP) for s in self.sources)


def selection_from(score: Callable[[str, int], Scores], names: Sequence[str], sizes: Mapping[str, int],
                   unit_sizes: Mapping[str, list[int]], budget: float) -> dict[str, Any]:
    """The sets of every selector ``names`` at both granularities under ``budget`` (a fraction of the backbone),
    and the extra random draws; ``score(name, seed)`` scores the model with selector ``name`` (data seed
    ``seed``). The greedy fill is :func:`vitplast.selectors.recommend.budget_set` /
    :func:`~vitplast.selectors.recommend.budget_units`; a selector that cannot rank at a granularity is
    recorded in ``skipped``."""
    from vitplast.selectors.config import GRANULARITIES
    from vitplast.selectors.recommend import budget_set, budget_units, unusable

    cap = math.floor(budget * sum(sizes.values()))
    out: dict[str, Any] = {"budget_params": cap, "backbone_params": sum(sizes.values()), "group_params": dict(sizes),
                           "unit_params": {c: list(v) for c, v in unit_sizes.items()}, "group": {}, "block": {},
                           "random": [], "skipped": {}}
    for name in names:
        s = score(name, 0)
        for gran in GRANULARITIES:
            why = unusable(s, gran)
            if why is not None:
                out["skipped"][f"{gran}:{name}"] = why
                continue
            chosen = budget_units(s, dict(unit_sizes), cap) if gran == "block" else budget_set(s, dict(sizes), cap)
            out[gran][name] = list(chosen)
    out["random"] = [list(budget_units(score("random", d), dict(unit_sizes), cap)) for d in range(1, RANDOM_DRAWS)]
    return out


def contenders(selection: Mapping[str, Any]) -> list[Contender]:
    """The distinct non-empty sets of a selection (:func:`selection_from`): group-level sets in selector order,
    then block-level sets, then the extra random draws; each with every source that chose it."""
    from vitplast.selectors.result import set_params

    found: dict[tuple[str, ...], list[str]] = {}
    named = [(items, GROUP + n) for n, items in selection["group"].items()]
    named += [(items, f"{DRAW}0" if n == "random" else BLOCK + n) for n, items in selection["block"].items()]
    named += [(items, f"{DRAW}{i}") for i, items in enumerate(selection["random"], 1)]
    for items, source in named:
        if items:
            found.setdefault(tuple(items), []).append(source)
    return [Contender(t, tuple(s), set_params(t, selection["group_params"], selection["unit_params"]))
            for t, s in found.items()]


def select_target(design: Design, target: str) -> dict[str, Any]:
    """The selection of ``target``: the model's selector scores and sets (:func:`selection_from`)."""
    from vitplast.models import load_model
    from vitplast.selectors.base import block_params, group_params, numel
    from vitplast.selectors.data import load_selector_data
    from vitplast.selectors.registry import get_selector, selector_index

    vit = load_model(design.model, random_weights=design.random_weights, seed=0)
    data = load_selector_data(vit, target, IMAGES, 0, source=SOURCE)
    sizes = {g: numel(ps) for g, ps in group_params(vit).items()}
    units = {c: [numel(ps) for ps in per] for c, per in block_params(vit).items()}
    return selection_from(lambda name, seed: get_selector(name)(vit, replace(data, seed=seed)), list(selector_index()),
                          sizes, units, design.budget)


def _slug(target: str) -> str:
    return target.removeprefix("mini:").replace(":", "-")


def selection_path(root: Path, target: str) -> Path:
    return Path(root) / FOLDER / f"select-{_slug(target)}.json"


def prepare(design: Design, root: Path) -> None:
    """Write the design and run the selection of every target not yet cached (the suite's first stage). A
    folder that holds something else than a sweep or this suite's cache, or another design, is refused (its cached sets
    would not be this design's). The folder is then marked as a sweep (its first stage's ``sweep.yaml``) so that
    the sweep continues in it."""
    from vitplast.io import write_json_atomic, write_text_atomic
    from vitplast.reading import read_json
    from vitplast.sweep.plan import PLAN_FILE, SPEC_FILE
    from vitplast.sweep.runner import check_sweep_dir

    if Path(root).is_dir() and any(p.name != FOLDER for p in Path(root).iterdir()):
        check_sweep_dir(Path(root))  # an interrupted selection leaves only FOLDER
    path = Path(root) / FOLDER / "design.json"
    mine = asdict(design)
    if path.is_file():
        theirs = read_json(path)
        if {k: list(v) if isinstance(v, tuple) else v for k, v in mine.items()} != theirs:
            raise VitplastError(f"{path} holds another design ({theirs}): use another --out")
    else:
        write_json_atomic(path, mine)
    for t in design.targets:
        if not selection_path(root, t).is_file():
            write_json_atomic(selection_path(root, t), select_target(design, t))
    if not (Path(root) / PLAN_FILE).is_file() and not (Path(root) / SPEC_FILE).is_file():
        write_text_atomic(Path(root) / SPEC_FILE, units_suite(design, root).to_yaml())


def load_design(root: Path) -> Design:
    from vitplast.reading import read_json

    path = Path(root) / FOLDER / "design.json"
    if not path.is_file():
        raise VitplastError(f"{root} holds no units design ({path}): run vitplast reproduce --suite units first")
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in read_json(path).items()}
    return Design(**fields)


def _contenders_of(design: Design, root: Path | None, project: bool) -> dict[str, list[Contender]]:
    """Per target: the contenders of its cached selection; without one, when ``project``, every selector's set
    as a distinct placeholder (an upper bound of the size), else none."""
    from vitplast.reading import read_json
    from vitplast.selectors.registry import selector_index

    out: dict[str, list[Contender]] = {}
    for t in design.targets:
        if root is not None and selection_path(root, t).is_file():
            out[t] = contenders(read_json(selection_path(root, t)))
        elif project:
            index = selector_index()
            sources = [GROUP + n for n, i in index.items() if not i.block_only]
            sources += [BLOCK + n for n in index if n != "random"] + [f"{DRAW}{d}" for d in range(RANDOM_DRAWS)]
            out[t] = [Contender((f"fc2@{i}",), (s,), 0) for i, s in enumerate(sources)]
        else:
            out[t] = []
    return out


def _spec(design: Design, grids: list[dict[str, Any]]) -> SweepSpec:
    from vitplast.sweep.spec import parse_sweep  # imports torch

    base, *rest = grids
    return parse_sweep({**base, "models": [{"spec": design.model, "label": design.model}],
                        "optimizers": [mini.OPTIMIZER],
                        "train": mini.train_settings(design.steps, random_weights=design.random_weights),
                        "probe": False, "plasticity": False, "run": {"device": "auto", "eval_batch_size": 256},
                        "ablations": rest})


def _grid(name: str, target: str, c: Contender, seeds: Sequence[int], lrs: Sequence[float]) -> dict[str, Any]:
    return {"name": name, "groups": [c.id], "seeds": list(seeds), "lrs": [],
            "datasets": [{"spec": target, "label": mini.label(target), "lrs": list(lrs)}]}


def read_runs(design: Design, by_target: Mapping[str, list[Contender]], root: Path) -> Runs:
    """Every finished run of the contenders in ``root``, at any lr the pilot could ever ask for and any seed,
    keyed by (target, contender id)."""
    ladder = candidate_lrs(design.lrs, mini.MAX_LRS)
    grids = [_grid("all", t, c, design.seeds, ladder) for t, cs in by_target.items() for c in cs]
    return mini.finished_runs(_spec(design, grids), root) if grids else {}


def _stages(design: Design, target: str, cs: list[Contender], runs: Runs,
            project: bool) -> tuple[dict[str, PilotState], dict[str, float | None], str | None]:
    """Per contender: its pilot state and chosen lr (projected: the middle lr); and the best group-level set
    (``None`` until every group-level pilot has chosen; projected: the first)."""
    seed = design.seeds[0]
    val = {c.id: {lr: finite(r, "best_val_acc") for (lr, s), (r, _) in runs.get((target, c.id), {}).items()
                  if s == seed} for c in cs}
    states = {c.id: pilot_state(design.lrs, val[c.id], mini.MAX_LRS) for c in cs}
    chosen = {i: st.planned(project) for i, st in states.items()}
    group = [c.id for c in cs if c.group_level]
    best = None
    if group and all(chosen[i] is not None for i in group):
        score = {i: v if (v := val[i].get(chosen[i] or math.nan)) is not None else -math.inf for i in group}
        best = max(group, key=score.__getitem__)
    return states, chosen, best


def units_suite(design: Design, root: Path | None = None, project: bool = False) -> SweepSpec:
    """The suite's next stage as a sweep (module docstring), planned from the selection cached in ``root`` and
    the finished runs there; ``project=True``: the whole design, undecided pilots at their middle lr and, before
    the selection, every selector's set distinct."""
    by_target = _contenders_of(design, root, project)
    runs = read_runs(design, by_target, root) if root is not None and Path(root).is_dir() else {}
    pilots, seeds = [], []
    for t, cs in by_target.items():
        states, chosen, best = _stages(design, t, cs, runs, project)
        for c in cs:
            pilots.append(_grid(f"pilot-{_slug(t)}", t, c, design.seeds[:1], states[c.id].lrs))
            lr = chosen[c.id]
            if lr is not None and (c.block_level or c.id == best):
                seeds.append(_grid(f"seeds-{_slug(t)}", t, c, design.seeds[1:], [lr]))
    if not pilots:
        raise VitplastError("the units suite has no contender: the selection found no set within the budget "
                            "(raise --budget)")
    return _spec(design, [*pilots, *seeds])


# --- analysis --------------------------------------------------------------------------------------------------

VERDICTS = {"supported": "better than last-k", "not supported": "no better than last-k",
            "inconclusive": "inconclusive", "excluded": "excluded before testing"}


def units_report(root: Path) -> pd.DataFrame:
    """One row per target and contender (module docstring, "Analysis"), from the sweep folder ``root``. A row
    whose runs have not all finished says so in ``verdict`` and is not tested."""
    import pandas as pd

    from vitplast.report import claims as C

    design = load_design(root)
    by_target = _contenders_of(design, root, project=False)
    runs = read_runs(design, by_target, root)
    rows: list[dict[str, Any]] = []
    tests: list[tuple[dict[str, Any], C.Claim]] = []
    for t, cs in by_target.items():
        here, ev = _target_rows(design, t, cs, runs)
        ref = next((c for c in cs if REFERENCE in c.sources), None)
        ref_done = ref is not None and not here[cs.index(ref)]["verdict"]
        for c, row in zip(cs, here, strict=True):
            if row["verdict"]:
                continue
            if ref is None:
                row["verdict"] = "no last-k set at this budget"
            elif c is ref:
                row["verdict"] = "reference"
            elif not ref_done:
                row["verdict"] = "not finished (last-k)"
            else:
                tests.append((row, C.difference_claim(ev, f"{row['contender']} vs last-k on {t}", [c.id], [ref.id])))
        rows += here
    C.decide([claim for _, claim in tests])
    for row, k in tests:
        worse = k.status == C.NOT_SUPPORTED and k.effect < 0 and k.p_holm < C.ALPHA
        row |= {"diff_vs_last_k": k.effect, "ci_low": k.ci_low, "ci_high": k.ci_high, "p": k.p, "p_holm": k.p_holm,
                "power": k.power, "evidence": k.evidence,
                "verdict": "worse than last-k" if worse else VERDICTS.get(k.status, k.status)}
    cols = ["target", "contender", "units", "params", "finalist", "lr", "lr_on_edge", "seeds", "val_acc", "test_acc",
            "test_sd", "regret", "diff_vs_last_k", "ci_low", "ci_high", "p", "p_holm", "power", "verdict", "evidence"]
    return pd.DataFrame(rows).reindex(columns=cols)


def _target_rows(design: Design, target: str, cs: list[Contender], runs: Runs) -> tuple[list[dict[str, Any]], Any]:
    """The rows of one target before the tests (``verdict`` set only where a row cannot be tested) and its
    :class:`~vitplast.report.evidence.Evidence` keyed by contender id."""
    from vitplast.report.evidence import Evidence

    states, chosen, best_group = _stages(design, target, cs, runs, project=False)
    ev = Evidence(design.model, mini.OPTIMIZER, {target: {}}, {target: {}})
    rows: list[dict[str, Any]] = []
    for c in cs:
        lr = chosen[c.id]
        done = sorted((s, r, d) for (x, s), (r, d) in runs.get((target, c.id), {}).items() if x == lr)
        finalist = c.block_level or c.id == best_group
        complete = lr is not None and len(done) == (len(design.seeds) if finalist else 1)
        acc, sd = _stats([finite(r, "test_acc") for _, r, _ in done])
        val = _stats([finite(r, "best_val_acc") for _, r, _ in done])[0]
        ev.acc[target][c.id] = acc if complete else math.nan
        hits = _hits([d for _, _, d in done])
        if hits is not None:
            ev.hits[target][c.id] = hits
        verdict = ("" if complete and finalist else "group-level set not chosen on validation" if complete else
                   "not finished" + (" (lr pilot undecided)" if lr is None else ""))
        rows.append({"target": target, "contender": ", ".join(c.sources), "units": c.id, "params": c.params,
                     "finalist": finalist, "lr": lr, "lr_on_edge": states[c.id].on_edge, "seeds": len(done),
                     "val_acc": val if complete and finalist else math.nan, "test_acc": acc, "test_sd": sd,
                     "verdict": verdict})
    vals: dict[str, float] = {r["units"]: r["val_acc"] for r in rows if not math.isnan(r["val_acc"])}
    top = max(vals, key=vals.__getitem__, default=None)  # the best on validation (ties: the first)
    for r in rows:
        r["regret"] = ev.acc[target][top] - r["test_acc"] if top is not None else math.nan
    return rows, ev


def _stats(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample SD (NaN with one value); both NaN when empty or when a run diverged (``None``)."""
    xs = [v for v in values if v is not None]
    if not xs or len(xs) < len(values):
        return math.nan, math.nan
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else math.nan


def _hits(dirs: Sequence[Path]) -> np.ndarray | None:
    """The per-image correctness ``[seeds, images]`` of these runs; ``None`` unless every run has one record of
    the same length."""
    from vitplast.train.scoring import HITS_FILE, load_hits

    rows = [load_hits(d / HITS_FILE) for d in dirs]
    if not rows or any(r is None for r in rows) or len({len(r) for r in rows if r is not None}) != 1:
        return None
    return np.stack([r for r in rows if r is not None])


def write_units_report(root: Path) -> list[Path]:
    """:func:`units_report` as ``DIR/units_evidence.csv`` and a Markdown table ``DIR/units_evidence.md``."""
    from vitplast.io import write_text_atomic
    from vitplast.report.tables import to_markdown

    table = units_report(root)
    paths = [Path(root) / f"{TABLE}.csv", Path(root) / f"{TABLE}.md"]
    write_text_atomic(paths[0], table.to_csv(index=False))
    shown = table.drop(columns=["evidence", "finalist"]).assign(
        **{c: 100 * table[c] for c in ("val_acc", "test_acc", "test_sd", "regret", "diff_vs_last_k", "ci_low",
                                      "ci_high")})
    write_text_atomic(paths[1], f"# Units evidence (accuracies in points; {units_rule()})\n\n" + to_markdown(shown))
    return paths


def units_rule() -> str:
    from vitplast.report.claims import RULE

    return f"each contender against last-k, Holm over every target; {RULE}"
