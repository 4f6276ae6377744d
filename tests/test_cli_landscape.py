"""``vitplast landscape`` from the command line: outputs on disk and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.test_train_cli import cli

SMALL = ["--model", "timm:vit_micro_patch4_32", "--random-weights", "--data", "random:12", "--steps", "3",
         "--grid", "3", "--batch-size", "4", "--eval-images", "6", "--device", "cpu"]


def test_landscape_writes_csvs_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ls"
    code, stdout, err = cli(["landscape", *SMALL, "--groups", "ln1,fc2", "--out", str(out)], capsys)
    assert code == 0, err
    grid = pd.read_csv(out / "landscape.csv")
    traj = pd.read_csv(out / "trajectory.csv")
    rec = json.loads((out / "landscape.json").read_text())
    assert list(grid.columns) == ["group", "alpha", "beta", "loss"] and grid.groupby("group").size().to_dict() == {
        "ln1": 9, "fc2": 9}
    assert traj.groupby("group")["step"].max().to_dict() == {"ln1": 3, "fc2": 3}
    assert [g["group"] for g in rec["groups"]] == ["ln1", "fc2"] and len(rec["groups"][0]["explained_variance"]) == 2
    assert rec["evaluation_set"]["n_images"] == 6 and rec["data"]["spec"] == "random:12"
    assert (out / "landscape.png").stat().st_size > 1000
    assert "ln1: loss" in stdout and "fc2: loss" in stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--train", "head"], "--train 'head' is not a component group"),
        (["--groups", "mha,attn"], "--groups 'attn' is not a component group"),
        (["--train", "full"], "is not a component group"),
        (["--grid", "2"], "--grid must be >= 3"),
        (["--grid", "4"], "--grid must be odd"),
        (["--steps", "2"], "--steps must be >= 3"),
        (["--train", "mha", "--groups", "ln1"], "not both"),
        (["--batch-size", "50"], "larger than the train split"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ls"
    code, _, err = cli(["landscape", *SMALL, *extra, "--out", str(out)], capsys)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []
