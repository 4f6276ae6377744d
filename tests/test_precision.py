"""Precision (bf16 / fp32 / ...) of the engine and the estimator against float64 references, and its bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_train_cli import cli
from tests.tiny_models import tiny_train_data as tiny_data
from tests.tiny_models import tiny_train_vit as tiny_vit
from vitplast.errors import VitplastError
from vitplast.models import load_model
from vitplast.plasticity import measure_plasticity
from vitplast.precision import resolve_precision
from vitplast.reference import naive_plasticity
from vitplast.train import finetune
from vitplast.train.config import TrainConfig

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
SMALL = ["--model", "timm:vit_micro_patch4_32", "--random-weights", "--data", "random:16", "--steps", "2",
         "--batch-size", "4", "--eval-every", "1", "--device", "cpu"]


def test_resolution_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("auto", CPU).name == "fp32" and resolve_precision("auto", CPU).dtype is None
    assert resolve_precision("bf16", CPU).dtype is torch.bfloat16 and not resolve_precision("bf16", CPU).tf32
    assert not resolve_precision("tf32", CPU).tf32  # TF32 is a CUDA matmul mode: fp32 on CPU
    with pytest.raises(VitplastError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(VitplastError, match="--precision must be one of"):
        resolve_precision("fp8", CPU)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    auto = resolve_precision("auto", CUDA)
    assert (auto.name, auto.dtype, auto.tf32) == ("bf16", torch.bfloat16, True)
    fp16 = resolve_precision("fp16", CUDA)
    assert fp16.scaled and fp16.tf32 and not resolve_precision("fp32", CUDA).tf32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", CUDA).name == "fp32"
    with pytest.raises(VitplastError, match="does not support bfloat16"):
        resolve_precision("bf16", CUDA)


def test_forward_context_sets_and_restores_tf32_and_autocast() -> None:
    before = torch.backends.cuda.matmul.allow_tf32
    with resolve_precision("bf16", CPU).forward():
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype is torch.bfloat16
    with resolve_precision("fp32", CPU).forward():
        assert not torch.is_autocast_enabled("cpu") and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before


@pytest.mark.parametrize("mode", ["embedding", "insitu"])
def test_estimator_precision_against_float64_reference(mode: str) -> None:
    """Per-layer means of the micro-ViT on 32 pairs vs the naive float64-norm reference. Errors met on the
    build machine: fp32 1.5e-9 (embedding) / 4e-16 (in-situ); bf16 3.3e-4 / 4.3e-4 relative."""
    vit = load_model("micro")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, 32, 32, generator=g)
    y = 0.5 * torch.randn(32, 3, 32, 32, generator=g) + 0.3
    ref = naive_plasticity(vit, x, y, mode=mode).mean(0)
    for precision, tol in (("fp32", 1e-4), ("bf16", 1e-2)):
        res = measure_plasticity(vit, x, y, mode=mode, batch_size=16, precision=precision)
        mean = res.table["mean"].to_numpy().reshape(vit.depth, 5)
        assert res.table["mean"].dtype == np.float64 and res.info["precision"] == precision
        err = np.max(np.abs(mean - ref) / np.abs(ref))
        assert err < tol, (precision, err)
        if precision == "bf16":
            assert err > 1e-6  # the forward really ran in bf16


def test_bf16_finetune_on_cpu_records_precision_and_tracks_fp32(tmp_path: Path) -> None:
    kw = {"steps": 3, "batch_size": 8, "eval_every": 3, "lr": 0.1, "warmup_steps": 0, "device": "cpu"}
    runs = {p: finetune(tiny_vit(), tiny_data(), "mha", out=tmp_path / p, precision=p, **kw).result
            for p in ("fp32", "bf16")}
    for p, res in runs.items():
        assert res["precision"] == p and res["precision_used"] == p
        stored = json.loads((tmp_path / p / "config.json").read_text())
        assert stored["train"]["precision"] == p and stored["runtime"]["precision"] == p
    losses = {p: [json.loads(r)["loss"] for r in (tmp_path / p / "metrics.jsonl").read_text().splitlines()
                  if '"train"' in r] for p in runs}
    assert losses["bf16"] != losses["fp32"]  # autocast changed the arithmetic...
    np.testing.assert_allclose(losses["bf16"], losses["fp32"], rtol=2e-2)  # ...within bf16's 8 mantissa bits
    a, b = (TrainConfig(model="m", data="d", precision=p) for p in ("fp32", "bf16"))
    assert a != b and a.to_dict() != b.to_dict()  # part of a run's identity (config hash, --resume check)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--precision", "fp16"], "fp16 needs a CUDA device"),
        (["--precision", "fp8"], "--precision must be one of"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--compile"], "torch.compile is not supported"),
    ],
)
def test_bad_precision_and_compile_exit_2(extra: list[str], message: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import torch._dynamo

    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    out = tmp_path / "run"
    code, _, err = cli(["finetune", *SMALL, *extra, "--out", str(out)], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_probe_and_evaluate_precision_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["probe", "--model", "timm:vit_micro_patch4_32", "--random-weights", "--data", "random:16",
                        "--device", "cpu", "--precision", "fp16", "--out", str(tmp_path / "p")], capsys)
    assert code == 2 and err.count("\n") == 1 and "fp16 needs a CUDA device" in err
    assert not (tmp_path / "p").exists()


def test_fp16_scaler_skips_overflowing_steps_and_unscales_gradients() -> None:
    """The fp16 path (CUDA-only from the command line) driven on CPU: an overflowing scaled gradient skips the
    update without counting as divergence, and the first finite step logs the unscaled norm of fp32."""
    from vitplast.precision import Precision
    from vitplast.train.config import RunOptions
    from vitplast.train.groups import freeze_except
    from vitplast.train.loop import Prepared, _Engine

    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 7
    precs = {"fp32": resolve_precision("fp32", CPU), "fp16": Precision("fp16", "cpu", torch.float16, False)}
    norms: dict[str, list[float]] = {}
    for name, prec in precs.items():
        vit = tiny_vit()
        cfg = TrainConfig(model="t", data="d", train="mha", batch_size=8, steps=40, warmup_steps=0)
        eng = _Engine(Prepared(cfg, vit, None, freeze_except(vit, cfg.train), ""),  # type: ignore[arg-type]
                      None, CPU, 0, RunOptions(), prec, None)  # type: ignore[arg-type]
        if eng.scaler is not None:  # a scale that surely overflows fp16 gradients at first
            eng.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
        before = [p.detach().clone() for p in vit.module.parameters()]
        norms[name] = []
        for _ in range(30):
            loss, total, _, finite = eng.step(iter(lambda: (x, y), None), 0.01)
            assert finite and np.isfinite(loss)  # an fp16 overflow is never a divergence
            norms[name].append(total)
            if np.isfinite(total):
                break
            assert all(torch.equal(a, b) for a, b in zip(before, vit.module.parameters(), strict=True))
    assert eng.scaler is not None and eng.scaler.get_scale() < 2.0**40  # the scale came down on overflow
    assert len(norms["fp16"]) > 1 and not np.isfinite(norms["fp16"][0]) and np.isfinite(norms["fp16"][-1])
    assert norms["fp16"][-1] == pytest.approx(norms["fp32"][0], rel=2e-2)


@pytest.mark.heavy
def test_compiled_finetune_tracks_the_eager_run(tmp_path: Path) -> None:
    """A real torch.compile run (inductor's CPU code generation) trains the same model as the eager run: the
    same losses up to the fused kernels' float32 rounding, and ``compiled`` recorded in the result."""
    import shutil

    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    from torch._dynamo.utils import counters

    kw = {"steps": 3, "batch_size": 8, "eval_every": 3, "lr": 0.1, "warmup_steps": 0, "device": "cpu"}
    counters.clear()
    runs = {c: finetune(tiny_vit(), tiny_data(), "mha", out=tmp_path / str(c), compile=c, **kw).result
            for c in (False, True)}
    assert [runs[c]["compiled"] for c in (False, True)] == [False, True]
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo really captured and compiled the forward
    losses = {c: [json.loads(r)["loss"] for r in (tmp_path / str(c) / "metrics.jsonl").read_text().splitlines()
                  if '"train"' in r] for c in runs}
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)
    assert runs[True]["test_acc"] == pytest.approx(runs[False]["test_acc"], abs=1 / 20)
