"""``vitplast analyze`` end to end: outputs, image conversion, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vitplast.cli import main

MICRO = ["--model", "timm:vit_micro_patch4_32", "--random-weights"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def make_folder(root: Path, n_per_class: int = 4) -> Path:
    """Class folders with images in many modes and sizes: RGB, L, RGBA, P, 1-bit, CMYK; 20x30 to 64x40."""
    rng = np.random.default_rng(0)
    modes = ["RGB", "L", "RGBA", "P", "1", "CMYK"]
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            w, h = int(rng.integers(20, 65)), int(rng.integers(20, 65))
            arr = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            img = Image.fromarray(arr).convert(modes[i % len(modes)])
            img.save(root / c / f"{i}.png" if img.mode != "CMYK" else root / c / f"{i}.jpg")
    return root


def test_analyze_writes_table_json_and_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_folder(tmp_path / "imgs", 6)
    out = tmp_path / "out"
    code, stdout, err = run(
        [
            "analyze",
            *MICRO,
            "--source",
            "random",
            "--target",
            f"folder:{folder}",
            "--target-split",
            "all",
            "--pairs",
            "16",
            "--batch-size",
            "5",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    table = pd.read_csv(out / "plasticity.csv")
    assert list(table.columns) == [
        "model", "layer", "component", "mean", "std", "ci95", "n_pairs", "rel_mean", "rel_ci95"
    ]
    assert len(table) == 6 * 5 and (table["model"] == "timm:vit_micro_patch4_32").all()
    rec = json.loads((out / "plasticity.json").read_text())
    assert rec["pairs_used"] == 12 == table["n_pairs"].iloc[0] and rec["pairs_skipped"] == 0  # all 12 images
    assert rec["config"]["seed"] == 0 and "torch" in rec["versions"] and rec["seconds_measure"] > 0
    assert Image.open(out / "plasticity.png").size[0] > 400
    for comp in ("LN1", "MHA", "LN2", "FC1", "FC2"):
        assert comp in stdout
    assert not list(tmp_path.glob(".out.staging-*"))


def test_insitu_mode_and_seeded_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["analyze", *MICRO, "--source", "random:40", "--target", "random:40", "--pairs", "12"]
    assert run([*args, "--mode", "insitu", "--out", str(tmp_path / "a")], capsys)[0] == 0
    assert run([*args, "--mode", "insitu", "--out", str(tmp_path / "b")], capsys)[0] == 0
    assert run([*args, "--mode", "insitu", "--seed", "3", "--out", str(tmp_path / "c")], capsys)[0] == 0
    a, b, c = (pd.read_csv(tmp_path / k / "plasticity.csv") for k in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["mean"], c["mean"])


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--model", "nonsense"], "unknown model spec"),
        (["--model", "timm:vit_micro_patch4_32", "--random-weights", "--target", "nope:x"], "unknown data spec"),
        ([*MICRO, "--target", "folder:/no/such/dir"], "does not exist"),
        ([*MICRO, "--mode", "sideways"], "--mode must be one of embedding, insitu"),
        ([*MICRO, "--pairs", "1"], "--pairs must be >= 2"),
        ([*MICRO, "--source", "random:1", "--target", "random:1"], "fewer than 2 pairs"),
        ([*MICRO, "--device", "cuda:7"], "cuda"),
        ([*MICRO, "--pairs", "many"], "Invalid value"),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], match: str
) -> None:
    out = tmp_path / "out"
    code, _, err = run(["analyze", "--source", "random", "--target", "random", *extra, "--out", str(out)], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip() and "━" not in ln]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_unreadable_image_and_identical_streams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_folder(tmp_path / "imgs")
    (folder / "cat" / "broken.png").write_bytes(b"not an image at all")
    out = tmp_path / "out"
    code, _, err = run(
        [
            "analyze",
            *MICRO,
            "--source",
            "random",
            "--target",
            f"folder:{folder}",
            "--order",
            "sorted",
            "--target-split",
            "all",
            "--pairs",
            "20",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2 and "unreadable image" in err and "broken.png" in err and not out.exists()
    # identical source and target: every pair has ||X - Y|| = 0 -> skipped -> not enough usable pairs
    code, _, err = run(
        [
            "analyze",
            *MICRO,
            "--source",
            "random:8",
            "--target",
            "random:8",
            "--order",
            "sorted",
            "--pairs",
            "8",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2 and "usable pairs" in err and "8 skipped" in err and not out.exists()


def test_help_explains(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["analyze", "--help"], capsys)
    assert code == 0 and "--pairs" in out and "embedding" in out
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "analyze" in out
