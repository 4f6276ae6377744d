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

#: Images per second on one NVIDIA H200 (torch 2.11), measured 2026-11-30 by ``benchmarks/finetune_speed.py --parts
#: gpu`` with the ``finetune`` engine's step (forward + backward + per-group gradient norms + clipping + fused
#: SGD-momentum update) on in-memory 224 px batches in bf16 autocast with TF32, the engine's default on such a GPU
#: (``--precision auto``), micro-batches 128 / 64 / 32 for B / L / H: (train img/s per group, eval img/s at twice
#: the batch). Measured: B full 2515, mha 3145, fc1 3330, ln1 3341, embed 3405, eval 9014; L full 851, mha 1052,
#: ln1 1152, eval 3134; H full 322, mha 399, ln1 442, eval 1232 (fp32 on the same card: B full 400, mha 498).
#: Groups not measured take the value of a group with the same kind of gradient (fc2 = fc1, ln2 = ln1; L/H:
#: fc = mha, embed = ln1). The card's memory is not the limit: ViT-B ``full`` peaks far below it.
GPU_NAME = "NVIDIA H200, bf16, measured 2026-11-30"
GPU_IPS: dict[str, tuple[dict[str, float], float]] = {
    MODEL_B: ({"full": 2515.0, "mha": 3145.0, "fc1": 3330.0, "fc2": 3330.0, "embed": 3405.0, "ln1": 3341.0,
               "ln2": 3341.0}, 9014.0),
    MODEL_L: ({"full": 851.0, "mha": 1052.0, "fc1": 1052.0, "fc2": 1052.0, "embed": 1152.0, "ln1": 1152.0,
               "ln2": 1152.0}, 3134.0),
    MODEL_H: ({"full": 322.0, "mha": 399.0, "fc1": 399.0, "fc2": 399.0, "embed": 442.0, "ln1": 442.0, "ln2": 442.0},
              1232.0),
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
    train, ev = GPU_IPS.get(model, GPU_IPS[MODEL_B])
    return train.get(group, train["full"]), ev
