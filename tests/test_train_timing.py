"""Per-run timing (``TrainState``): a bundle's step time is shared among its members; a single run is a bundle of 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.test_train_bundle import CPU, config, kill_after_first_evaluation
from tests.tiny_models import tiny_train_data, tiny_train_vit
from vitplast.train import bundle as bundle_mod
from vitplast.train import finetune
from vitplast.train.bundle import train_bundle
from vitplast.train.config import TrainConfig
from vitplast.train.loop import TrainState
from vitplast.train.rundir import RunDir

#: Rounding of summing K shares ``dt / K`` instead of ``dt``, step by step (seconds).
ABS = 1e-9


def test_single_run_is_a_bundle_of_one(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    r = finetune(tiny_train_vit(), tiny_train_data(), config("mha"), CPU, out=tmp_path / "s").result
    assert r["bundle_size"] == 1
    assert r["bundle_train_seconds"] == r["train_seconds"] > 0


def test_shares_of_a_bundle_sum_to_its_training_time(tmp_path: Path) -> None:
    """Three members, one of which diverges at its second step and leaves: the steps the three make are shared
    by three, the later ones by two, and the shares still add up to the bundle's time, the same for every member."""
    torch.set_num_threads(1)
    cfgs = [config("full", optimizer="sgd", lr=0.05, seed=0), config("fc1", optimizer="sgd", lr=1e30, clip=0.0, seed=2),
            config("mha", optimizer="sgd", lr=0.1, seed=1)]
    res = train_bundle(cfgs, [tmp_path / f"b{i}" for i in range(3)], CPU, model=tiny_train_vit(), data=tiny_train_data())
    assert res[1]["diverged"] and not res[0]["diverged"] and not res[2]["diverged"]
    total = res[0]["bundle_train_seconds"]
    assert total > 0 and all(r["bundle_train_seconds"] == total for r in res)
    assert all(r["bundle_size"] == 3 for r in res)
    assert sum(r["train_seconds"] for r in res) == pytest.approx(total, abs=ABS * cfgs[0].steps)
    # the members that stayed trained more steps than the one that left, so their share is larger
    assert res[0]["train_seconds"] == pytest.approx(res[2]["train_seconds"], abs=ABS * cfgs[0].steps)
    assert res[1]["train_seconds"] < res[0]["train_seconds"] < total


def test_resumed_bundle_adds_to_its_members_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    data = tiny_train_data()
    cfgs = [config("ln1", seed=0, optimizer="sgd", lr=0.05), config("fc2", seed=1, optimizer="sgd", lr=0.05)]
    outs = [tmp_path / "a", tmp_path / "b"]
    validate = kill_after_first_evaluation(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_bundle(cfgs, outs, CPU, resume=True, model=tiny_train_vit(), data=data)
    saved = [TrainState.saved(RunDir(o).load_resume_state()[0]["state"]) for o in outs]
    assert all(s.step == 4 and s.bundle_size == 2 and s.train_seconds > 0 for s in saved)
    assert saved[0].train_seconds + saved[1].train_seconds == pytest.approx(saved[0].bundle_train_seconds, abs=1e-8)
    monkeypatch.setattr(bundle_mod._Session, "_validate", validate)
    res = train_bundle(cfgs, outs, CPU, resume=True, model=tiny_train_vit(), data=data)
    added = [r["train_seconds"] - s.train_seconds for r, s in zip(res, saved, strict=True)]
    session = res[0]["bundle_train_seconds"] - saved[0].bundle_train_seconds
    assert all(a > 0 for a in added) and session > 0
    assert sum(added) == pytest.approx(session, abs=1e-8)
    assert res[1]["bundle_train_seconds"] == res[0]["bundle_train_seconds"]
    # and a bundle member resumed alone adds its single session in full to both sums
    kill_after_first_evaluation(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_bundle(cfgs, [tmp_path / "c", tmp_path / "d"], CPU, model=tiny_train_vit(), data=data)
    before = TrainState.saved(RunDir(tmp_path / "d").load_resume_state()[0]["state"])
    alone = finetune(tiny_train_vit(), data, cfgs[1], CPU, out=tmp_path / "d", resume=True).result
    assert alone["bundle_size"] == 1
    assert alone["train_seconds"] - before.train_seconds == pytest.approx(
        alone["bundle_train_seconds"] - before.bundle_train_seconds, abs=1e-8)
    assert alone["train_seconds"] > before.train_seconds


def test_resume_state_written_before_bundle_timing_counts_its_time_as_its_bundles() -> None:
    old = {"step": 3, "best_acc": 0.5, "best_step": 3, "best_loss": 1.0, "train_seconds": 2.5, "wall_seconds": 4.0,
           "diverged_at": None}
    s = TrainState.saved(old)
    assert (s.train_seconds, s.bundle_train_seconds, s.bundle_size) == (2.5, 2.5, 1)
    assert TrainState.saved({**old, "bundle_train_seconds": 7.5, "bundle_size": 3}).bundle_train_seconds == 7.5


def test_bundle_members_share_the_cached_probe_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LP-FT members of one target fit the probe head once per process, as single runs of a sweep do (the head
    depends on the backbone and the train split only), not once per member."""
    from vitplast.train import cache, head_init

    calls: list[int] = []
    fit = head_init.fit_probe_head

    def counted(*a: object, **kw: object) -> object:
        calls.append(1)
        return fit(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(head_init, "fit_probe_head", counted)
    cache.clear()
    torch.set_num_threads(1)
    cfgs = [lp_ft(g) for g in ("mha", "ln1", "fc2")]
    res = train_bundle(cfgs, [tmp_path / g for g in ("mha", "ln1", "fc2")], CPU)
    assert len(calls) == 1 and all(r["test_acc"] is not None for r in res)
    single = finetune(cfgs[0].model, cfgs[0].data, cfgs[0], CPU, out=tmp_path / "single").result
    assert len(calls) == 1  # and a single run in the same process reuses it
    assert single["test_acc"] == res[0]["test_acc"]
    cache.clear()


def lp_ft(group: str) -> TrainConfig:
    return TrainConfig(model="timm:vit_micro_patch4_32", data="random:16", train=group, random_weights=True,  # type: ignore[arg-type]
                       head_init="probe", steps=2, batch_size=8, eval_every=2, lr=1e-3)
