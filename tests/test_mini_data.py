"""The offline mini-suite: determinism, balance, disjoint splits, corruptions, cache, bad specs, end to end."""

from __future__ import annotations

import hashlib
import itertools
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitplast.data import DataContext, available, load_data
from vitplast.data.mini import cache, procedural, real, shifted, source, textures
from vitplast.data.mini.common import split_pool, stratified_splits
from vitplast.data.mini.corruptions import CORRUPTIONS, corrupt
from vitplast.errors import VitplastError

SPLITS = ("train", "val", "test")
ALL_SETS = ["mini:source", "mini:digits", "mini:textures", "mini:faces", "mini:source-c:snow:2", "mini:novel"]


@pytest.fixture(scope="module")
def source_bundle():  # built once per test session in the conftest cache directory
    return load_data("mini:source")


def _hashes(images: torch.Tensor) -> set[bytes]:
    return {hashlib.blake2b(img.numpy().tobytes(), digest_size=16).digest() for img in images}


def _check_layout(bundle, num_classes: int) -> None:
    assert bundle.num_classes == num_classes == len(set(bundle.classes))
    for s in SPLITS:
        ds = bundle.split(s)
        assert ds.images.dtype == torch.uint8 and tuple(ds.images.shape[1:]) == (3, 32, 32)
        assert len(ds.images) == len(ds.labels) == bundle.info["sizes"][s] > 0
        assert int(ds.labels.min()) >= 0 and int(ds.labels.max()) < num_classes
    # no image appears in two splits
    hashes = [_hashes(bundle.split(s).images) for s in SPLITS]
    assert not (hashes[0] & hashes[1]) and not (hashes[0] & hashes[2]) and not (hashes[1] & hashes[2])


def test_registered() -> None:
    """Every loader registers under a declared prefix, and every declared prefix has a loader."""
    from vitplast.data.specs import PREFIXES

    assert "mini" in available()
    assert available() == {k: PREFIXES[k] for k in sorted(PREFIXES)}


def test_generator_is_deterministic_in_the_seed() -> None:
    triples = procedural.design("source")
    a_img, a_lab = procedural.generate(triples, 2, seed=[5, 0, 0], chunk=32)
    b_img, b_lab = procedural.generate(triples, 2, seed=[5, 0, 0], chunk=32)
    c_img, _ = procedural.generate(triples, 2, seed=[6, 0, 0], chunk=32)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert a_img.dtype == np.uint8 and a_img.shape == (96, 3, 32, 32)
    assert np.bincount(a_lab, minlength=48).tolist() == [2] * 48
    assert (a_img != c_img).mean() > 0.5  # a different seed gives different images


def test_designs_split_the_attribute_grid() -> None:
    src, nov = set(procedural.design("source")), set(procedural.design("novel"))
    grid = {
        (s, t, c)
        for s in range(len(procedural.SHAPES))
        for t in range(len(procedural.TEXTURES))
        for c in range(len(procedural.COLOURS))
    }
    assert src | nov == grid and not src & nov and len(src) == len(nov) == 48
    # every value of every attribute occurs in both designs, and any two attributes leave the third open
    for k in range(3):
        assert {t[k] for t in src} == {t[k] for t in nov} == {g[k] for g in grid}
    for drop in range(3):
        pairs: dict[tuple[int, int], int] = {}
        for t in src:
            key = tuple(v for i, v in enumerate(t) if i != drop)
            pairs[key] = pairs.get(key, 0) + 1  # type: ignore[index]
        assert min(pairs.values()) >= 2


def test_shapes_are_rendered_where_the_sdf_says() -> None:
    # the object's pixels carry the colour family: render solid red disks on no clutter, check the hue
    scene = procedural.Scene(shape=np.zeros(8, int), texture=np.zeros(8, int), colour=np.zeros(8, int))
    img = procedural.render(scene, np.random.default_rng(0)).astype(float)
    r, g, b = img[:, 0], img[:, 1], img[:, 2]
    red_pixels = ((r > g + 60) & (r > b + 60)).sum(axis=(1, 2))
    # a disk of radius >= 0.2 * 0.88 * 32 px covers >= 98 px; clutter may cover a little of it
    assert (red_pixels > 60).all()


def test_source_set(source_bundle) -> None:
    b = source_bundle
    _check_layout(b, 48)
    for s in SPLITS:
        counts = torch.bincount(b.split(s).labels, minlength=48)
        assert counts.tolist() == [source.PER_CLASS["source"][s]] * 48
    assert b.info["seed"] == source.DATA_SEED and b.info["generator_version"] == source.GENERATOR_VERSION
    again = load_data("mini:source")
    assert again.info["cache_hit"] is True
    for s in SPLITS:
        assert torch.equal(again.split(s).images, b.split(s).images)
        assert torch.equal(again.split(s).labels, b.split(s).labels)


def test_novel_set() -> None:
    b = load_data("mini:novel")
    _check_layout(b, 48)
    assert set(b.classes).isdisjoint(procedural.class_name(t) for t in procedural.design("source"))
    for s in SPLITS:
        assert torch.bincount(b.split(s).labels).tolist() == [source.PER_CLASS["novel"][s]] * 48


def test_generated_sets_are_cached_and_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(source.PER_CLASS, "novel", {"train": 2, "val": 1, "test": 1})  # small and fast
    first = load_data("mini:novel", DataContext(root=tmp_path / "a"))
    assert first.info["cache_hit"] is False and Path(first.info["cache"]).is_file()
    second = load_data("mini:novel", DataContext(root=tmp_path / "a"))
    elsewhere = load_data("mini:novel", DataContext(root=tmp_path / "b"))  # rebuilt from scratch
    other_seed = load_data("mini:novel:1", DataContext(root=tmp_path / "a"))
    assert second.info["cache_hit"] is True and elsewhere.info["cache_hit"] is False
    for s in SPLITS:
        for again in (second, elsewhere):
            assert torch.equal(first.split(s).images, again.split(s).images)
            assert torch.equal(first.split(s).labels, again.split(s).labels)
        assert (first.split(s).images != other_seed.split(s).images).float().mean() > 0.5
    assert other_seed.name == "mini:novel:1" and other_seed.info["seed"] == 1
    assert not [p for p in (tmp_path / "a" / "mini").iterdir() if not p.name.endswith(".pt")]


def _tiny_splits(value: int) -> cache.Splits:
    return {s: (torch.full((2, 3, 4, 4), value, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)) for s in SPLITS}


def test_cache_rebuilds_unreadable_files_and_survives_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(b"not a torch file")
    built, hit = cache.cached(path, lambda: _tiny_splits(7))
    assert not hit and int(built["train"][0][0, 0, 0, 0]) == 7
    loaded, hit = cache.cached(path, lambda: pytest.fail("must not rebuild"))  # type: ignore[arg-type,return-value]
    assert hit and torch.equal(loaded["val"][0], built["val"][0])

    path2 = tmp_path / "y.pt"
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.cached(path2, lambda: _tiny_splits(3))))]
    threads.append(threading.Thread(target=lambda: results.append(cache.cached(path2, lambda: _tiny_splits(3)))))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and cache._read(path2) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pt", "y.pt"]  # no temporary file left


def test_digits_match_sklearn() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    b = load_data("mini:digits")
    _check_layout(b, 10)
    assert sum(b.info["sizes"].values()) == len(digits.target)
    idx = stratified_splits(np.asarray(digits.target))
    for s in SPLITS:
        ds = b.split(s)
        assert torch.equal(ds.labels, torch.as_tensor(digits.target[idx[s]]))
        # 4x4 block means of the 32 px image reproduce the 8 px original (up to bilinear blur)
        small = F.avg_pool2d(ds.images[:, :1].float(), 4)[:, 0].flatten(1).numpy()
        orig = digits.images[idx[s]].reshape(len(small), -1)
        corr = [np.corrcoef(a, o)[0, 1] for a, o in zip(small, orig, strict=True)]
        assert min(corr) > 0.85
        counts = np.bincount(ds.labels.numpy(), minlength=10)
        expected = np.bincount(digits.target, minlength=10) * len(ds) / len(digits.target)
        assert np.abs(counts - expected).max() <= 2  # stratified


def test_faces_labels_follow_lfw_subset() -> None:
    from skimage.data import lfw_subset

    faces = lfw_subset()
    b = load_data("mini:faces")
    _check_layout(b, 2)
    labels = np.repeat([0, 1], 100)
    for s, idx in stratified_splits(labels).items():
        ds = b.split(s)
        assert torch.equal(ds.labels, torch.as_tensor(labels[idx]))
        assert abs(int(ds.labels.sum()) - len(ds) / 2) <= 1
        small = F.interpolate(ds.images[:, :1].float(), size=(25, 25), mode="area")[:, 0].numpy() / 255
        assert np.abs(small - faces[idx]).mean() < 0.05


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(
        (
            (a[:, None, 0] < b[None, :, 2])
            & (b[None, :, 0] < a[:, None, 2])
            & (a[:, None, 1] < b[None, :, 3])
            & (b[None, :, 1] < a[:, None, 3])
        ).any()
    )


def test_texture_crops_come_from_disjoint_regions() -> None:
    b = load_data("mini:textures")
    _check_layout(b, len(textures.PHOTOS))
    for s in SPLITS:
        assert torch.bincount(b.split(s).labels).tolist() == [textures.PER_CLASS[s]] * len(textures.PHOTOS)
    for label, name in enumerate(textures.PHOTOS[:4]):
        photo = textures.load_photo(name)
        shape = (photo.shape[1], photo.shape[2])
        boxes = {s: textures.crop_boxes(shape, label, s, textures.PER_CLASS[s]) for s in SPLITS}
        for s in SPLITS:
            bx = boxes[s]
            assert (bx[:, :2] >= 0).all() and (bx[:, 2] <= shape[1]).all() and (bx[:, 3] <= shape[0]).all()
        assert not _overlap(boxes["train"], boxes["test"])
        assert not _overlap(boxes["train"], boxes["val"]) and not _overlap(boxes["val"], boxes["test"])
        # the first test crop of this photo matches a naive area-resampled crop of its box
        x0, y0, x1, y1 = boxes["test"][0]
        naive = F.interpolate(photo[None, :, y0:y1, x0:x1], size=(32, 32), mode="area")[0]
        order = np.random.default_rng([textures.SPLIT_SEED, SPLITS.index("test")]).permutation(len(b.test))
        pos = int(np.flatnonzero(order == label * textures.PER_CLASS["test"])[0])
        assert int(b.test.labels[pos]) == label
        assert (b.test.images[pos].float() - naive).abs().mean() < 6.0


def test_corruption_severity_is_monotone(source_bundle) -> None:
    clean = source_bundle.test.images[:32]
    for name in CORRUPTIONS:
        dist = [(corrupt(clean, name, s, seed=1).float() - clean.float()).abs().mean().item() for s in range(1, 6)]
        assert all(a < b for a, b in itertools.pairwise(dist)), (name, dist)
        assert torch.equal(corrupt(clean, name, 3, seed=1), corrupt(clean, name, 3, seed=1))


def test_source_c_splits_the_corrupted_test_set(source_bundle) -> None:
    b = load_data("mini:source-c:contrast:4")
    _check_layout(b, 48)
    assert b.info["corruption"] == "contrast" and b.info["severity"] == 4
    assert sum(b.info["sizes"].values()) == len(source_bundle.test)
    pooled = torch.cat([b.split(s).labels for s in SPLITS])
    assert torch.equal(torch.bincount(pooled, minlength=48), torch.bincount(source_bundle.test.labels, minlength=48))
    again = load_data("mini:source-c:contrast:4")  # from the cache now, and the same as built from scratch
    assert again.info["cache_hit"] is True and Path(again.info["cache"]).is_file()
    naive = split_pool(corrupt(source_bundle.test.images, "contrast", 4, seed=list(CORRUPTIONS).index("contrast")),
                       source_bundle.test.labels.numpy())
    for s in SPLITS:
        assert torch.equal(again.split(s).images, naive[s][0]) and torch.equal(again.split(s).labels, naive[s][1])
    assert shifted.parse("") == ("gaussian_noise", 5)
    assert shifted.parse("snow") == ("snow", 5)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("mini:nope", "source, digits, textures, faces, source-c, novel"),
        ("mini", "choose one of"),
        ("mini:source-c:fog", "gaussian_noise, motion_blur, contrast, snow, speckle_noise"),
        ("mini:source-c:snow:6", "1 to 5"),
        ("mini:source-c:snow:0", "1 to 5"),
        ("mini:source-c:snow:x", "1 to 5"),
        ("mini:source-c:snow:2:1", "at most"),
        ("mini:digits:3", "takes no argument"),
        ("mini:source:abc", "integer seed"),
    ],
)
def test_bad_specs(spec: str, needle: str) -> None:
    with pytest.raises(VitplastError, match=needle):
        load_data(spec)


def test_real_loaders_ignore_context() -> None:
    assert real.load_digits("", DataContext(input_size=224)).train.images.shape[-1] == 32


@pytest.mark.parametrize("target", ALL_SETS)
def test_analyze_end_to_end(target: str, tmp_path: Path, source_bundle) -> None:
    pytest.importorskip("vitplast.cli.analyze")
    from vitplast.cli import main

    out = tmp_path / "out"
    args = ["analyze", "--model", "timm:vit_micro_patch4_32", "--random-weights", "--source", "mini:source"]
    main([*args, "--target", target, "--pairs", "8", "--out", str(out)])
    import pandas as pd

    table = pd.read_csv(out / "plasticity.csv")
    assert len(table) == 30 and set(table["component"]) == {"ln1", "mha", "ln2", "fc1", "fc2"}
    assert (table["n_pairs"] == 8).all() and np.isfinite(table["mean"]).all()
