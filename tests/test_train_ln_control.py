"""The ``ln-control`` group: a random, LayerNorm-sized subset of each block's linear entries is all that trains."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tests.tiny_models import tiny_train_data as tiny_data
from tests.tiny_models import tiny_train_vit as tiny_vit
from vitplast.errors import VitplastError
from vitplast.models.vit import ViT
from vitplast.train import finetune, freeze_except, parse_groups
from vitplast.train.config import TrainConfig
from vitplast.train.groups import control_masks, mask_gradients
from vitplast.train.optim import make_optimizer

BLOCK = re.compile(r"blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)$")


def naive_counts(vit: ViT) -> tuple[dict[int, int], dict[int, int]]:
    """LN1 (``norm1``: gamma and beta) and linear entries per block, from timm's parameter names."""
    ln: dict[int, int] = {}
    linear: dict[int, int] = {}
    for name, p in vit.module.named_parameters():
        m = BLOCK.search(name)
        if m:
            if m.group(2).startswith("norm1"):
                target = ln
            elif m.group(2).startswith("norm"):
                continue
            else:
                target = linear
            target[int(m.group(1))] = target.get(int(m.group(1)), 0) + p.numel()
    return ln, linear


def selected_by_block(vit: ViT, seed: int) -> dict[int, int]:
    ids = {id(p): int(m.group(1)) for n, p in vit.module.named_parameters() if (m := BLOCK.search(n))}
    out: dict[int, int] = {}
    for p, m in control_masks(vit, seed):
        assert set(m.unique().tolist()) <= {0.0, 1.0} and m.shape == p.shape
        out[ids[id(p)]] = out.get(ids[id(p)], 0) + int(m.sum())
    return out


def test_parse_ln_control_alone_only() -> None:
    assert parse_groups("ln-control") == ("ln-control",)
    assert TrainConfig(model="m", data="d", train="ln-control").train == ("ln-control",)
    for bad in ("ln-control,mha", "ln1,ln-control", "full,ln-control"):
        with pytest.raises(VitplastError):
            parse_groups(bad)


def test_export_refuses_the_control_group() -> None:
    from vitplast.export import select

    vit = tiny_vit()
    with pytest.raises(VitplastError, match="random subset"):
        select(vit, "ln-control")
    assert all(p.requires_grad for p in vit.module.parameters())  # nothing was changed


def test_mask_size_matches_layernorms_per_block_and_covers_only_linear_tensors() -> None:
    vit = tiny_vit()
    ln, linear = naive_counts(vit)
    assert ln == {0: 32, 1: 32} and linear  # one LayerNorm: (gamma + beta) x width 16
    assert selected_by_block(vit, 0) == ln
    masked = {id(p) for p, _ in control_masks(vit, 0)}
    names = {n for n, p in vit.module.named_parameters() if id(p) in masked}
    assert names == {n for n, _ in vit.module.named_parameters() if BLOCK.search(n) and "norm" not in n}


def test_mask_depends_on_the_seed_only() -> None:
    vit = tiny_vit()
    a, b, c = (torch.cat([m.flatten() for _, m in control_masks(vit, s)]) for s in (3, 3, 4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.cat([m.flatten() for _, m in control_masks(tiny_vit(seed=5), 3)]), a)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("device", [torch.device("cpu"), None])  # fused and foreach implementations
def test_optimizers_never_move_unselected_entries(optimizer: str, device: torch.device | None) -> None:
    vit = tiny_vit()
    vit.reset_head(3)
    params = [p for ps in freeze_except(vit, ("ln-control",)).values() for p in ps]
    masks = control_masks(vit, 0)
    before = {id(p): p.detach().clone() for p in params}
    cfg = TrainConfig(model="m", data="d", optimizer=optimizer, weight_decay=0.5, lr=0.1)
    opt = make_optimizer(params, cfg, device, no_decay=[p for p, _ in masks])
    for _ in range(3):
        for p in params:
            p.grad = torch.randn_like(p)
        mask_gradients(masks)
        opt.step()
    for p, m in masks:
        keep = m == 0
        assert torch.equal(p.detach()[keep], before[id(p)][keep])
        assert (p.detach()[~keep] != before[id(p)][~keep]).all()


@pytest.mark.parametrize(("optimizer", "wd"), [("sgd", 0.0), ("adamw", 0.1)])
def test_training_changes_only_the_selected_entries_and_reports_their_count(optimizer: str, wd: float) -> None:
    vit = tiny_vit()
    before = {n: p.detach().clone() for n, p in vit.module.named_parameters()}
    res = finetune(vit, tiny_data(40), "ln-control", steps=3, batch_size=8, eval_every=3, lr=0.1, seed=7,
                   optimizer=optimizer, weight_decay=wd, device="cpu")
    masks = {id(p): m for p, m in control_masks(vit, 7)}
    head_ids = {id(p) for p in vit.param_groups()["head"]}  # final norm and new classifier
    changed_selected = 0
    for name, p in vit.module.named_parameters():
        if id(p) in head_ids:
            continue
        now = p.detach()
        if id(p) not in masks:
            assert torch.equal(now, before[name]), f"{name} changed"
            continue
        keep = masks[id(p)] == 0
        assert torch.equal(now[keep], before[name][keep]), f"unselected entries of {name} changed"
        changed_selected += int((now[~keep] != before[name][~keep]).sum())
    n_selected = sum(int(m.sum()) for m in masks.values())
    assert changed_selected > n_selected // 2  # (some entries, e.g. key biases, get no gradient at all)
    head = sum(p.numel() for p in vit.param_groups()["head"])
    assert res.result["trainable_params_per_group"] == {"ln-control": 64, "head": head}
    assert res.result["trainable_params"] == 64 + head
    assert res.result["train"] == "ln-control"


def test_resumed_run_rebuilds_the_mask_and_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    from tests.test_train_resume import Interrupt, rows, run
    from tests.test_train_resume import tiny_vit as dropout_vit
    from vitplast.train.evaluate import load_run_model

    ref, ref_final = run(tmp_path / "a", train="ln-control")
    with pytest.raises(Interrupt):
        run(tmp_path / "b", stop_at=8, train="ln-control")  # resumes from the checkpoint at step 6
    res, final = run(tmp_path / "b", resume=True, train="ln-control")
    assert final.keys() == ref_final.keys() and all(torch.equal(final[k], ref_final[k]) for k in ref_final)
    assert rows(tmp_path / "b") == rows(tmp_path / "a")
    assert res["trainable_params"] == ref["trainable_params"]
    # the finished run's model loads (same frozen tensors) and keeps the unselected entries of its base model
    base = dropout_vit()
    loaded = load_run_model(tmp_path / "b", dropout_vit())
    moved = 0
    for (p0, m), p1 in zip(control_masks(base, 5), (p for p, _ in control_masks(loaded, 5)), strict=True):
        assert torch.equal(p1.detach()[m == 0], p0.detach()[m == 0])
        moved += int((p1.detach()[m == 1] != p0.detach()[m == 1]).sum())
    assert moved > 0
