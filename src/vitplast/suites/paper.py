"""The paper's full grid (README, "Reproducing the paper offline") as a sweep.

Base grid: ViT-B/16 pretrained on ImageNet-21k only (the original google/vit-base-patch16-224-in21k
weights, in timm vit_base_patch16_224.orig_in21k), 11 data sets x 7 configurations x 4 lrs x 3 seeds =
924 runs; SGD momentum 0.9, weight decay 0, batch 512 (micro-batches of 128: grad_accum 4), clipping
1.0, 5 % linear warmup + cosine, validation every 500 steps. Steps and lrs per data set as in the
paper (DomainNet: 20k steps, lrs 3e-3 .. 6e-2). Plasticity: 1,000 ImageNet validation / target pairs.

Ablations (assumed: the paper reports "over 1,000 runs" without the exact ablation grid): ViT-L/16 and
ViT-H/14 on DomainNet clipart (2 x 84 runs), and AdamW with lr = SGD grid / 100 for ViT-B/16 on
DomainNet clipart (84 runs). Total 1,176 runs.

Data: CIFAR-10/100, Pets and Flowers102 are downloaded by torchvision into the cache; CIFAR-10-C,
DomainNet and the ImageNet validation images are read from the --data-root folder (CIFAR-10-C/,
domainnet/, imagenet/val/).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vitplast.suites.estimate import Sizes

if TYPE_CHECKING:
    from vitplast.sweep.spec import SweepSpec

MODEL_B = "timm:vit_base_patch16_224.orig_in21k"
MODEL_L = "timm:vit_large_patch16_224.orig_in21k"
MODEL_H = "timm:vit_huge_patch14_224.orig_in21k"
LRS = (1e-3, 3e-3, 1e-2, 3e-2)
LRS_DOMAINNET = (3e-3, 1e-2, 3e-2, 6e-2)
SEEDS = (0, 42, 3407)
GROUPS = ("full", "embed", "ln1", "mha", "ln2", "fc1", "fc2")
CORRUPTIONS = ("contrast", "gaussian_noise", "motion_blur", "snow", "speckle_noise")
EVAL_EVERY = 500
#: Micro-batches of 128 (ViT-B), 64 (ViT-L), 32 (ViT-H) fit an 80 GB GPU in float32.
GRAD_ACCUM = {MODEL_B: 4, MODEL_L: 8, MODEL_H: 16}

#: Approximate split sizes (train / val after the fixed 80/20 split / test).
SIZES: dict[str, Sizes] = {
    "cifar10": Sizes(40000, 10000, 10000),
    "cifar100": Sizes(40000, 10000, 10000),
    "pets": Sizes(2944, 736, 3669),
    "flowers102": Sizes(1020, 1020, 6149),
    "cifar10c": Sizes(6400, 1600, 2000),
    "domainnet:clipart": Sizes(27000, 6800, 14600),
    "domainnet:sketch": Sizes(39000, 9800, 21300),
}

#: Images per second on one NVIDIA H100 80GB HBM3, measured 2026-11-22 with the ``finetune`` engine's step
#: (forward + backward + per-group gradient norms + clipping + SGD-momentum update) on in-memory 224 px
#: batches, float32 as the engine runs (no TF32, no autocast), micro-batches 128 / 64 / 32 (peak 15 / 22 / 25 GiB
#: for ``full``): (train img/s per group, eval img/s). Measured: B full 397, mha 493, fc1 506, ln1 553,
#: embed 552, eval 1240; L full 119, mha 150, ln1 170, eval 367; H full 41, mha 51, ln1 58, eval 137. Groups not
#: measured take the value of a group with the same kind of gradient (fc2 = fc1, ln2 = ln1; L/H: fc = mha,
#: embed = ln1).
H100_IPS: dict[str, tuple[dict[str, float], float]] = {
    MODEL_B: ({"full": 397.0, "mha": 493.0, "fc1": 506.0, "fc2": 506.0, "embed": 552.0, "ln1": 553.0, "ln2": 553.0},
              1240.0),
    MODEL_L: ({"full": 119.0, "mha": 150.0, "fc1": 150.0, "fc2": 150.0, "embed": 170.0, "ln1": 170.0, "ln2": 170.0},
              367.0),
    MODEL_H: ({"full": 41.0, "mha": 51.0, "fc1": 51.0, "fc2": 51.0, "embed": 58.0, "ln1": 58.0, "ln2": 58.0},
              137.0),
}


def _datasets(root: str) -> list[dict[str, Any]]:
    ds: list[dict[str, Any]] = [
        {"spec": "cifar10", "label": "CIFAR-10", "steps": 10000},
        {"spec": "cifar100", "label": "CIFAR-100", "steps": 10000},
        {"spec": "pets", "label": "Pet", "steps": 4000},
        {"spec": "flowers102", "label": "Flowers102", "steps": 5000},
    ]
    ds += [{"spec": f"cifar10c:{root}/CIFAR-10-C:{c}:5", "label": f"CIFAR-10-C {c}", "steps": 10000}
           for c in CORRUPTIONS]
    ds += [{"spec": f"domainnet:{root}/domainnet:{d}", "label": f"DomainNet {d}", "steps": 20000,
            "lrs": list(LRS_DOMAINNET)} for d in ("clipart", "sketch")]
    return ds


def paper_suite(data_root: str = "data", pairs: int = 1000) -> SweepSpec:
    """The paper's grid with the ablations (module docstring); ``data_root`` holds ``CIFAR-10-C/``,
    ``domainnet/`` and ``imagenet/val/``."""
    root = data_root.rstrip("/") or "."
    datasets = _datasets(root)
    clipart = [d for d in datasets if d["label"] == "DomainNet clipart"]
    train = {"batch_size": 512, "grad_accum": GRAD_ACCUM[MODEL_B], "momentum": 0.9, "weight_decay": 0.0, "clip": 1.0,
             "schedule": "cosine", "eval_every": EVAL_EVERY, "augment": "rrc"}
    data = {
        "name": "paper",
        "models": [{"spec": MODEL_B, "label": "ViT-B/16"}],
        "datasets": datasets,
        "groups": list(GROUPS),
        "optimizers": ["sgd"],
        "lrs": list(LRS),
        "seeds": list(SEEDS),
        "train": train,
        "probe": True,
        "plasticity": {"source": f"imagenet-val:{root}/imagenet/val", "pairs": pairs, "mode": "embedding",
                       "batch_size": 64, "bounds": True},
        "run": {"device": "auto", "workers": 8},
        "ablations": [
            {"name": "vit-l", "models": [{"spec": MODEL_L, "label": "ViT-L/16"}], "datasets": clipart,
             "train": {"grad_accum": GRAD_ACCUM[MODEL_L]}},
            {"name": "vit-h", "models": [{"spec": MODEL_H, "label": "ViT-H/14"}], "datasets": clipart,
             "train": {"grad_accum": GRAD_ACCUM[MODEL_H]}},
            {"name": "adamw", "datasets": clipart, "optimizers": [{"name": "adamw", "lr_scale": 0.01}]},
        ],
    }
    from vitplast.sweep.spec import parse_sweep  # imports torch: not needed for the suite's constants

    return parse_sweep(data)


def paper_sizes(spec: str) -> Sizes:
    if spec.startswith("cifar10c:"):
        return SIZES["cifar10c"]
    if spec.startswith("domainnet:"):
        return SIZES["domainnet:" + spec.split(":")[2]]
    return SIZES.get(spec.split(":")[0], Sizes(40000, 10000, 10000))


def paper_throughput(model: str, group: str) -> tuple[float, float]:
    train, ev = H100_IPS.get(model, H100_IPS[MODEL_B])
    return train.get(group, train["full"]), ev
