"""Training engine pieces: schedule, clipping, per-sample scoring, data order, best-checkpoint selection."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.tiny_models import tiny_train_data as tiny_data
from tests.tiny_models import tiny_train_vit as tiny_vit
from vitplast.data import TensorImageSet, Transformed, make_transform
from vitplast.models.vit import ViT
from vitplast.train import finetune
from vitplast.train.batches import SeededAugment, StreamSampler, train_transform
from vitplast.train.checkpoint import load_tensors
from vitplast.train.config import TrainConfig
from vitplast.train.optim import clip_gradients, grad_norms, lr_at
from vitplast.train.scoring import score


def cfg(**kw: object) -> TrainConfig:
    return TrainConfig(model="m", data="d", **kw)  # type: ignore[arg-type]


def test_lr_schedule_closed_form() -> None:
    c = cfg(lr=0.2, steps=110, warmup_steps=10)
    assert lr_at(0, c) == pytest.approx(0.02)
    assert lr_at(9, c) == pytest.approx(0.2)
    assert lr_at(10, c) == pytest.approx(0.2)  # cosine starts at the peak
    assert lr_at(60, c) == pytest.approx(0.1)  # half way through the decay
    assert lr_at(109, c) == pytest.approx(0.1 * (1 + math.cos(math.pi * 99 / 100)))
    decay = [lr_at(s, c) for s in range(10, 110)]
    assert all(a > b for a, b in itertools.pairwise(decay))
    const = cfg(lr=0.2, steps=50, warmup_steps=5, schedule="constant")
    assert [lr_at(s, const) for s in (4, 5, 49)] == pytest.approx([0.2, 0.2, 0.2])
    assert cfg(steps=100).warmup == 5  # default warmup: 5 % of the steps


def test_grad_norms_and_clipping_match_torch() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(5, 4), nn.Linear(4, 3)
    (b(a(torch.randn(7, 5))) ** 2).sum().backward()
    groups = {"a": list(a.parameters()), "b": list(b.parameters())}
    total, per = grad_norms(groups)
    flat = {k: torch.cat([p.grad.flatten() for p in ps]) for k, ps in groups.items()}  # type: ignore[union-attr]
    assert per["a"] == pytest.approx(float(flat["a"].norm()), rel=1e-6)
    assert total == pytest.approx(float(torch.cat(list(flat.values())).norm()), rel=1e-6)
    params = [*a.parameters(), *b.parameters()]
    ref = [p.grad.clone() for p in params]  # type: ignore[union-attr]
    ref_params = [nn.Parameter(p.detach().clone()) for p in params]
    for rp, g in zip(ref_params, ref, strict=True):
        rp.grad = g.clone()
    clip = total / 3
    torch.nn.utils.clip_grad_norm_(ref_params, clip)
    clip_gradients(params, total, clip)
    for p, rp in zip(params, ref_params, strict=True):
        torch.testing.assert_close(p.grad, rp.grad)
    clip_gradients(params, total / 3, 0.0)  # 0 disables clipping
    for p, rp in zip(params, ref_params, strict=True):
        torch.testing.assert_close(p.grad, rp.grad)


def test_score_is_per_sample_with_partial_last_batch() -> None:
    n, classes = 10, 3
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    images = torch.zeros(n, 3, 4, 4)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32)  # image index hidden in a pixel
    table = torch.randn(n, classes, generator=torch.Generator().manual_seed(0))
    table[8, labels[8]] = 10.0  # only the last (partial) batch is right
    table[9, labels[9]] = 10.0
    for i in range(8):
        table[i, labels[i]] = -10.0

    def logits(x: torch.Tensor) -> torch.Tensor:
        return table[x[:, 0, 0, 0].long()]

    s = score(logits, TensorImageSet(images, labels), None, batch_size=4, device=torch.device("cpu"))
    assert s.n == 10 and s.correct == 2
    assert s.acc == pytest.approx(0.2)  # a per-batch mean would give (0 + 0 + 1) / 3
    assert s.loss == pytest.approx(float(F.cross_entropy(table, labels)), rel=1e-6)


def test_stream_sampler_is_resumable_and_covers_epochs() -> None:
    full = list(StreamSampler(n=7, seed=3, start=0, stop=30))
    epochs = [[i for i, _ in full[7 * e: 7 * e + 7]] for e in range(4)]
    for order in epochs:
        assert sorted(order) == list(range(7))  # every image once per epoch
    assert len({tuple(o) for o in epochs}) > 1  # reshuffled between epochs
    assert list(StreamSampler(n=7, seed=3, start=11, stop=30)) == full[11:]
    assert list(StreamSampler(n=7, seed=4, start=0, stop=30)) != full
    assert len({s for _, s in full}) == len(full)  # a distinct augmentation seed per position


def test_seeded_augment_is_deterministic_and_leaves_global_rng_alone() -> None:
    data = tiny_data()
    aug = SeededAugment(data.train, train_transform(tiny_vit().data_config, "rrc"))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b, c = aug[(0, 5)][0], aug[(0, 5)][0], aug[(0, 6)][0]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (3, 16, 16) and a.dtype == torch.float32
    crop = SeededAugment(data.train, train_transform(tiny_vit().data_config, "crop"))
    assert crop[(1, 9)][0].shape == (3, 16, 16)


def test_training_batches_do_not_depend_on_worker_processes() -> None:
    from vitplast.train.batches import loader

    data = SeededAugment(tiny_data().train, train_transform(tiny_vit().data_config, "rrc"))
    batches = [list(loader(data, 6, workers, StreamSampler(len(data), 2, start=4, stop=40))) for workers in (0, 2)]
    assert len(batches[0]) == 6
    for (x0, y0), (x2, y2) in zip(*batches, strict=True):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)


def test_best_checkpoint_is_first_argmax_of_val_acc_and_scored_on_test(tmp_path: Path) -> None:
    vit, data = tiny_vit(), tiny_data()
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def snap(step: int, model: ViT) -> None:
        snapshots[step] = {k: v.detach().clone() for k, v in model.module.state_dict().items()}

    res = finetune(vit, data, "mha,fc1", out=tmp_path / "run", steps=12, batch_size=8, eval_every=2, lr=0.3,
                   warmup_steps=0, seed=1, device="cpu", callback=snap).result
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, 13))
    fresh = tiny_vit()
    fresh.reset_head(3)
    tf = make_transform(fresh.data_config)

    def naive_acc(state: dict[str, torch.Tensor], split: str) -> float:
        fresh.module.load_state_dict(state)
        fresh.eval()
        ds = Transformed(data.split(split), tf)
        with torch.no_grad():
            hits = [int(fresh.logits(x[None]).argmax()) == y for x, y in ds]
        return sum(hits) / len(hits)

    val_accs = [naive_acc(snapshots[r["step"]], "val") for r in evals]
    assert [r["val_acc"] for r in evals] == pytest.approx(val_accs)
    best = max(range(len(evals)), key=lambda i: (val_accs[i], -i))
    assert res["best_step"] == evals[best]["step"]
    assert res["best_val_acc"] == pytest.approx(val_accs[best])
    assert res["test_acc"] == pytest.approx(naive_acc(snapshots[res["best_step"]], "test"))
    stored = load_tensors(tmp_path / "run" / "best.safetensors")
    for k, v in stored.items():
        assert torch.equal(v, snapshots[res["best_step"]][k])
    # the model returned holds the best weights
    for k, v in vit.module.state_dict().items():
        assert torch.equal(v, snapshots[res["best_step"]][k])
    for f in ("config.json", "metrics.jsonl", "result.json", "best.safetensors"):
        assert (tmp_path / "run" / f).is_file()
    assert not (tmp_path / "run" / "curves.png").exists()  # figures only when asked (plots=True)
    assert not (tmp_path / "run" / "last.pt").exists()
    assert res["images_per_s"] > 0 and res["wall_seconds"] >= res["train_seconds"] > 0


def test_grad_accumulation_gives_the_same_update() -> None:
    data = tiny_data()
    runs = []
    for accum in (1, 4):
        vit = tiny_vit()
        finetune(vit, data, "fc1", steps=2, batch_size=8, grad_accum=accum, eval_every=2, lr=0.1, device="cpu")
        runs.append({k: v.clone() for k, v in vit.module.state_dict().items()})
    for k in runs[0]:
        torch.testing.assert_close(runs[0][k], runs[1][k], rtol=1e-5, atol=1e-6)


def test_divergence_stops_the_run_with_a_result(tmp_path: Path) -> None:
    res = finetune(tiny_vit(), tiny_data(), "full", out=tmp_path / "r", steps=6, batch_size=8, eval_every=2,
                   lr=1e30, clip=0.0, warmup_steps=0, momentum=0.0, device="cpu").result
    assert res["diverged_at"] is not None and res["steps"] < 6
    assert res["diverged"] is True and res["diverged_at"] == res["steps"] + 1

    def strict(text: str) -> object:  # JSON without NaN / Infinity literals
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON literal {c}"))

    stored = strict((tmp_path / "r" / "result.json").read_text())
    assert stored == res
    rows = [strict(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["diverged"] is True and rows[-1]["step"] == res["diverged_at"]
