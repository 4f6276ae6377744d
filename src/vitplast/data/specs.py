"""The data-spec prefixes and their usage lines, without importing torch (option and sweep checks use them).

A spec is ``PREFIX`` or ``PREFIX:ARG``; each prefix's loader registers itself in :mod:`vitplast.data.registry`
under a name of this table (a test checks that the two agree).
"""

from __future__ import annotations

from vitplast.errors import VitplastError

#: prefix -> usage line shown in help and errors
PREFIXES: dict[str, str] = {
    "random": "random[:N]  seeded Gaussian images at the model's input size (N per split, default 256)",
    "folder": "folder:PATH  class-per-subfolder images (PATH/train, PATH/test used when present)",
    "mini": (
        "mini:NAME  offline mini-suite: source[:SEED], digits, textures, faces, "
        "source-c[:CORRUPTION[:SEVERITY]], novel[:SEED]; graded targets (docs/mini-targets.md): latin, greek, "
        "cyrillic, digit-glyphs, count, position, textures-c[:CORRUPTION[:SEVERITY]], novel-c[:CORRUPTION[:SEVERITY]]"
    ),
    "cifar10": "cifar10[:ROOT]  CIFAR-10 via torchvision (downloaded to the cache when online)",
    "cifar100": "cifar100[:ROOT]  CIFAR-100 via torchvision (downloaded to the cache when online)",
    "pets": "pets[:ROOT]  Oxford-IIIT Pet, 37 classes, via torchvision",
    "flowers102": "flowers102[:ROOT]  Oxford Flowers-102 via torchvision (native train/val/test)",
    "cifar10c": "cifar10c:DIR:CORRUPTION:SEVERITY  CIFAR-10-C .npy files (one corruption, severity 1-5)",
    "domainnet": "domainnet:DIR:DOMAIN[:official]  DomainNet domain (80/20, or the official split lists)",
    "imagenet-val": "imagenet-val:DIR  ImageNet validation images (class folders or flat)",
    "hf": (
        "hf:DATASET_ID[:CONFIG] or hf:DIR  a Hugging Face image-classification dataset "
        "(pip install datasets)"
    ),
}


def check_prefix(spec: str) -> None:
    """Refuse a data spec whose prefix no loader knows (cheap; the loader checks the rest when it runs)."""
    if spec.partition(":")[0] not in PREFIXES:
        raise VitplastError(f"unknown data spec {spec!r}: known prefixes are {', '.join(sorted(PREFIXES))}")
