"""The offline mini suite: the paper's protocol at small scale on the micro-ViT (SPEC section 4).

Targets: ``mini:digits``, ``mini:textures``, ``mini:faces``, ``mini:source-c`` at severity 5 for two
corruptions (gaussian noise, contrast) and ``mini:novel`` (6 data sets). Configurations:
``full embed ln1 mha ln2 fc1 fc2`` plus the linear probe; plasticity and bounds of every target against
``mini:source``. Every run starts from a new random head (the paper's protocol), clips at 1.0, warms up
then decays by cosine, uses no augmentation (RandomResizedCrop and pad-crop + flip destroy 32 px images).

Optimizer: AdamW (the paper's ablation optimizer), not the paper's SGD. On the micro-ViT a new random head
learns slowly from class-token features that share a large common offset: SGD at lr 0.1 reaches 75 %
on ``mini:digits`` after 150 steps of batch 32 where AdamW at lr 1e-3 reaches 90 %, and a 60-minute budget
on 2 cores allows about 100 steps per run. AdamW at 2e-3 or 3e-3 learns worse or diverges at this length.

Size: 42 runs (6 data sets x 7 configurations), one lr (1e-3), one seed, 90 steps of batch 32, one
validation pass at the end. Estimated 1.6 single-thread hours at the throughput measured on the build
machine (:data:`CPU_TRAIN_IPS`): 47 minutes with two concurrent 1-thread trials on an idle 2-core
machine if they scale perfectly, 52 minutes at 1.8x (measured: 48 min 50 s). With one lr and one seed
the report has no lr sensitivity and no spread over seeds; its tests pair the configurations across the
6 data sets. ``--lrs`` and ``--seeds`` widen the grid on a bigger budget.

``quick=True`` shrinks everything (3 data sets, 1 lr, 1 seed, 3 steps, 32 pairs) to check the chain
end to end in minutes; its numbers mean nothing.
"""

from __future__ import annotations

from typing import Any

from vitplast.suites.estimate import Sizes
from vitplast.sweep.spec import SweepSpec, parse_sweep
from vitplast.train.config import RECIPES

MINI_RECIPE = RECIPES["mini:"]

TARGETS: tuple[str, ...] = (
    "mini:digits",
    "mini:textures",
    "mini:faces",
    "mini:source-c:gaussian_noise:5",
    "mini:source-c:contrast:5",
    "mini:novel",
)
LABELS = {
    "mini:digits": "digits",
    "mini:textures": "textures",
    "mini:faces": "faces",
    "mini:source-c:gaussian_noise:5": "source-c gaussian_noise 5",
    "mini:source-c:contrast:5": "source-c contrast 5",
    "mini:novel": "novel",
}
GROUPS = ("full", "embed", "ln1", "mha", "ln2", "fc1", "fc2")
#: The mini recipe is declared once, in :data:`vitplast.train.config.RECIPES` (``vitplast finetune`` uses it too).
LRS = (MINI_RECIPE["lr"],)
SEEDS = (0,)
STEPS = MINI_RECIPE["steps"]
BATCH = MINI_RECIPE["batch_size"]
OPTIMIZER = MINI_RECIPE["optimizer"]
PAIRS = 256
#: Split sizes of the mini sets (``vitplast.data.mini`` docstring), for the dry-run estimate.
SIZES: dict[str, Sizes] = {
    "mini:digits": Sizes(1149, 288, 360),
    "mini:textures": Sizes(4800, 1200, 1200),
    "mini:faces": Sizes(128, 32, 40),
    "mini:source-c": Sizes(3194, 799, 999),
    "mini:novel": Sizes(4800, 1200, 1200),
}
#: Images per second of one trial on one thread of the 2-core build machine (micro-ViT, 32 px, batch 32), from
#: ``finetune`` runs on ``mini:textures`` that got a whole core (process CPU time / wall time 0.99): ``full`` 23.0,
#: ``ln1`` 34.5, evaluation about 65 (val + test passes). Other groups: ``full`` divided by their step-time ratio
#: to ``full`` in ``benchmarks/RESULTS.md`` (finetune_speed: embed 0.65, mha 0.89, ln2 0.67, fc1 0.81, fc2 0.68).
CPU_TRAIN_IPS = {"full": 23.0, "embed": 35.0, "ln1": 34.5, "mha": 26.0, "ln2": 34.0, "fc1": 28.0, "fc2": 34.0}
CPU_EVAL_IPS = 65.0
#: Seconds per task besides training and evaluation (model construction, curves figure, files), measured ~4 s.
CPU_TASK_OVERHEAD = 4.0


def mini_suite(
    model: str = "micro",
    random_weights: bool = False,
    quick: bool = False,
    steps: int | None = None,
    lrs: tuple[float, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
) -> SweepSpec:
    """The mini suite as a sweep (module docstring); ``steps``, ``lrs``, ``seeds`` override the defaults
    (to fit another machine's budget: each changes the runs' ids, so results of both sizes never mix)."""
    targets = ("mini:digits", "mini:faces", "mini:source-c:gaussian_noise:5") if quick else TARGETS
    steps = steps or (3 if quick else STEPS)
    train: dict[str, Any] = {
        "steps": steps,
        "batch_size": 16 if quick else BATCH,
        "eval_every": steps,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "clip": 1.0,
        "schedule": "cosine",
        "augment": MINI_RECIPE["augment"],
    }
    if random_weights:
        train["random_weights"] = True
    data = {
        "name": "mini-quick" if quick else "mini",
        "models": [{"spec": model, "label": "micro-ViT" if model == "micro" else model}],
        "datasets": [{"spec": t, "label": LABELS[t]} for t in targets],
        "groups": list(GROUPS),
        "optimizers": [OPTIMIZER],
        "lrs": list(lrs or LRS),
        "seeds": list(seeds or ((0,) if quick else SEEDS)),
        "train": train,
        "probe": {"batch_size": 256},
        "plasticity": {"source": "mini:source", "pairs": 32 if quick else PAIRS, "mode": "embedding",
                       "batch_size": 32, "bounds": True},
        "run": {"device": "auto", "eval_batch_size": 256},
    }
    return parse_sweep(data)


def mini_sizes(spec: str) -> Sizes:
    name = spec.removeprefix("mini:")
    key = "mini:" + ("source-c" if name.startswith("source-c") else name.split(":")[0])
    return SIZES.get(key, Sizes(4800, 1200, 1200))


def mini_throughput(model: str, group: str) -> tuple[float, float]:
    return CPU_TRAIN_IPS.get(group, CPU_TRAIN_IPS["full"]), CPU_EVAL_IPS
