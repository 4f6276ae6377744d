"""The graded mini targets (docs/mini-targets.md): glyphs from held-out fonts, relation tasks on held-out shapes,
corrupted versions of textures / novel: determinism, disjoint sources, balance, sizes, labels that mean what they say."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from vitplast.data import DataContext, load_data
from vitplast.data.mini import glyphs, relations, shifted
from vitplast.data.mini.corruptions import CORRUPTIONS, corrupt
from vitplast.errors import VitplastError
from vitplast.suites.mini import GRADED_TARGETS

SPLITS = ("train", "val", "test")


def _small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glyphs, "PER_FACE", {"train": 2, "val": 1, "test": 3})
    monkeypatch.setattr(relations, "PER_CLASS", {t: {"train": 6, "val": 2, "test": 4} for t in relations.TASKS})


def test_declared_sizes_reach_1000_test_images() -> None:
    """The full-size constants give >= 1,000 test images for every graded target of the suite list."""
    for script, chars in glyphs.SCRIPTS.items():
        n_test = len(chars) * glyphs.PER_FACE["test"] * len(glyphs.FACES["test"])
        assert n_test >= 1000 or f"mini:{script}" not in GRADED_TARGETS
    for task in relations.TASKS:
        assert len(relations.CLASSES[task]) * relations.PER_CLASS[task]["test"] >= 1000
    assert len(GRADED_TARGETS) >= 9 and len(set(GRADED_TARGETS)) == len(GRADED_TARGETS)


def test_fonts_are_disjoint_across_splits_and_cover_every_character() -> None:
    from matplotlib.ft2font import FT2Font

    faces = [set(glyphs.FACES[s]) for s in SPLITS]
    assert all(not (a & b) for a, b in itertools.combinations(faces, 2))
    for face in set().union(*faces):
        charmap = FT2Font(str(glyphs.font_path(face))).get_charmap()
        assert all(ord(c) in charmap for chars in glyphs.SCRIPTS.values() for c in chars), face
    # the same letter from a train font and a test font is a different outline
    a, b = glyphs.glyph_mask(glyphs.FACES["train"][0], "G"), glyphs.glyph_mask(glyphs.FACES["test"][0], "G")
    assert np.abs(a - b).mean() > 0.05


def test_glyph_mask_is_the_ink_cropped_and_centred() -> None:
    m = glyphs.glyph_mask("DejaVuSans.ttf", "I")  # a tall thin bar: fills the height, centred horizontally
    assert m.shape == (glyphs.ATLAS, glyphs.ATLAS) and m.min() >= 0.0 and m.max() <= 1.0
    rows, cols = np.flatnonzero(m.max(1) > 0.5), np.flatnonzero(m.max(0) > 0.5)
    assert rows[0] <= 1 and rows[-1] >= glyphs.ATLAS - 2
    assert abs((cols[0] + cols[-1]) / 2 - (glyphs.ATLAS - 1) / 2) <= 1.0


def test_warp_keeps_ink_and_moves_it() -> None:
    """The warp is a similarity + shear of the mask: the ink area scales with scale^2 (shear keeps area)."""
    mask = np.zeros((1, glyphs.ATLAS, glyphs.ATLAS), np.float32)
    mask[0, 16:48, 16:48] = 1.0  # a square covering 1/4 of the atlas
    rng = np.random.default_rng(0)
    out = glyphs.warp(np.repeat(mask, 64, 0), rng)
    area = out.sum(axis=(1, 2)) / glyphs.SIZE**2
    rng = np.random.default_rng(0)
    scale = rng.uniform(*glyphs.SCALE, 64)
    np.testing.assert_allclose(area, scale**2 / 4, rtol=0.08, atol=0.002)


@pytest.mark.parametrize("spec", ["mini:greek", "mini:position"])
def test_targets_are_deterministic_balanced_and_disjoint(
    spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small(monkeypatch)
    a = load_data(spec, DataContext(root=tmp_path / "a"))
    b = load_data(spec, DataContext(root=tmp_path / "b"))
    again = load_data(spec, DataContext(root=tmp_path / "a"))
    assert again.info["cache_hit"] is True and a.info["cache_hit"] is False
    k = a.num_classes
    for s in SPLITS:
        x, y = a.split(s).images, a.split(s).labels
        assert torch.equal(x, b.split(s).images) and torch.equal(y, b.split(s).labels)
        assert torch.equal(x, again.split(s).images)
        assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, 32, 32)
        counts = torch.bincount(y, minlength=k)
        assert counts.min() == counts.max() == len(y) // k
    assert not torch.equal(a.train.images[:4], a.test.images[:4])


def test_glyph_sizes_follow_faces_and_per_face(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _small(monkeypatch)
    b = load_data("mini:digit-glyphs", DataContext(root=tmp_path))
    for s in SPLITS:
        assert b.info["sizes"][s] == 10 * len(glyphs.FACES[s]) * glyphs.PER_FACE[s]
        assert b.info["faces"][s] == list(glyphs.FACES[s])
    assert [c[-1] for c in b.classes] == list("0123456789")


def test_position_scenes_put_b_where_the_label_says() -> None:
    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    for label, name in enumerate(relations.CLASSES["position"]):
        for _ in range(20):
            (cov_a, hue_a), (cov_b, hue_b) = relations._scene("position", label, [0, 1, 2, 3, 4, 5], rng)
            assert (hue_a < 0.05 or hue_a > 0.95) and 0.55 <= hue_b <= 0.70
            ca = np.array([(xs * cov_a).sum(), (ys * cov_a).sum()]) / cov_a.sum()
            cb = np.array([(xs * cov_b).sum(), (ys * cov_b).sum()]) / cov_b.sum()
            dx, dy = cb - ca
            angle = np.degrees(np.arctan2(dy, dx) - relations.DIRECTIONS[name])
            assert abs((angle + 180) % 360 - 180) <= relations.POSITION_SPREAD + 8, (name, dx, dy)
            assert (cov_a * cov_b).max() == 0.0  # the two never touch


def test_count_scenes_hold_that_many_separate_objects() -> None:
    rng = np.random.default_rng(4)
    for label in range(5):
        for _ in range(10):
            objects = relations._scene("count", label, [0, 1, 2], rng)
            assert len(objects) == label + 1
            for (a, _), (b, _) in itertools.combinations(objects, 2):
                assert (a * b).max() == 0.0
            for cov, _ in objects:
                assert cov.sum() > 4.0  # each object is visible
                assert cov[:2].max() == cov[-2:].max() == cov[:, :2].max() == cov[:, -2:].max() == 0.0


def test_split_shapes_are_disjoint() -> None:
    shapes = [set(relations.SPLIT_SHAPES[s]) for s in SPLITS]
    assert all(not (a & b) for a, b in itertools.combinations(shapes, 2))


def test_graded_corruption_corrupts_every_split(monkeypatch: pytest.MonkeyPatch) -> None:
    base = load_data("mini:textures")
    b = load_data("mini:textures-c:contrast:3")
    assert b.name == "mini:textures-c:contrast:3" and b.classes == base.classes
    index = list(CORRUPTIONS).index("contrast")
    for k, s in enumerate(SPLITS):
        naive = corrupt(base.split(s).images, "contrast", 3, seed=3 * index + k)
        assert torch.equal(b.split(s).images, naive) and torch.equal(b.split(s).labels, base.split(s).labels)
    assert load_data("mini:textures-c:contrast:3").info["cache_hit"] is True
    assert shifted.parse("", "novel-c") == ("gaussian_noise", 5)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("mini:latin:2", "takes no argument"),
        ("mini:count:x", "takes no argument"),
        ("mini:novel-c:fog", "unknown corruption"),
        ("mini:textures-c:snow:2:1", "mini:textures-c takes at most"),
        ("mini:novel-c:snow:9", "1 to 5"),
    ],
)
def test_bad_target_specs(spec: str, needle: str) -> None:
    with pytest.raises(VitplastError, match=needle):
        load_data(spec)
