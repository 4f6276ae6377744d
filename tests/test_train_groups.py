"""Trainable groups: selection, freezing, counts, and what training does to frozen and trained tensors."""

from __future__ import annotations

import pytest
import torch

from tests.tiny_models import tiny_train_data as tiny_data
from tests.tiny_models import tiny_train_vit as tiny_vit
from vitplast.components import GROUPS
from vitplast.errors import VitplastError
from vitplast.models.vit import ViT
from vitplast.train import finetune, freeze_except, parse_groups, trainable_groups
from vitplast.train.config import TrainConfig
from vitplast.train.optim import make_optimizer

SELECTABLE = ("embed", "ln1", "mha", "ln2", "fc1", "fc2")


def test_parse_groups_canonical_order_and_errors() -> None:
    assert parse_groups("full") == ("full",)
    assert parse_groups("fc2, mha,ln1") == ("ln1", "mha", "fc2")
    assert parse_groups(["ln2", "embed"]) == ("embed", "ln2")
    for bad in ("attn", "head", "", "full,mha", " , "):
        with pytest.raises(VitplastError):
            parse_groups(bad)


@pytest.mark.parametrize("train", [("full",), *[(g,) for g in SELECTABLE], ("mha", "fc1")])
def test_freeze_sets_requires_grad_exactly_on_selected_groups(train: tuple[str, ...]) -> None:
    vit = tiny_vit()
    vit.reset_head(3)
    selected = freeze_except(vit, train)
    groups = vit.param_groups()
    expected = set(GROUPS) if train == ("full",) else {*train, "head"}
    assert set(selected) == expected
    for g, ps in groups.items():
        for p in ps:
            assert p.requires_grad == (g in expected), (g, train)
    # the trainable count of each group is the sum of its parameters' sizes
    for g in expected:
        assert sum(p.numel() for p in selected[g]) == sum(p.numel() for p in groups[g])
    n_trainable = sum(p.numel() for p in vit.module.parameters() if p.requires_grad)
    assert n_trainable == sum(p.numel() for ps in selected.values() for p in ps)


def test_optimizer_holds_only_trainable_parameters() -> None:
    vit = tiny_vit()
    vit.reset_head(3)
    selected = freeze_except(vit, ("ln2",))
    params = [p for ps in selected.values() for p in ps]
    opt = make_optimizer(params, TrainConfig(model="tiny", data="x", optimizer="adamw", weight_decay=0.1))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in params}
    # weight decay only on matrices
    for g in opt.param_groups:
        assert all((p.ndim >= 2) == (g["weight_decay"] > 0) for p in g["params"])


@pytest.mark.parametrize("train", ["ln1", "mha", "fc2", "embed"])
def test_training_changes_only_trainable_tensors_and_frozen_get_no_grad(train: str) -> None:
    vit = tiny_vit()
    before = {n: p.detach().clone() for n, p in vit.module.named_parameters()}
    frozen_grads: list[bool] = []

    def check(step: int, model: ViT) -> None:
        frozen_grads.extend(p.grad is not None for p in model.module.parameters() if not p.requires_grad)

    res = finetune(vit, tiny_data(40), train, steps=3, batch_size=8, eval_every=3, lr=0.1, seed=0,
                   device="cpu", callback=check)
    assert frozen_grads and not any(frozen_grads), "autograd computed gradients for frozen tensors"
    trained = {id(p) for ps in trainable_groups(vit, (train,)).values() for p in ps}
    head = {id(p) for p in vit.param_groups()["head"]}
    assert head <= trained
    for name, p in vit.module.named_parameters():
        if name.startswith("head."):
            assert p.shape[0] == 3  # new head sized to the data set
            continue
        if id(p) in trained:
            assert not torch.equal(p.detach(), before[name]), f"{name} ({train}) did not change"
        else:
            assert torch.equal(p.detach(), before[name]), f"frozen {name} changed"
    groups = vit.param_groups()
    assert res.result["trainable_params_per_group"] == {
        g: sum(p.numel() for p in groups[g]) for g in (train, "head")
    }
    assert res.result["trainable_params"] == sum(p.numel() for p in vit.module.parameters() if p.requires_grad)


def test_full_trains_every_group_including_head() -> None:
    vit = tiny_vit()
    res = finetune(vit, tiny_data(40), "full", steps=2, batch_size=8, eval_every=2, lr=0.1, device="cpu")
    assert set(res.result["trainable_params_per_group"]) == set(GROUPS)
    assert res.result["trainable_params"] == sum(p.numel() for p in vit.module.parameters())
