"""Resuming: an interrupted run continued with resume=True ends exactly like an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from vitplast.data import DataBundle, TensorImageSet
from vitplast.errors import VitplastError
from vitplast.models import as_vit
from vitplast.models.vit import ViT
from vitplast.train import finetune
from vitplast.train.checkpoint import load_tensors, load_torch


def tiny_vit() -> ViT:
    torch.manual_seed(0)
    # dropout makes the run depend on the global random state, which resuming must restore
    m = VisionTransformer(img_size=16, patch_size=8, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0,
                          num_classes=7, drop_rate=0.1, proj_drop_rate=0.1)
    m.pretrained_cfg = {"input_size": (3, 16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3, "crop_pct": 1.0,
                        "interpolation": "bilinear"}
    return as_vit(m, "tiny")


def tiny_data() -> DataBundle:
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(50) % 4
    images = torch.randint(0, 256, (50, 3, 20, 20), generator=g, dtype=torch.uint8)  # 20 px: crops differ
    return DataBundle.from_single("tiny", [f"c{i}" for i in range(4)], TensorImageSet(images, labels))


class Interrupt(Exception):
    pass


KW = dict(steps=10, batch_size=8, grad_accum=2, eval_every=3, lr=0.05, momentum=0.9, seed=5, device="cpu")


def run(out: Path, stop_at: int | None = None, resume: bool = False, train: str = "mha,ln2") -> tuple[dict, dict]:
    final: dict[str, torch.Tensor] = {}

    def cb(step: int, vit: ViT) -> None:
        if step == stop_at:
            raise Interrupt
        if step == KW["steps"]:
            final.update({k: v.detach().clone() for k, v in vit.module.state_dict().items()})

    res = finetune(tiny_vit(), tiny_data(), train, out=out, resume=resume, callback=cb, **KW)  # type: ignore[arg-type]
    return res.result, final


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path: Path) -> None:
    ref, ref_final = run(tmp_path / "a")
    with pytest.raises(Interrupt):
        run(tmp_path / "b", stop_at=8)  # last checkpoint at step 6; steps 7-8 are redone
    b = tmp_path / "b"
    assert not (b / "result.json").exists() and (b / "last.pt").is_file()
    saved = load_torch(b / "last.pt")
    assert saved["state"]["step"] == 6
    groups = tiny_vit().param_groups()
    n_trainable = sum(len(groups[g]) for g in ("mha", "ln2", "head"))
    assert len(saved["optimizer"]["state"]) == n_trainable  # momentum only for trainable tensors
    # the resume state stores the trainable tensors only
    assert len(saved["weights"]) == n_trainable
    assert all(".attn." in n or ".norm2." in n or n.startswith(("head.", "norm.")) for n in saved["weights"])
    res, final = run(b, resume=True)
    assert final.keys() == ref_final.keys()
    for k in ref_final:
        assert torch.equal(final[k], ref_final[k]), k
    assert rows(b) == rows(tmp_path / "a")  # every logged loss, lr, grad norm and eval identical
    for k in ("best_step", "best_val_acc", "best_val_loss", "test_acc", "test_loss", "trainable_params"):
        assert res[k] == ref[k], k
    best_a, best_b = load_tensors(tmp_path / "a" / "best.safetensors"), load_tensors(b / "best.safetensors")
    assert best_a.keys() == best_b.keys() and all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    assert not (b / "last.pt").exists()


def test_resume_before_first_checkpoint_restarts(tmp_path: Path) -> None:
    _ref, ref_final = run(tmp_path / "a")
    with pytest.raises(Interrupt):
        run(tmp_path / "b", stop_at=2)
    _res, final = run(tmp_path / "b", resume=True)
    assert all(torch.equal(final[k], ref_final[k]) for k in ref_final)
    assert rows(tmp_path / "b") == rows(tmp_path / "a")


def test_resume_of_finished_run_does_not_retrain(tmp_path: Path) -> None:
    ref, _ = run(tmp_path / "a")
    calls: list[int] = []
    res = finetune(tiny_vit(), tiny_data(), "mha,ln2", out=tmp_path / "a", resume=True,
                   callback=lambda s, v: calls.append(s), **KW)  # type: ignore[arg-type]
    assert calls == [] and res.result == ref


def test_resume_refuses_another_config_and_existing_dir_needs_resume(tmp_path: Path) -> None:
    run(tmp_path / "a")
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    with pytest.raises(VitplastError, match="another config"):
        finetune(tiny_vit(), tiny_data(), "mha", out=tmp_path / "a", resume=True, **KW)  # type: ignore[arg-type]
    with pytest.raises(VitplastError, match="already holds a run"):
        finetune(tiny_vit(), tiny_data(), "mha,ln2", out=tmp_path / "a", **KW)  # type: ignore[arg-type]
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == before


def test_resume_refuses_different_base_weights(tmp_path: Path) -> None:
    with pytest.raises(Interrupt):
        run(tmp_path / "b", stop_at=4)
    other = tiny_vit()
    with torch.no_grad():
        other.blocks[0].fc1.weight.add_(1.0)  # frozen in this run
    with pytest.raises(VitplastError, match="frozen weights"):
        finetune(other, tiny_data(), "mha,ln2", out=tmp_path / "b", resume=True, **KW)  # type: ignore[arg-type]


def test_resume_record_is_one_format_for_single_runs_and_bundles() -> None:
    """The record both engines write: the random state at save time (a CPU device stores no CUDA state) and a
    copy of the counters (later steps do not change what was saved)."""
    from dataclasses import dataclass

    import torch

    from vitplast.train.checkpoint import resume_record

    @dataclass
    class Counters:
        step: int = 3

    torch.manual_seed(7)
    state = Counters()
    rec = resume_record({"w": torch.ones(2)}, {"lr": 0.1}, state, torch.device("cpu"))
    assert set(rec) == {"weights", "optimizer", "scaler", "rng", "cuda_rng", "state"}
    assert torch.equal(rec["rng"], torch.get_rng_state()) and rec["cuda_rng"] is None and rec["scaler"] is None
    state.step = 4
    torch.rand(1)
    assert rec["state"] == {"step": 3} and not torch.equal(rec["rng"], torch.get_rng_state())
