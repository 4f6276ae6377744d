"""The offline mini suite: the paper's protocol at small scale on the micro-ViT (``docs/mini-protocol.md``).

Targets: the nine graded sets of ``docs/mini-targets.md`` (:data:`TARGETS`): linear-probe accuracy of
``micro-long`` between 30 % and 92 %, >= 1,152 test images each, train and test apart by source (typeface,
object shape, photo region, rendered scene). They form five families (textures: 3, novel-c: 2, glyphs: 2,
count, position); ``mini:textures-c:motion_blur:5`` and ``mini:cyrillic`` are left out (nine targets give the
mean rho the power the design asks for; each extra target costs 1/9 more time).

Configurations: the five components ``ln1 mha ln2 fc1 fc2`` finetuned alone and the LayerNorms'
parameter-matched control ``ln-control`` (``docs/statistics.md``), plus the linear probe; plasticity and bounds
of every target against ``mini:source``.

Protocol (:data:`PROTOCOL` on top of the mini recipe of :data:`vitplast.train.config.RECIPES`): LP-FT, the
new classifier starts from the fitted linear probe (``head_init="probe"``), so that every group starts from the
probe's accuracy and finetuning measures what training the group adds to it; AdamW, 150 steps of batch 32,
warm-up then cosine decay, clipping at 1.0, no augmentation, validation every 50 steps and the test accuracy of
the best-validation checkpoint. Learning rates are chosen by a staged pilot (:mod:`vitplast.suites.lr_pilot`):
seed 0 runs the grid of :data:`GROUP_LRS` (half-decades; the LayerNorm groups and their control a decade
higher), widened by a half-decade while the best lr is on an edge, up to :data:`MAX_LRS` lrs; seeds 1 and 2 then
run at the lr seed 0 chose on validation. Each run records the correctness of every test image.

Size: 9 targets x 6 groups x (3 pilot lrs + 2 seeds) = 270 runs, plus the widenings, 9 probes, 9 analyses and
9 LP-FT starts (the start every run of a target finetunes from, scored before any step: the sweep kind ``start``).
``vitplast reproduce --suite mini --dry-run`` prints the estimate (assuming no widening) and the power of the
design. A suite is resumable: its runs' ids depend on their settings only, so an interrupted reproduction
(or one spread over several sittings) continues where it stopped, and each stage's choice is replayed from
the finished pilot runs.

``quick=True`` shrinks everything (2 targets, 1 lr per group, 2 seeds, 3 steps, 32 pairs, no pilot) to check
the chain end to end in minutes; its numbers mean nothing. ``lrs=...`` replaces the pilot by one grid run on
every seed. ``targets=...`` runs the design on some of the targets (:func:`target_specs`): each run keeps the id
it has in the full suite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitplast.errors import VitplastError
from vitplast.suites.estimate import Sizes
from vitplast.suites.lr_pilot import candidate_lrs, pilot_state
from vitplast.train.config import RECIPES

if TYPE_CHECKING:
    from vitplast.report.design import Detectable
    from vitplast.sweep.spec import SweepSpec

MINI_RECIPE = RECIPES["mini:"]

#: The graded targets (module docstring, ``docs/mini-targets.md``).
TARGETS: tuple[str, ...] = (
    "mini:textures",
    "mini:textures-c:gaussian_noise:5",
    "mini:textures-c:contrast:5",
    "mini:novel-c:motion_blur:5",
    "mini:novel-c:contrast:5",
    "mini:latin",
    "mini:greek",
    "mini:count",
    "mini:position",
)
QUICK_TARGETS: tuple[str, ...] = ("mini:digits", "mini:source-c:gaussian_noise:5")
#: Every target in the 30-92 % band of ``docs/mini-targets.md`` (the suite uses :data:`TARGETS`).
GRADED_TARGETS: tuple[str, ...] = (*TARGETS[:3], "mini:textures-c:motion_blur:5", *TARGETS[3:])
#: The targets ``targets=`` may name (:func:`target_specs`), in the order the suite runs them.
TARGET_CHOICES: tuple[str, ...] = (*GRADED_TARGETS, *QUICK_TARGETS)
#: ``quick=True``: steps per run and seeds.
QUICK_STEPS = 3
QUICK_SEEDS = (0, 1)
#: Groups and their initial pilot lr grids (AdamW, half-decades): the LayerNorm groups and their control have
#: 64x fewer parameters than a linear group and start a decade higher.
GROUP_LRS: dict[tuple[str, ...], tuple[float, ...]] = {
    ("mha", "fc1", "fc2"): (1e-4, 3e-4, 1e-3),
    ("ln1", "ln2", "ln-control"): (1e-3, 3e-3, 1e-2),
}
GROUPS = tuple(g for gs in GROUP_LRS for g in gs)
#: The most lrs the pilot of one (target, group) may try (:func:`vitplast.suites.lr_pilot.pilot_state`).
MAX_LRS = 5
SEEDS = (0, 1, 2)
#: What the suite changes in the mini recipe (:data:`vitplast.train.config.RECIPES`): LP-FT and longer runs.
PROTOCOL: dict[str, Any] = {"head_init": "probe", "steps": 150, "eval_every": 50}
STEPS: int = PROTOCOL["steps"]
EVALS: int = STEPS // PROTOCOL["eval_every"]
BATCH: int = MINI_RECIPE["batch_size"]
OPTIMIZER: str = MINI_RECIPE["optimizer"]
PAIRS = 256
#: Split sizes of the mini sets (``vitplast.data.mini`` docstrings), for the dry-run estimate and power;
#: a set absent here (the other textures-c and novel-c sets) has the 4,800 / 1,200 / 1,200 of its clean set.
SIZES: dict[str, Sizes] = {
    "mini:digits": Sizes(1149, 288, 360),
    "mini:textures": Sizes(4800, 1200, 1200),
    "mini:faces": Sizes(128, 32, 40),
    "mini:source-c": Sizes(3194, 799, 999),
    "mini:novel": Sizes(4800, 1200, 1200),
    "mini:latin": Sizes(4992, 1248, 1248),
    "mini:greek": Sizes(4608, 1152, 1152),
    "mini:count": Sizes(5000, 1250, 1250),
    "mini:position": Sizes(4800, 1200, 1200),
}
#: Images per second of one trial on one thread of the 2-core build machine (micro-ViT, 32 px, batch 32): the
#: medians over the 27 runs of each group of the committed reproduction (``docs/mini-reproduction``, two 1-thread
#: trials at once; ``images_per_s`` and ``wall_seconds - train_seconds`` of each ``result.json``). ``full`` is
#: not in that suite: it is taken as ``ln-control``, whose backward also computes every linear weight's gradient.
#: Evaluation: about 3,600 val + test images of ``textures`` or ``novel`` in a median 21 s beyond the ~4 s of
#: overhead, 170 images per second.
CPU_TRAIN_IPS = {"full": 55.0, "embed": 94.0, "ln1": 94.0, "mha": 72.0, "ln2": 95.0, "fc1": 66.0, "fc2": 67.0,
                 "ln-control": 55.0}
CPU_EVAL_IPS = 170.0
#: Noise model of the dry-run's power (``docs/statistics.md``, "Power"), calibrated on the committed micro-long
#: reproduction (``docs/mini-reproduction-long/tables/accuracy.csv``, target ``textures``, the one target off the
#: ceiling, as the graded targets the design aims at): mean test accuracy of its six groups at their best lr and the
#: root mean square over them of the SD over seeds (``acc_std``). The near-ceiling targets have SDs of 0.3-0.9 pp.
#: The per-image difficulty (Beta concentration 1) is an assumption: the per-image records were not committed.
DESIGN_ACCURACY = 0.793
DESIGN_SEED_SD = 0.0347
#: Seconds per task besides training and evaluation (model construction, curves figure, files), measured ~4 s.
CPU_TASK_OVERHEAD = 4.0


def label(spec: str) -> str:
    """A target's label in tables: ``mini:textures-c:contrast:5`` -> ``textures-c contrast 5``."""
    return spec.removeprefix("mini:").replace(":", " ")


def target_specs(names: Iterable[str], choices: tuple[str, ...] = TARGET_CHOICES) -> tuple[str, ...]:
    """``--targets``: the data specs of the mini targets ``names`` (``latin``, ``mini:latin``, and a label such as
    ``textures-c contrast 5`` for ``mini:textures-c:contrast:5``), in the order of ``choices``, each once; one
    ``error:`` line for none, or for a name not in ``choices``."""
    names = list(names)
    specs = ["mini:" + n.strip().removeprefix("mini:").replace(" ", ":") for n in names]
    unknown = [n for n, sp in zip(names, specs, strict=True) if sp not in choices]
    if not specs or unknown:
        raise VitplastError(f"--targets must be mini targets of docs/mini-targets.md "
                            f"({','.join(c.removeprefix('mini:') for c in choices)}), got {', '.join(unknown) or 'none'}")
    return tuple(c for c in choices if c in specs)


def mini_suite(
    model: str = "micro",
    random_weights: bool = False,
    quick: bool = False,
    steps: int | None = None,
    lrs: tuple[float, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
    root: Path | None = None,
    project: bool = False,
    targets: Iterable[str] | None = None,
) -> SweepSpec:
    """The mini suite as a sweep (module docstring); ``steps``, ``lrs`` (one grid for every group, on every
    seed: no pilot) and ``seeds`` override the defaults (each changes the runs' ids, so results of both sizes
    never mix). ``targets`` (:func:`target_specs`; default :data:`TARGETS`, with ``quick`` :data:`QUICK_TARGETS`)
    selects targets without changing any task's id: the plan is the default plan's tasks of those targets.

    The staged design is planned from what has finished in ``root`` (a sweep folder, or ``None``): the pilot
    runs of seed ``seeds[0]`` at the lrs :func:`~vitplast.suites.lr_pilot.pilot_state` asks for, and the other
    seeds at each lr it has chosen. ``project=True`` assumes that every pilot not yet decided chooses the middle
    of its grid without widening (the dry run's estimate of the whole suite)."""
    if steps is not None and steps < 1:
        raise VitplastError(f"--steps must be >= 1, got {steps}")
    if lrs is not None and (not lrs or any(not (x > 0 and math.isfinite(x)) for x in lrs)):
        raise VitplastError(f"--lrs must be finite numbers > 0, got {lrs}")
    targets = target_specs(targets) if targets is not None else QUICK_TARGETS if quick else TARGETS
    seeds = seeds or (QUICK_SEEDS if quick else SEEDS)
    steps = steps if steps is not None else (QUICK_STEPS if quick else STEPS)
    train = train_settings(steps, 16 if quick else BATCH, random_weights)
    datasets = [{"spec": t, "label": label(t)} for t in targets]
    if quick or lrs:
        grids = [{"name": "mini-quick" if quick else "mini", "groups": list(gs),
                  "lrs": list(lrs or (grid[len(grid) // 2],)), "seeds": list(seeds)} for gs, grid in GROUP_LRS.items()]
    else:
        grids = _staged_grids(model, targets, seeds, root, project, train)
    base, *rest = grids
    data = {
        **base,
        "models": [{"spec": model, "label": "micro-ViT" if model == "micro" else model}],
        "datasets": base.get("datasets", datasets),
        "optimizers": [OPTIMIZER],
        "train": train,
        "probe": {"batch_size": 256},
        "plasticity": {"source": "mini:source", "pairs": 32 if quick else PAIRS, "mode": "embedding",
                       "batch_size": 32, "bounds": True},
        "run": {"device": "auto", "eval_batch_size": 256},
        "ablations": rest,
    }
    from vitplast.sweep.spec import parse_sweep  # imports torch: not needed for the suite's constants

    return parse_sweep(data)


def train_settings(steps: int = STEPS, batch_size: int = BATCH, random_weights: bool = False) -> dict[str, Any]:
    """The sweep's ``train`` settings of the protocol (module docstring): LP-FT, ``steps`` steps of
    ``batch_size``, validation :data:`EVALS` times, clipping at 1.0, cosine decay, no weight decay."""
    train: dict[str, Any] = {
        "steps": steps,
        "batch_size": batch_size,
        "eval_every": max(1, steps // EVALS),
        "momentum": 0.9,
        "weight_decay": 0.0,
        "clip": 1.0,
        "schedule": "cosine",
        "augment": MINI_RECIPE["augment"],
        "head_init": PROTOCOL["head_init"],
    }
    if random_weights:
        train["random_weights"] = True
    return train


def _group_lrs(group: str) -> tuple[float, ...]:
    return next(grid for gs, grid in GROUP_LRS.items() if group in gs)


def _staged_grids(model: str, targets: tuple[str, ...], seeds: tuple[int, ...], root: Path | None, project: bool,
                  train: dict[str, Any]) -> list[dict[str, Any]]:
    """The pilot grid of every group (seed ``seeds[0]``, per-target lrs) and, where the pilot has chosen, the
    grid of the other seeds at the chosen lr (module docstring)."""
    val = _pilot_results(model, targets, seeds[0], root, train) if root is not None else {}
    pilots, rest = [], []
    for g in GROUPS:
        states = {t: pilot_state(_group_lrs(g), val.get((t, g), {}), MAX_LRS) for t in targets}
        pilots.append({"name": f"pilot-{g}", "groups": [g], "seeds": [seeds[0]], "lrs": [],
                       "datasets": [{"spec": t, "label": label(t), "lrs": list(st.lrs)} for t, st in states.items()]})
        chosen = {t: st.planned(project) for t, st in states.items()}
        if seeds[1:] and any(lr is not None for lr in chosen.values()):
            rest.append({"name": f"seeds-{g}", "groups": [g], "seeds": list(seeds[1:]), "lrs": [],
                         "datasets": [{"spec": t, "label": label(t), "lrs": [lr]} for t, lr in chosen.items()
                                      if lr is not None]})
    return [*pilots, *rest]


def _pilot_results(model: str, targets: tuple[str, ...], seed: int, root: Path,
                   train: dict[str, Any]) -> dict[tuple[str, str], dict[float, float | None]]:
    """Validation accuracy of the best checkpoint of every finished pilot run in ``root``, per (target, group)
    and lr (``None``: diverged): every lr the pilot could ever ask for is looked up by its run id."""
    from vitplast.sweep.spec import parse_sweep

    base, *rest = [{"name": f"pilot-{g}", "groups": [g], "lrs": candidate_lrs(_group_lrs(g), MAX_LRS)}
                   for g in GROUPS]
    spec = parse_sweep({**base, "models": [model], "datasets": list(targets), "optimizers": [OPTIMIZER],
                        "seeds": [seed], "train": train, "probe": False, "plasticity": False, "ablations": rest})
    return {key: {lr: finite(result, "best_val_acc") for (lr, _), (result, _) in runs.items()}
            for key, runs in finished_runs(spec, root).items()}


#: ``(data spec, group) -> {(lr, seed): (result.json, run folder)}`` (:func:`finished_runs`).
Runs = dict[tuple[str, str], dict[tuple[float, int], tuple[dict[str, Any], Path]]]


def finished_runs(spec: SweepSpec, root: Path) -> Runs:
    """The finished finetuning runs of ``spec`` in the sweep folder ``root``, found by their ids: their
    ``result.json`` and folder, per (data spec, trained groups joined by ``+``) and (lr, seed)."""
    from vitplast.reading import read_json
    from vitplast.sweep import build_plan
    from vitplast.sweep.kinds import FINETUNE

    out: Runs = {}
    for t in build_plan(spec).of_kind(FINETUNE):
        if t.is_done(root):
            key = (t.config["data"], "+".join(t.config["train"]))
            out.setdefault(key, {})[(float(t.config["lr"]), int(t.config["seed"]))] = (
                read_json(t.result_path(root)), t.dir(root))
    return out


def finite(result: dict[str, Any], key: str) -> float | None:
    """``result[key]`` as a float, or ``None`` when it is missing, null or not finite (a diverged run)."""
    v = result.get(key)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def design_power(spec: SweepSpec, sims: int = 400, noise: tuple[float, float] | None = None) -> list[Detectable]:
    """The smallest detectable effects of the primary tests for this design at 80 % power after correction,
    from simulation (:func:`vitplast.report.design.design_power`): the suite's targets and their test sizes,
    its seeds, and the noise ``(accuracy, seed SD)``: ``noise`` (e.g. :func:`observed_noise`), else the one
    calibrated on the committed ``micro-long`` reproduction (:data:`DESIGN_ACCURACY`, :data:`DESIGN_SEED_SD`)."""
    from vitplast.report.design import Design
    from vitplast.report.design import design_power as simulate_power

    base = spec.grids[0]
    seeds = {s for grid in spec.grids for s in grid.seeds}  # a staged design's pilot grids hold one seed
    accuracy, seed_sd = noise or (DESIGN_ACCURACY, DESIGN_SEED_SD)
    design = Design(tuple(mini_sizes(d.spec).test for d in base.datasets), len(seeds), accuracy, seed_sd)
    return simulate_power(design, sims=sims)


#: The fewest (target, group, lr) cells with >= 2 finished seeds from which :func:`observed_noise` calibrates.
MIN_NOISE_CELLS = 3


def observed_noise(spec: SweepSpec, root: Path) -> tuple[float, float, int] | None:
    """``(mean test accuracy, root-mean-square seed SD, cells)`` over the (target, group, lr) cells of ``spec``
    with at least two finished, non-diverged seeds in the sweep folder ``root`` (sample SD, ddof = 1); ``None``
    with fewer than :data:`MIN_NOISE_CELLS` cells. The dry run then states the power of the design from the noise
    of its own runs."""
    cells: dict[tuple[str, str, float], list[float]] = {}
    for (data, group), runs in finished_runs(spec, root).items():
        for (lr, _), (result, _) in runs.items():
            if (acc := finite(result, "test_acc")) is not None:
                cells.setdefault((data, group, lr), []).append(acc)
    seeded = [v for v in cells.values() if len(v) >= 2]
    if len(seeded) < MIN_NOISE_CELLS:
        return None
    means = [sum(v) / len(v) for v in seeded]
    variances = [sum((x - m) ** 2 for x in v) / (len(v) - 1) for v, m in zip(seeded, means, strict=True)]
    return sum(means) / len(means), math.sqrt(sum(variances) / len(variances)), len(seeded)


def mini_sizes(spec: str) -> Sizes:
    name = spec.removeprefix("mini:")
    key = "mini:" + ("source-c" if name.startswith("source-c") else name.split(":")[0])
    return SIZES.get(key, Sizes(4800, 1200, 1200))


def mini_throughput(model: str, group: str) -> tuple[float, float]:
    return CPU_TRAIN_IPS.get(group, CPU_TRAIN_IPS["full"]), CPU_EVAL_IPS
