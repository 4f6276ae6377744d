"""``vitplast landscape`` on unit sets (docs/selectors.md, "Units"; docs/landscape.md): the tensors trained, the
names recorded, whole groups unchanged, and every bad unit set refused in one line before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_cli_landscape import SMALL
from tests.test_train_cli import cli
from tests.tiny_models import tiny_timm
from vitplast.data import DataContext, load_data
from vitplast.errors import VitplastError
from vitplast.export import select
from vitplast.landscape import LandscapeConfig, LandscapeResult, compute_landscape
from vitplast.landscape.config import panel
from vitplast.landscape.result import title
from vitplast.models import ViT, as_vit

DEPTH = 3  # of the tiny model below; SMALL's timm:vit_micro_patch4_32 has 6 blocks


def _vit() -> ViT:
    return as_vit(tiny_timm(img=16, num_classes=10, depth=DEPTH), "tiny")


def _run(groups: tuple[str, ...], vit: ViT | None = None) -> LandscapeResult:
    cfg = LandscapeConfig(groups=groups, steps=3, grid=3, batch_size=8, eval_images=8, lr=0.5, device="cpu", seed=2)
    return compute_landscape(cfg, model=vit or _vit(), data=load_data("random:16", DataContext(input_size=16)))


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [("mha", "mha"), ("mha@2,0-1", "mha@0-2"), ("ln2,mha@3,1", "mha@1,3+ln2"), ("ln2+mha@1", "mha@1+ln2"),
     ("ln1@4,0,2", "ln1@0,2,4"), ("fc1@11 , embed", "embed+fc1@11")],
)
def test_a_panel_is_recorded_in_canonical_form(spec: str, canonical: str) -> None:
    assert panel(spec) == canonical and LandscapeConfig(groups=(spec,)).groups == (canonical,)


def test_titles_name_each_part() -> None:
    assert title("mha") == "MHA" and title("mha@8-11+ln2") == "MHA@8-11 + LN2" and title("ln1@0,2") == "LN1@0,2"


def test_a_unit_set_trains_exactly_the_tensors_finetuning_trains(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tensors SGD updates, and the only tensors that require a gradient meanwhile, are those
    ``export.select`` (the finetuning set) names for the same set, head excluded; naive check: the MHA tensors of
    blocks 0 and 2 are the whole group's tensors of those blocks."""
    vit = _vit()
    names = {id(p): n for n, p in vit.module.named_parameters()}
    seen: list[tuple[list[str], list[str]]] = []
    real = torch.optim.SGD

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, params: list[torch.nn.Parameter], **kw: float) -> None:
            grads = [n for n, p in vit.module.named_parameters() if p.requires_grad]
            seen.append(([names[id(p)] for p in params], grads))
            super().__init__(params, **kw)

    monkeypatch.setattr(torch.optim, "SGD", Spy)
    res = _run(("ln2,mha@2,0", "fc1@1"), vit)
    expected = [sorted(select(_vit().module, s, head=False)) for s in ("mha@0,2,ln2", "fc1@1")]
    assert [sorted(trained) for trained, _ in seen] == expected
    assert [sorted(grads) for _, grads in seen] == expected
    whole = select(_vit().module, "mha", head=False)
    assert [n for n in seen[0][0] if ".attn." in n] == [n for n in whole if n.startswith(("blocks.0.", "blocks.2."))]
    sizes = dict(_vit().module.named_parameters())
    assert [g.n_params for g in res.groups] == [sum(sizes[n].numel() for n in e) for e in expected]
    assert [g.group for g in res.groups] == ["mha@0,2+ln2", "fc1@1"]


def test_a_unit_set_of_every_block_is_the_whole_group_with_the_same_numbers() -> None:
    whole, units = _run(("mha", "ln1")), _run((f"mha@0-{DEPTH - 1}", f"ln1@{','.join(map(str, range(DEPTH)))}"))
    assert units.config.groups == ("mha", "ln1") and [g.group for g in units.groups] == ["mha", "ln1"]
    for a, b in zip(whole.groups, units.groups, strict=True):
        assert np.array_equal(a.loss, b.loss) and np.array_equal(a.coords, b.coords) and a.n_params == b.n_params
    assert whole.landscape_table().equals(units.landscape_table())


def test_a_whole_group_panel_does_not_depend_on_the_unit_panels_beside_it() -> None:
    """Every panel starts from the same weights, head and batches: ``mha`` next to unit sets equals ``mha`` alone."""
    alone, mixed = _run(("mha",)), _run(("ln1@1", "mha", "fc2@0+ln2"))
    assert np.array_equal(alone.groups[0].loss, mixed.groups[1].loss)
    assert np.array_equal(alone.groups[0].trajectory_loss, mixed.groups[1].trajectory_loss)
    assert mixed.groups[0].n_params < mixed.groups[1].n_params and mixed.groups[0].distance > 0


def test_block_indices_are_checked_before_any_training() -> None:
    with pytest.raises(VitplastError, match=f"mha@{DEPTH}: tiny has {DEPTH} blocks"):
        _run(("ln1", f"mha@{DEPTH}"))
    with pytest.raises(VitplastError, match="twice"):
        _run(("mha", f"mha@0-{DEPTH - 1}"))


def test_the_cli_records_the_canonical_sets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ls"
    code, stdout, err = cli(["landscape", *SMALL, "--groups", "ln1@2,0,mha@5+ln2", "--out", str(out)], capsys)
    assert code == 0, err
    sets = ["ln1@0,2", "mha@5+ln2"]
    assert list(pd.read_csv(out / "landscape.csv")["group"].unique()) == sets
    assert list(pd.read_csv(out / "trajectory.csv")["group"].unique()) == sets
    rec = json.loads((out / "landscape.json").read_text())
    assert rec["config"]["groups"] == sets and [g["group"] for g in rec["groups"]] == sets
    assert "ln1@0,2: loss" in stdout and "mha@5+ln2: loss" in stdout
    code, stdout, err = cli(["landscape", *SMALL, "--train", "ln2,mha@5", "--out", str(tmp_path / "one")], capsys)
    assert code == 0, err
    assert [g["group"] for g in json.loads((tmp_path / "one" / "landscape.json").read_text())["groups"]] == ["mha@5+ln2"]


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--train", "mha@6", "mha@6: timm:vit_micro_patch4_32 has 6 blocks, numbered 0-5"),
        ("--groups", "ln1,mha@4-6", "mha@6: timm:vit_micro_patch4_32 has 6 blocks"),
        ("--train", "mha@3-1", "--train: 'mha': the block range 3-1 runs backwards"),
        ("--groups", "ln1,mha@3-1", "--groups: 'mha': the block range 3-1 runs backwards"),
        ("--train", "mha@", "--train: 'mha@' names no block"),
        ("--groups", "mha@,ln1", "--groups: 'mha@' names no block"),
        ("--groups", "@3", "--groups: '@3' names no component"),
        ("--train", "mha@1-3,2", "names block 2 of 'mha' twice"),
        ("--train", "mha,mha@2", "names 'mha' twice"),
        ("--groups", "mha,mha", "--groups lists a group twice"),
        ("--groups", "mha,mha@0-5", "--groups lists a group twice"),
        ("--groups", "mha,3", "block '3' follows no COMPONENT@BLOCKS unit"),
        ("--train", "full@2", "--train 'full' is not a component group"),
        ("--groups", "ln-control@1", "--groups 'ln-control' is not a component group"),
        ("--groups", "mha,full", "--groups 'full' is not a component group"),
        ("--train", "embed@1", "'embed' belongs to no block"),
    ],
)
def test_bad_unit_sets_are_one_line_exit_2_and_write_nothing(
    flag: str, value: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ls"
    code, _, err = cli(["landscape", *SMALL, flag, value, "--out", str(out)], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []
