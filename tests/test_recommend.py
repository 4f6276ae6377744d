"""``recommend``: budgets, greedy sets, successive halving, the CLI end to end and its bad input."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.test_cli_analyze import run
from tests.tiny_models import tiny_train_vit
from vitplast.errors import VitplastError
from vitplast.selectors.base import Scores
from vitplast.selectors.config import default_selectors
from vitplast.selectors.recommend import RecommendConfig, budget_set, candidates, halving_schedule

SIZES = {"embed": 50, "ln1": 4, "mha": 300, "ln2": 4, "fc1": 300, "fc2": 290}


@pytest.mark.parametrize("budget", [0, 3, 8, 60, 310, 600, 10_000])
def test_budget_set_is_greedy_in_ranking_order(budget: int) -> None:
    s = Scores("x", {"embed": 1.0, "ln1": math.nan, "mha": 5.0, "ln2": 0.5, "fc1": 4.0, "fc2": 3.0})
    chosen = budget_set(s, SIZES, budget)
    assert sum(SIZES[g] for g in chosen) <= budget and "ln1" not in chosen
    ranking = [g for g in s.ranking() if not math.isnan(s.groups[g])]
    for i, g in enumerate(ranking):  # every skipped group did not fit next to the better-ranked chosen ones
        if g not in chosen:
            assert sum(SIZES[h] for h in ranking[:i] if h in chosen) + SIZES[g] > budget
    assert list(chosen) == [g for g in SIZES if g in chosen]  # canonical order


def test_budget_fraction_count_and_bad_values() -> None:
    assert RecommendConfig(budget=0.1).budget_params(1000) == 100
    assert RecommendConfig(budget=1).budget_params(1000) == 1000
    assert RecommendConfig(budget=250).budget_params(1000) == 250
    for bad, msg in [(0, "--budget must be > 0"), (-0.5, "--budget must be > 0"), (1.5, "whole number")]:
        with pytest.raises(VitplastError, match=msg):
            RecommendConfig(budget=bad)
    with pytest.raises(VitplastError, match="--pilot must be > 0"):
        RecommendConfig(pilot=0)
    with pytest.raises(VitplastError, match="unknown selector 'rgn'"):
        RecommendConfig(selectors=("params", "rgn"))


def test_the_index_read_from_the_sources_is_the_registry() -> None:
    """The torch-free index (read from the ``@register`` decorators) holds exactly what importing registers."""
    from vitplast.selectors import REGISTRY, selector_index

    index = selector_index()
    assert {n: info for n, (_, info) in REGISTRY.items()} == index
    assert list(index) == sorted(index, key=lambda n: index[n].order) == list(REGISTRY)
    assert default_selectors("block") == tuple(index)
    assert default_selectors("group") == tuple(n for n in index if n not in ("last-k", "first-k"))


def test_needs_source_is_what_the_selector_needs() -> None:
    """Exactly the selectors marked ``needs_source`` refuse data without source images."""
    from vitplast.selectors import SelectorData, score, selector_index

    vit = tiny_train_vit()
    data = SelectorData(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]), 2)
    for name, info in selector_index().items():
        if info.needs_source:
            with pytest.raises(VitplastError, match="needs source images"):
                score(name, vit, data)
        else:
            assert score(name, vit, data).selector == name


def test_docs_table_rows_are_the_registry() -> None:
    """docs/selectors.md lists every selector, in table order, its formula cell being the registry's formula."""
    from vitplast.selectors import selector_index

    text = (Path(__file__).resolve().parents[1] / "docs" / "selectors.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \| `([^`]*)` \|", text, flags=re.M)
    assert rows == [(n, i.formula) for n, i in selector_index().items()]


def test_halving_and_candidates() -> None:
    assert halving_schedule(4, 5) == [(4, 5), (2, 10), (1, 20)]
    assert halving_schedule(3, 5) == [(3, 5), (2, 10), (1, 20)]
    assert halving_schedule(1, 7) == [(1, 7)]
    sets = {"a": ("ln1",), "b": ("mha",), "c": ("mha",), "d": (), "e": ("fc1",)}
    assert candidates(sets, 4) == [("mha",), ("ln1",), ("fc1",)]
    assert candidates(sets, 2) == [("mha",), ("ln1",)]


def test_recommend_cli_end_to_end_with_pilot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, exp = tmp_path / "rec", tmp_path / "exp"
    code, stdout, err = run(["recommend", "--model", "timm:vit_micro_patch4_32", "--random-weights", "--data", "random:24",
                             "--selectors",
                             "params,grad-norm,random", "--images", "8", "--budget", "0.4", "--pilot", "1",
                             "--candidates", "2", "--out", str(out), "--export", str(exp)], capsys)
    assert code == 0, err
    rec = json.loads((out / "recommend.json").read_text())
    table = pd.read_csv(out / "recommend.csv")
    assert len(table) == 3 * 6 and (out / "recommend.png").stat().st_size > 0
    sets = {n: tuple(v["set"]) for n, v in rec["selectors"].items()}
    assert all(sum(rec["group_params"][g] for g in s) <= rec["budget_params"] for s in sets.values())
    assert rec["budget_params"] == math.floor(0.4 * rec["backbone_params"])
    pilot = pd.DataFrame(rec["pilot"])
    cands = candidates(sets, 2)
    assert list(pilot["round"]) == [0] * len(cands) + ([1] if len(cands) > 1 else [])
    last = pilot[pilot["round"] == pilot["round"].max()]
    assert rec["winner"] == last["groups"].iloc[0].split(",") and tuple(rec["winner"]) in cands
    first = pilot[pilot["round"] == 0]
    assert first.loc[first["val_acc"].idxmax(), "kept"]
    names = (exp / "trainable_parameters.txt").read_text().split()
    assert names and all(n.startswith(("head", "norm.")) or any(f".{g}" in n for g in ("attn", "norm", "mlp"))
                         or n.startswith(("patch_embed", "cls_token", "pos_embed")) for n in names)
    assert "won the pilot" in stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--selectors", "params,nope"], "unknown selector 'nope'"),
        (["--budget", "0"], "--budget must be > 0"),
        (["--budget", "1.5"], "whole number"),
        (["--pilot", "0"], "--pilot must be > 0"),
        (["--pilot", "-3"], "--pilot must be > 0"),
    ],
)
def test_recommend_bad_input(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["recommend", "--out", str(tmp_path / "o"), *argv], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "o").exists()


def test_export_cli_and_unknown_group(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["export", "--model", "timm:vit_micro_patch4_32", "--random-weights", "--train", "attn",
                        "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "unknown trainable group 'attn'" in err and not (tmp_path / "x").exists()
    code, _, err = run(["export", "--model", "timm:vit_micro_patch4_32", "--random-weights", "--train", "fc1,ln2",
                        "--out", str(tmp_path / "y")], capsys)
    assert code == 0, err
    names = (tmp_path / "y" / "trainable_parameters.txt").read_text().split()
    assert {n.split(".")[-2] for n in names if n.startswith("blocks.")} == {"fc1", "norm2"}
    assert (tmp_path / "y" / "peft" / "adapter_config.json").is_file()
