"""Benchmark data sets for real users: torchvision sets, CIFAR-10-C, DomainNet, ImageNet val, HF datasets.

Specs (the 80/20 train/val split is fixed, independent of any run seed; README, "Reproducing the paper offline"):

* ``cifar10[:ROOT]``, ``cifar100[:ROOT]`` - torchvision, train (80/20 train/val) and test splits;
* ``pets[:ROOT]`` - Oxford-IIIT Pet (37 classes), ``trainval`` (80/20) and ``test``;
* ``flowers102[:ROOT]`` - Flowers102 with its native train / val / test splits;
  ``ROOT`` defaults to ``<cache>/torchvision``; missing files are downloaded there when online;
* ``cifar10c:DIR:CORRUPTION:SEVERITY`` - the published ``.npy`` layout: ``DIR/<corruption>.npy`` holds
  the CIFAR-10 test images under that corruption at severities 1-5 in order (``5 x 10000`` images
  ``[N, 32, 32, 3] uint8``), ``DIR/labels.npy`` their labels; the images of one severity are split 80/20
  into train/test (then 80/20 train/val), as in README, "Reproducing the paper offline";
* ``domainnet:DIR:DOMAIN[:official]`` - ``DIR/<domain>/<class>/<image>``; the images of a domain are
  split 80/20 (README, "Reproducing the paper offline"), or with ``official`` the published ``DIR/<domain>_train.txt`` /
  ``<domain>_test.txt`` lists (``<domain>/<class>/<file> <label>`` per line) are used;
* ``imagenet-val:DIR`` - ImageNet validation images, either in class folders (``DIR/<wnid>/*.JPEG``),
  or flat with ``DIR/LOC_val_solution.csv`` (labels = sorted wnids), or flat without labels (class 0);
  split 80/20 like a single pool;
* ``hf:DATASET_ID[:CONFIG]`` or ``hf:DIR`` - a Hugging Face dataset (needs ``pip install datasets``),
  from the hub or a ``save_to_disk`` directory; ``train`` split 80/20 plus ``test`` (or ``validation``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vitplast.data.base import DataBundle, FileImageSet, Item, TensorImageSet, verify_images
from vitplast.data.folder import IMAGE_SUFFIXES, scan_class_folders
from vitplast.data.registry import DataContext, register
from vitplast.errors import VitplastError
from vitplast.reading import read_table, read_text

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _tv_root(arg: str, ctx: DataContext) -> Path:
    if arg:
        return Path(arg).expanduser()
    return Path(ctx.root or ".") / "torchvision"


def _torchvision(name: str, cls: Callable[..., Any], root: Path, download: bool, **kw: Any) -> Any:
    """``cls(root, download=download, **kw)``, turning 'not found' and network errors into one-line user errors."""
    try:
        return cls(str(root), download=download, **kw)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, HTTPError, ...
        how = "and could not be downloaded" if download else "(downloads disabled)"
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VitplastError(f"{name}: not found under {root} {how}: {msg}") from None


def _cifar(name: str, cls: Any, arg: str, ctx: DataContext) -> DataBundle:
    root = _tv_root(arg, ctx)
    sets = [_torchvision(name, cls, root, ctx.download, train=t) for t in (True, False)]
    # Images as uint8 tensors [N, 3, 32, 32] (a view of torchvision's HWC arrays, no PIL round trip).
    train, test = (TensorImageSet(torch.from_numpy(s.data).permute(0, 3, 1, 2), s.targets) for s in sets)
    return DataBundle.from_train_test(name, list(sets[0].classes), train, test, root=str(root))


@register("cifar10")
def load_cifar10(arg: str, ctx: DataContext) -> DataBundle:
    from torchvision.datasets import CIFAR10

    return _cifar("cifar10", CIFAR10, arg, ctx)


@register("cifar100")
def load_cifar100(arg: str, ctx: DataContext) -> DataBundle:
    from torchvision.datasets import CIFAR100

    return _cifar("cifar100", CIFAR100, arg, ctx)


@register("pets")
def load_pets(arg: str, ctx: DataContext) -> DataBundle:
    from torchvision.datasets import OxfordIIITPet

    root = _tv_root(arg, ctx)
    trainval, test = (_torchvision("pets", OxfordIIITPet, root, ctx.download, split=s) for s in ("trainval", "test"))
    return DataBundle.from_train_test("pets", list(trainval.classes), trainval, test, root=str(root))


@register("flowers102")
def load_flowers102(arg: str, ctx: DataContext) -> DataBundle:
    from torchvision.datasets import Flowers102

    root = _tv_root(arg, ctx)
    train, val, test = (
        _torchvision("flowers102", Flowers102, root, ctx.download, split=s) for s in ("train", "val", "test")
    )
    classes = list(getattr(train, "classes", [f"class{i}" for i in range(102)]))
    return DataBundle("flowers102", classes, train, val, test, {"root": str(root)})


def _existing_dir(spec: str, path: str) -> Path:
    if not path:
        raise VitplastError(f"{spec} needs a directory")
    d = Path(path).expanduser()
    if not d.is_dir():
        raise VitplastError(f"{spec}: directory {d} does not exist")
    return d


@register("cifar10c")
def load_cifar10c(arg: str, ctx: DataContext) -> DataBundle:
    parts = arg.split(":")
    if len(parts) != 3:
        raise VitplastError(f"cifar10c:{arg}: use cifar10c:DIR:CORRUPTION:SEVERITY, e.g. cifar10c:~/CIFAR-10-C:snow:5")
    path, corruption, sev = parts
    root = _existing_dir("cifar10c", path)
    try:
        severity = int(sev)
    except ValueError:
        severity = 0
    if not 1 <= severity <= 5:
        raise VitplastError(f"cifar10c: severity must be 1-5, got {sev!r}")
    file = root / f"{corruption}.npy"
    if not file.is_file():
        found = sorted(p.stem for p in root.glob("*.npy") if p.stem != "labels")
        raise VitplastError(f"cifar10c: no {file.name} in {root} (found: {', '.join(found) or 'none'})")
    if not (root / "labels.npy").is_file():
        raise VitplastError(f"cifar10c: {root}/labels.npy is missing")
    images = np.load(file, mmap_mode="r")
    labels = np.load(root / "labels.npy")
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(labels) or len(images) % 5:
        raise VitplastError(
            f"cifar10c: {file.name} has shape {images.shape} and labels {labels.shape}; expected "
            "[5 * n, H, W, 3] images (severities 1-5 in order) and as many labels"
        )
    n = len(images) // 5
    lo, hi = (severity - 1) * n, severity * n
    x = torch.from_numpy(np.array(images[lo:hi])).permute(0, 3, 1, 2)  # copy out of the memory map
    pool = TensorImageSet(x, torch.from_numpy(np.asarray(labels[lo:hi], dtype=np.int64)))
    return DataBundle.from_single(
        f"cifar10c:{corruption}:{severity}", list(CIFAR10_CLASSES), pool,
        corruption=corruption, severity=severity, path=str(root),
    )


def _read_split_list(root: Path, file: Path) -> tuple[list[Path], list[int], dict[int, str]]:
    paths: list[Path] = []
    labels: list[int] = []
    names: dict[int, str] = {}
    for k, line in enumerate(read_text(file).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rel, lab = line.rsplit(maxsplit=1)
            label = int(lab)
        except ValueError:
            raise VitplastError(f"{file}:{k}: expected '<domain>/<class>/<file> <label>', got {line!r}") from None
        paths.append(root / rel)
        labels.append(label)
        parts = Path(rel).parts
        names.setdefault(label, parts[-2] if len(parts) >= 2 else f"class{label}")
    return paths, labels, names


@register("domainnet")
def load_domainnet(arg: str, ctx: DataContext) -> DataBundle:
    parts = arg.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "official"):
        raise VitplastError(f"domainnet:{arg}: use domainnet:DIR:DOMAIN or domainnet:DIR:DOMAIN:official")
    root = _existing_dir("domainnet", parts[0])
    domain = parts[1]
    if not (root / domain).is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise VitplastError(f"domainnet: no domain folder {root / domain} (found: {', '.join(found) or 'none'})")
    name = f"domainnet:{domain}"
    if len(parts) == 3:
        lists = [root / f"{domain}_{s}.txt" for s in ("train", "test")]
        missing = [str(p) for p in lists if not p.is_file()]
        if missing:
            raise VitplastError(f"domainnet: split list {missing[0]} is missing")
        tr_p, tr_l, names = _read_split_list(root, lists[0])
        te_p, te_l, te_names = _read_split_list(root, lists[1])
        names = {**te_names, **names}
        verify_images([*tr_p, *te_p])
        n_cls = max([*tr_l, *te_l]) + 1
        classes = [names.get(i, f"class{i}") for i in range(n_cls)]
        return DataBundle.from_train_test(
            name, classes, FileImageSet(tr_p, tr_l), FileImageSet(te_p, te_l), domain=domain, split="official"
        )
    classes, pool = scan_class_folders(root / domain)
    if len(pool) == 0:
        raise VitplastError(f"domainnet: no images under {root / domain}/<class>/")
    verify_images(pool.paths)
    return DataBundle.from_single(name, classes, pool, domain=domain, split="80/20")


@register("imagenet-val")
def load_imagenet_val(arg: str, ctx: DataContext) -> DataBundle:
    root = _existing_dir("imagenet-val", arg)
    subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if subdirs:
        classes, pool = scan_class_folders(root)
        layout = "class folders"
    else:
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        solution = root / "LOC_val_solution.csv"
        if solution.is_file():
            wnid_of = _read_loc_solution(solution)
            classes = sorted(set(wnid_of.values()))
            index = {c: i for i, c in enumerate(classes)}
            files = [f for f in files if f.stem in wnid_of]
            pool = FileImageSet(files, [index[wnid_of[f.stem]] for f in files])
            layout = "flat + LOC_val_solution.csv"
        else:
            classes, pool = ["unlabelled"], FileImageSet(files, [0] * len(files))
            layout = "flat, unlabelled"
    if len(pool) == 0:
        raise VitplastError(f"imagenet-val: no images found in {root}")
    verify_images(pool.paths)
    return DataBundle.from_single("imagenet-val", classes, pool, path=str(root), layout=layout)


def _read_loc_solution(path: Path) -> dict[str, str]:
    """``ImageId -> wnid`` from Kaggle's ``LOC_val_solution.csv`` (first token of ``PredictionString``)."""
    table = read_table(path, ("ImageId", "PredictionString")).dropna(subset=["ImageId", "PredictionString"])
    return {str(i): str(p).split()[0] for i, p in zip(table["ImageId"], table["PredictionString"], strict=True)
            if str(p).strip()}


class HFImageSet(Dataset[Item]):
    """One split of a HF dataset: ``(PIL image, label)`` items, labels available without decoding images."""

    def __init__(self, ds: Any, image_col: str, label_col: str) -> None:
        self.ds, self.image_col = ds, image_col
        self.labels = torch.as_tensor(list(ds[label_col]), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Item:
        return self.ds[int(i)][self.image_col], int(self.labels[i])


def _hf_columns(split: Any) -> tuple[str, str, list[str] | None]:
    import datasets

    feats = split.features
    image = next((k for k, f in feats.items() if isinstance(f, datasets.Image)), None)
    label = next((k for k, f in feats.items() if isinstance(f, datasets.ClassLabel)), None)
    label = label or next((k for k in ("label", "labels", "fine_label") if k in feats), None)
    if image is None or label is None:
        raise VitplastError(f"hf: need an image column and a label column, found {', '.join(feats)}")
    names = list(feats[label].names) if isinstance(feats[label], datasets.ClassLabel) else None
    return image, label, names


@register("hf")
def load_hf_dataset(arg: str, ctx: DataContext) -> DataBundle:
    try:
        import datasets
    except ImportError:
        raise VitplastError("hf: data sets need the datasets package: pip install 'vitplast[datasets]'") from None
    if not arg:
        raise VitplastError("hf: needs a dataset id or directory, e.g. hf:uoft-cs/cifar10")
    ident, _, config = arg.partition(":")
    try:
        if Path(ident).expanduser().is_dir():
            dd = datasets.load_from_disk(str(Path(ident).expanduser()))
        else:
            cache = str(Path(ctx.root or ".") / "hf-datasets")
            dd = datasets.load_dataset(ident, config or None, cache_dir=cache)
    except Exception as exc:
        raise VitplastError(f"hf:{arg}: could not load ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if "train" not in dd:
        raise VitplastError(f"hf:{arg}: no train split (splits: {', '.join(dd)})")
    image, label, names = _hf_columns(dd["train"])
    train = HFImageSet(dd["train"], image, label)
    classes = names or [str(i) for i in range(int(train.labels.max()) + 1)]
    held = next((s for s in ("test", "validation", "valid") if s in dd), None)
    if held is None:
        return DataBundle.from_single(f"hf:{arg}", classes, train, dataset=ident)
    test = HFImageSet(dd[held], image, label)
    return DataBundle.from_train_test(f"hf:{arg}", classes, train, test, dataset=ident, test_split=held)
