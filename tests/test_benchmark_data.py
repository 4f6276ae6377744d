"""Real-user data sets in their published layouts, built offline with tiny files."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vitplast.data import DataContext, load_data
from vitplast.data.base import dataset_labels
from vitplast.errors import VitplastError


def _img(path: Path, color: tuple[int, int, int], size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)


def _pixel(item: object) -> tuple[int, int, int]:
    img = item[0]  # type: ignore[index]
    t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.array(img)).permute(2, 0, 1)
    return tuple(int(v) for v in t[:, 0, 0])  # type: ignore[return-value]


def test_cifar10c_npy_layout_selects_severity_and_splits(tmp_path: Path) -> None:
    per = 20  # images per severity (10000 in the real files)
    images = np.zeros((5 * per, 32, 32, 3), dtype=np.uint8)
    images[..., 0] = np.repeat(np.arange(1, 6), per)[:, None, None]  # red channel = severity
    images[..., 1] = np.tile(np.arange(per), 5)[:, None, None]  # green channel = image index
    labels = np.tile(np.arange(per) % 10, 5)
    np.save(tmp_path / "snow.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    b = load_data(f"cifar10c:{tmp_path}:snow:4")
    assert b.num_classes == 10 and b.classes[0] == "airplane"
    assert b.info["severity"] == 4 and b.info["corruption"] == "snow"
    sizes = [len(b.train), len(b.val), len(b.test)]  # type: ignore[arg-type]
    assert sum(sizes) == per and sizes == [13, 3, 4]  # 80/20 test split, then 80/20 val split
    seen = []
    for split in (b.train, b.val, b.test):
        for i in range(len(split)):  # type: ignore[arg-type]
            img, y = split[i]
            assert img.shape == (3, 32, 32) and img.dtype == torch.uint8
            assert int(img[0, 0, 0]) == 4  # severity 4 only
            idx = int(img[1, 0, 0])
            assert y == labels[idx]
            seen.append(idx)
    assert sorted(seen) == list(range(per))  # disjoint splits covering the severity
    with pytest.raises(VitplastError, match="severity"):
        load_data(f"cifar10c:{tmp_path}:snow:6")
    with pytest.raises(VitplastError, match="found: snow"):
        load_data(f"cifar10c:{tmp_path}:fog:5")
    with pytest.raises(VitplastError, match="does not exist"):
        load_data(f"cifar10c:{tmp_path / 'missing'}:snow:5")


def test_split_is_fixed_independently_of_run_seed(tmp_path: Path) -> None:
    np.save(tmp_path / "fog.npy", np.random.default_rng(0).integers(0, 255, (50, 8, 8, 3), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.arange(50) % 10)
    a = load_data(f"cifar10c:{tmp_path}:fog:1", DataContext(seed=0))
    b = load_data(f"cifar10c:{tmp_path}:fog:1", DataContext(seed=7))
    assert torch.equal(dataset_labels(a.test), dataset_labels(b.test))
    assert all(torch.equal(a.test[i][0], b.test[i][0]) for i in range(len(a.test)))  # type: ignore[arg-type]


def _domainnet(root: Path) -> dict[str, int]:
    classes = ["aircraft_carrier", "axe", "zebra"]
    colors = {}
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for c, cls in enumerate(classes):
        for k in range(5):
            rel = f"clipart/{cls}/clipart_{c:03d}_{k:06d}.jpg"
            _img(root / rel, (40 * c, 10 * k, 0))
            colors[rel] = c
            lines["train" if k < 4 else "test"].append(f"{rel} {c}")
    _img(root / "sketch" / "axe" / "s.png", (1, 2, 3))
    for split, ls in lines.items():
        (root / f"clipart_{split}.txt").write_text("\n".join(ls) + "\n")
    return colors


def test_domainnet_folder_and_official_split_lists(tmp_path: Path) -> None:
    _domainnet(tmp_path)
    b = load_data(f"domainnet:{tmp_path}:clipart")
    assert b.classes == ["aircraft_carrier", "axe", "zebra"] and b.name == "domainnet:clipart"
    assert sum(len(s) for s in (b.train, b.val, b.test)) == 15  # type: ignore[arg-type]
    off = load_data(f"domainnet:{tmp_path}:clipart:official")
    assert len(off.test) == 3 and len(off.train) + len(off.val) == 12  # type: ignore[arg-type]
    assert off.classes == b.classes
    for split in (off.train, off.test, b.test):
        for i in range(len(split)):  # type: ignore[arg-type]
            img, y = split[i]
            assert img.mode == "RGB"
            assert abs(_pixel((img, y))[0] - 40 * y) <= 3  # label matches the class folder (JPEG tolerance)
    assert load_data(f"domainnet:{tmp_path}:sketch").num_classes == 1
    with pytest.raises(VitplastError, match="found: clipart, sketch"):
        load_data(f"domainnet:{tmp_path}:real")
    os.remove(tmp_path / "clipart_test.txt")
    with pytest.raises(VitplastError, match=r"clipart_test\.txt"):
        load_data(f"domainnet:{tmp_path}:clipart:official")


def test_imagenet_val_layouts(tmp_path: Path) -> None:
    folders = tmp_path / "folders"
    for c, wnid in enumerate(["n01440764", "n01443537"]):
        for k in range(5):
            _img(folders / wnid / f"ILSVRC2012_val_{c * 5 + k:08d}.JPEG", (100 * c, 0, 0))
    b = load_data(f"imagenet-val:{folders}")
    assert b.classes == ["n01440764", "n01443537"]
    assert sum(len(s) for s in (b.train, b.val, b.test)) == 10  # type: ignore[arg-type]
    flat = tmp_path / "flat"
    rows = ["ImageId,PredictionString"]
    for i in range(6):
        wnid = ["n02", "n01"][i % 2]
        _img(flat / f"ILSVRC2012_val_{i:08d}.JPEG", (0, 100 * (i % 2), 0))
        rows.append(f"ILSVRC2012_val_{i:08d},{wnid} 1 2 3 4 {wnid} 5 6 7 8")
    (flat / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    b = load_data(f"imagenet-val:{flat}")
    assert b.classes == ["n01", "n02"]
    for split in (b.train, b.val, b.test):
        for i in range(len(split)):  # type: ignore[arg-type]
            img, y = split[i]
            assert (_pixel((img, y))[1] > 50) == (y == 0)
    os.remove(flat / "LOC_val_solution.csv")
    assert load_data(f"imagenet-val:{flat}").classes == ["unlabelled"]
    with pytest.raises(VitplastError, match="does not exist"):
        load_data(f"imagenet-val:{tmp_path / 'nope'}")


@pytest.mark.parametrize("layout", ["imagenet-val", "domainnet", "domainnet-official"])
def test_benchmark_folders_verify_every_image_up_front(layout: str, tmp_path: Path) -> None:
    """A text file with an image name fails when the data set is loaded, naming the file, not mid-training."""
    if layout == "imagenet-val":
        for k in range(3):
            _img(tmp_path / "n01" / f"v{k}.JPEG", (k, 0, 0))
        bad, spec = tmp_path / "n01" / "v9.JPEG", f"imagenet-val:{tmp_path}"
    else:
        _domainnet(tmp_path)
        bad = tmp_path / "clipart" / "axe" / "clipart_001_000004.jpg"  # listed in clipart_test.txt
        spec = f"domainnet:{tmp_path}:clipart" + (":official" if layout.endswith("official") else "")
    assert load_data(spec).num_classes >= 1
    bad.write_text("not an image")
    with pytest.raises(VitplastError, match=f"unreadable image {re.escape(str(bad))}"):
        load_data(spec)


def test_cifar10_python_pickle_layout_loads_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.cifar as tv_cifar

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        data = rng.integers(0, 255, (4, 3072), dtype=np.uint8)
        data[:, 0] = k  # first red pixel = file index
        with open(base / name, "wb") as f:
            pickle.dump({"data": data, "labels": [k % 10, 1, 2, 3]}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"]}, f)
    # The real files are checked against published MD5 sums; these tiny stand-ins only need to exist.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    b = load_data(f"cifar10:{tmp_path}", DataContext(download=False))
    assert b.num_classes == 10 and b.classes[-1] == "truck"
    assert len(b.train) + len(b.val) == 20 and len(b.test) == 4  # type: ignore[arg-type]
    img, y = b.test[0]
    assert img.shape == (3, 32, 32) and img.dtype == torch.uint8 and int(img[0, 0, 0]) == 5 and y == 5
    firsts = sorted(int(b.train[i][0][0, 0, 0]) for i in range(len(b.train)))  # type: ignore[arg-type]
    assert set(firsts) <= {0, 1, 2, 3, 4}
    with pytest.raises(VitplastError, match="cifar10: not found"):
        load_data(f"cifar10:{tmp_path / 'empty'}", DataContext(download=False))


def test_pets_layout_loads_through_torchvision(tmp_path: Path) -> None:
    base = tmp_path / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True)
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    for c, breed in enumerate(["Abyssinian", "beagle"]):
        for k in range(6):
            _img(base / "images" / f"{breed}_{k}.jpg", (200 * c, 0, 0))
            lines["trainval" if k < 4 else "test"].append(f"{breed}_{k} {c + 1} {1 if c == 0 else 2} 1")
    for split, ls in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(ls) + "\n")
    b = load_data(f"pets:{tmp_path}", DataContext(download=False))
    assert b.classes == ["Abyssinian", "Beagle"] and len(b.test) == 4  # type: ignore[arg-type]
    img, y = b.test[3]
    assert (_pixel((img, y))[0] > 100) == (y == 1)


def test_hf_dataset_from_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    feats = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    imgs = [Image.new("RGB", (8, 8), (i * 20, 0, 0)) for i in range(12)]
    d = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"img": imgs[:9], "label": [i % 3 for i in range(9)]}, features=feats),
        "test": datasets.Dataset.from_dict({"img": imgs[9:], "label": [0, 1, 2]}, features=feats),
    })
    d.save_to_disk(str(tmp_path / "ds"))
    b = load_data(f"hf:{tmp_path / 'ds'}")
    assert b.classes == ["a", "b", "c"] and len(b.test) == 3 and len(b.train) + len(b.val) == 9  # type: ignore[arg-type]
    img, y = b.test[2]
    assert y == 2 and img.size == (8, 8) and _pixel((img, y))[0] == 220


def test_torchvision_sets_report_missing_files_in_one_line(tmp_path: Path) -> None:
    for spec in ("cifar100", "flowers102", "pets"):
        with pytest.raises(VitplastError) as exc:
            load_data(f"{spec}:{tmp_path / spec}", DataContext(download=False))
        assert "\n" not in str(exc.value) and spec in str(exc.value)
