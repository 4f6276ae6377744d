"""Run bundles (docs/mini-protocol.md, "Run bundles"): a bundled run equals the single run with its config."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.tiny_models import tiny_train_data, tiny_train_vit
from vitplast.errors import VitplastError
from vitplast.train import bundle as bundle_mod
from vitplast.train import finetune
from vitplast.train.bundle import train_bundle
from vitplast.train.checkpoint import load_tensors
from vitplast.train.config import RunOptions, TrainConfig
from vitplast.train.groups import control_masks, freeze_except
from vitplast.train.rundir import RunDir
from vitplast.train.scoring import HITS_FILE, load_hits

GROUPS = ("full", "embed", "ln1", "mha", "ln2", "fc1", "fc2", "ln-control")
#: Measured: losses of bundled and single runs differ by at most 3e-7 relative (fp32 rounding of batched kernels).
REL = 1e-5
CPU = RunOptions(device="cpu")


def config(train: str, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {"model": "tiny", "data": "tiny", "steps": 8, "batch_size": 8, "eval_every": 4,
                            "augment": "crop", "weight_decay": 0.05, "clip": 0.5}
    return TrainConfig(train=train, **{**base, **kw})  # type: ignore[arg-type]


def rows(out: Path) -> list[dict[str, Any]]:
    return RunDir(out).read_metrics()


def assert_same_run(single: Path, bundled: Path, lr: float) -> None:
    """Same metrics rows (kind, step, losses within REL), result (accuracies identical), checkpoint keys, and
    checkpoint values within a tenth of one update of size ``lr`` (AdamW turns rounding noise in a near-zero
    gradient into an update of up to ``lr``: measured up to 3 % of it)."""
    a, b = rows(single), rows(bundled)
    assert [(r["kind"], r["step"]) for r in a] == [(r["kind"], r["step"]) for r in b]
    for ra, rb in zip(a, b, strict=True):
        for key in ("loss", "val_loss", "grad_norm"):
            if key in ra:
                assert rb[key] == pytest.approx(ra[key], rel=REL), (key, ra["step"])
        if "val_acc" in ra:
            assert rb["val_acc"] == ra["val_acc"]
    ra, rb = RunDir(single).read_result(), RunDir(bundled).read_result()
    for key in ("test_acc", "best_step", "best_val_acc", "n_test", "trainable_params", "trainable_params_per_group",
                "steps", "diverged"):
        assert rb[key] == ra[key], key
    assert rb["test_loss"] == pytest.approx(ra["test_loss"], rel=REL)
    assert set(rb) == set(ra)
    np.testing.assert_array_equal(load_hits(bundled / HITS_FILE), load_hits(single / HITS_FILE))
    wa, wb = load_tensors(single / "best.safetensors"), load_tensors(bundled / "best.safetensors")
    assert list(wa) == list(wb)
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=0.1 * lr)
    ca, cb = RunDir(single).read_config(), RunDir(bundled).read_config()
    assert cb["train"] == ca["train"] and cb["fingerprint"] == ca["fingerprint"]


class Capture:
    """Records the live stacked tensors of every bundle session when it finishes training."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sessions: list[tuple[list[Any], dict[str, torch.Tensor]]] = []
        finish = bundle_mod._Session._finish

        def spy(session: Any, members: Any) -> Any:
            self.sessions.append((list(members), {n: p.detach().clone() for n, p in session.params.items()}))
            return finish(session, members)

        monkeypatch.setattr(bundle_mod._Session, "_finish", spy)


def kill_after_first_evaluation(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make every bundle stop (KeyboardInterrupt) right after its first checkpoint; returns the real method."""
    validate = bundle_mod._Session._validate

    def killed(session: Any, step: int, walls: list[float]) -> None:
        validate(session, step, walls)
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle_mod._Session, "_validate", killed)
    return validate


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_bundle_equals_single_runs_for_every_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, optimizer: str
) -> None:
    torch.set_num_threads(1)
    data = tiny_train_data()
    cfgs = [config(g, optimizer=optimizer, lr=(3e-3, 1e-2)[i % 2] * (1 if optimizer == "adamw" else 10), seed=i % 3)
            for i, g in enumerate(GROUPS)]
    cap = Capture(monkeypatch)
    results = train_bundle(cfgs, [tmp_path / f"b{i}" for i in range(len(cfgs))], CPU, model=tiny_train_vit(),
                           data=data)
    assert [r["train"] for r in results] == list(GROUPS)
    for i, c in enumerate(cfgs):
        finetune(tiny_train_vit(), data, c, CPU, out=tmp_path / f"s{i}")
        assert_same_run(tmp_path / f"s{i}", tmp_path / f"b{i}", c.lr)
    # frozen entries keep their bits: every stacked tensor a member does not train (or an ln-control entry outside
    # its mask) is, at the end of training, exactly the pristine model's
    (members, params), = cap.sessions
    pristine = tiny_train_vit()
    own = dict(pristine.module.named_parameters())
    checked = 0
    for k, m in enumerate(members):
        masks = {}
        if m.cfg.train == ("ln-control",):
            freeze_except(pristine, m.cfg.train)
            name_of = {id(p): n for n, p in pristine.module.named_parameters()}
            masks = {name_of[id(p)]: mask.bool() for p, mask in control_masks(pristine, m.cfg.seed)}
        for n, stacked in params.items():
            if n.startswith("head"):
                continue
            if n in masks:
                keep = ~masks[n]
                assert torch.equal(stacked[k][keep], own[n].detach()[keep]), n
                assert (~keep).sum() == 0 or not torch.equal(stacked[k][~keep], own[n].detach()[~keep]), n
                checked += 1
            elif n not in m.names:
                assert torch.equal(stacked[k], own[n].detach()), (m.cfg.train, n)
                checked += 1
            else:
                assert not torch.equal(stacked[k], own[n].detach()), (m.cfg.train, n)
    assert checked > 50


def test_diverging_member_is_isolated(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = tiny_train_data()
    good = [config("full", optimizer="sgd", lr=0.05, seed=0), config("mha", optimizer="sgd", lr=0.1, seed=1)]
    bad = config("fc1", optimizer="sgd", lr=1e30, clip=0.0, seed=2)  # the second forward overflows
    train_bundle(good, [tmp_path / "g0", tmp_path / "g1"], CPU, model=tiny_train_vit(), data=data)
    out = [tmp_path / "m0", tmp_path / "bad", tmp_path / "m1"]
    results = train_bundle([good[0], bad, good[1]], out, CPU, model=tiny_train_vit(), data=data)
    r = results[1]
    assert r["diverged"] is True and r["diverged_at"] is not None and r["diverged_at"] < bad.steps
    last = rows(tmp_path / "bad")[-1]
    assert last["diverged"] is True and last["step"] == r["diverged_at"]
    for f in (tmp_path / "bad").iterdir():
        if f.suffix in (".json", ".jsonl"):
            text = f.read_text()
            assert "NaN" not in text and "Infinity" not in text
    # the other members' numbers are those of the bundle without the diverging run (up to the rounding of
    # kernels batched over 3 instead of 2 members, within the single-run tolerance)
    for i, (ref, got) in enumerate((("g0", "m0"), ("g1", "m1"))):
        assert_same_run(tmp_path / ref, tmp_path / got, good[i].lr)
    # the single run diverges at the same step
    single = finetune(tiny_train_vit(), data, bad, CPU, out=tmp_path / "single").result
    assert single["diverged_at"] == r["diverged_at"]


def test_interrupted_bundle_resumes_every_member_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    data = tiny_train_data()
    cfgs = [config("full", seed=0, lr=3e-3, optimizer="adamw"), config("ln-control", seed=1, lr=1e-2,
            optimizer="adamw"), config("mha", seed=2, lr=3e-3, optimizer="adamw")]
    # the uninterrupted bundle of the two members that are not finished beforehand (same K: bitwise comparable)
    ref = [{}, *train_bundle(cfgs[1:], [tmp_path / f"r{i}" for i in (1, 2)], CPU, model=tiny_train_vit(), data=data)]
    outs = [tmp_path / f"k{i}" for i in range(3)]
    # member 0 finished earlier (alone); the bundle of all three is killed after its first evaluation
    finetune(tiny_train_vit(), data, cfgs[0], CPU, out=outs[0])
    done_before = outs[0].joinpath("result.json").read_text()
    validate = kill_after_first_evaluation(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_bundle(cfgs, outs, CPU, resume=True, model=tiny_train_vit(), data=data)
    for o in outs[1:]:
        assert RunDir(o).has_resume_state() and not RunDir(o).result.is_file()
        assert max(r["step"] for r in rows(o)) == 4
    monkeypatch.setattr(bundle_mod._Session, "_validate", validate)
    got = train_bundle(cfgs, outs, CPU, resume=True, model=tiny_train_vit(), data=data)
    assert outs[0].joinpath("result.json").read_text() == done_before  # finished member skipped
    for i in (1, 2):
        assert rows(outs[i]) == rows(tmp_path / f"r{i}")
        for key in ("test_acc", "test_loss", "best_step", "best_val_loss"):
            assert got[i][key] == ref[i][key]
        assert not RunDir(outs[i]).has_resume_state()


def test_member_interrupted_in_a_bundle_resumes_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """last.pt is the single run's file: a bundle member is resumed by the single engine to the same result."""
    torch.set_num_threads(1)
    data = tiny_train_data()
    cfgs = [config("fc2", seed=0, optimizer="sgd", lr=0.05), config("ln1", seed=1, optimizer="sgd", lr=0.05)]
    kill_after_first_evaluation(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_bundle(cfgs, [tmp_path / "a", tmp_path / "b"], CPU, model=tiny_train_vit(), data=data)
    resumed = finetune(tiny_train_vit(), data, cfgs[1], CPU, out=tmp_path / "b", resume=True).result
    finetune(tiny_train_vit(), data, cfgs[1], CPU, out=tmp_path / "single")
    assert_same_run(tmp_path / "single", tmp_path / "b", cfgs[1].lr)
    assert math.isfinite(resumed["test_loss"])


def test_bundle_refuses_incompatible_runs(tmp_path: Path) -> None:
    with pytest.raises(VitplastError, match="steps"):
        train_bundle([config("full"), config("mha", steps=9)], [tmp_path / "a", tmp_path / "b"], CPU)
    with pytest.raises(VitplastError, match="same output"):
        train_bundle([config("full"), config("mha")], [tmp_path / "a", tmp_path / "a"], CPU)
    assert not (tmp_path / "a").exists()



def test_bundle_too_large_for_the_memory_trains_in_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vitplast.train import bundle_memory

    torch.set_num_threads(1)
    data = tiny_train_data()
    cfgs = [config(g, seed=i, optimizer="adamw", lr=3e-3) for i, g in enumerate(("full", "mha", "ln2"))]
    vit = tiny_train_vit()
    per = bundle_memory.member_bytes(vit, cfgs[0], sum(p.numel() for p in vit.module.parameters()))
    assert per > 4 * 8 * 16 * 5  # at least the activations of one micro-batch
    monkeypatch.setattr(bundle_memory, "free_bytes", lambda device: int(2.5 * per / bundle_memory.SAFETY))
    cap = Capture(monkeypatch)
    train_bundle(cfgs, [tmp_path / f"b{i}" for i in range(3)], CPU, model=vit, data=data)
    assert [len(members) for members, _ in cap.sessions] == [2, 1]  # 2 members fit: two sessions
    for i, c in enumerate(cfgs):
        finetune(tiny_train_vit(), data, c, CPU, out=tmp_path / f"s{i}")
        assert_same_run(tmp_path / f"s{i}", tmp_path / f"b{i}", c.lr)
