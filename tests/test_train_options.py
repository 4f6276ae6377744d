"""One training config: CLI options derived from TrainConfig, the mini:* recipe, the sweep YAML key, the model
and data cache, figures on demand, divergence from the command line, and the progress protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import typer

from tests.test_train_cli import cli
from tests.tiny_models import tiny_train_data as tiny_data
from tests.tiny_models import tiny_train_vit as tiny_vit
from vitplast.cli import app
from vitplast.configs import cli_name, default_of, help_of
from vitplast.errors import VitplastError
from vitplast.train import cache, finetune
from vitplast.train.config import RECIPES, TrainConfig, recipe_for

TINY = ["--model", "timm:vit_micro_patch4_32", "--random-weights", "--data", "random:16", "--steps", "2",
        "--batch-size", "4", "--eval-every", "1", "--device", "cpu"]


def _finetune_params() -> dict[str, Any]:
    import vitplast.cli.train  # noqa: F401  (registers the command)

    sub = typer.main.get_command(app).commands["finetune"]  # type: ignore[attr-defined]
    return {p.opts[0]: p for p in sub.params if p.opts}


def test_finetune_options_derive_from_train_config() -> None:
    params = _finetune_params()
    for name in TrainConfig.__dataclass_fields__:
        opt = params[cli_name(name)]  # every field is an option, named as the field
        help_text = getattr(opt, "help", "") or ""
        assert help_of(TrainConfig, name) in help_text, name
        if name in ("model", "data", "random_weights"):
            continue
        assert opt.default is None  # unset: the config (and the data's recipe) decides
        default = default_of(TrainConfig, name)
        if default is not None and not isinstance(default, tuple):
            assert f"[default: {default}" in help_text, name
    for settings in RECIPES.values():
        for key, value in settings.items():
            assert f"{value}" in (getattr(params[cli_name(key)], "help", "") or "")


def test_mini_recipe_is_the_mini_suite_recipe() -> None:
    from vitplast.suites.mini import PROTOCOL, mini_suite

    grid = mini_suite().grids[0]
    _, _, run = grid.runs()[0]
    recipe = TrainConfig.for_data(run.model, run.data, train=run.train, seed=run.seed, lr=run.lr, momentum=run.momentum,
                                  weight_decay=run.weight_decay, clip=run.clip, schedule=run.schedule, **PROTOCOL)
    assert run.data.startswith("mini:") and recipe_for(run.data)
    assert recipe == run
    assert TrainConfig.for_data("micro", "cifar10") == TrainConfig(model="micro", data="cifar10")
    assert TrainConfig.for_data("micro", "mini:digits", steps=5).steps == 5  # given settings win


def test_sweep_yaml_train_precision() -> None:
    from vitplast.sweep.spec import parse_sweep

    base = {"models": ["micro"], "datasets": ["random:16"], "groups": ["mha"], "lrs": [0.1], "seeds": [0],
            "probe": False, "plasticity": False}
    spec = parse_sweep({**base, "train": {"precision": "bf16", "steps": 2}})
    assert {cfg.precision for _, _, cfg in spec.grids[0].runs()} == {"bf16"}
    with pytest.raises(VitplastError, match="precision"):
        parse_sweep({**base, "train": {"precision": "fp8"}})


def test_cache_builds_once_and_hands_out_independent_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    import vitplast.train.cache as c

    cache.clear()
    calls: list[str] = []
    real = c.load_model

    def counting(spec: str, random_weights: bool = False, seed: int = 0):  # type: ignore[no-untyped-def]
        calls.append(spec)
        return real(spec, random_weights=random_weights, seed=seed)

    monkeypatch.setattr(c, "load_model", counting)
    a = cache.model("timm:vit_micro_patch4_32", random_weights=True)
    b = cache.model("timm:vit_micro_patch4_32", random_weights=True)
    assert calls == ["timm:vit_micro_patch4_32"]
    pa, pb = next(a.module.parameters()), next(b.module.parameters())
    assert pa is not pb and torch.equal(pa, pb)
    with torch.no_grad():
        pa.add_(1.0)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.equal(a.logits(x), b.logits(x))  # the wrapper computes with its own copy
    assert torch.equal(cache.model("timm:vit_micro_patch4_32", random_weights=True).logits(x), b.logits(x))
    assert cache.data("random:8", 32) is cache.data("random:8", 32)
    cache.clear()


def test_plots_only_when_asked_and_progress_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["finetune", *TINY, "--no-plots", "--out", str(tmp_path / "a")], capsys)
    assert code == 0 and out.startswith("recipe: sgd momentum 0.9, lr 0.01") and "precision auto" in out
    assert (tmp_path / "a" / "result.json").is_file() and not (tmp_path / "a" / "curves.png").exists()
    phases: list[tuple[str, int]] = []
    done: dict[str, int] = {}

    def progress(label: str, total: int, /):  # type: ignore[no-untyped-def]
        phases.append((label, total))
        done[label] = 0
        return lambda k: done.__setitem__(label, done[label] + k)

    finetune(tiny_vit(), tiny_data(), "mha", out=tmp_path / "b", steps=4, batch_size=8, eval_every=2,
             device="cpu", progress=progress, plots=True)
    assert (tmp_path / "b" / "curves.png").is_file()
    assert phases[0] == ("training tiny mha", 4) and done["training tiny mha"] == 4
    evals = [(label, total) for label, total in phases if label.startswith("evaluating")]
    assert len(evals) == 3 and all(done[label] == total for label, total in evals)  # val x2, test x1


def test_divergence_from_the_cli_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, _, err = cli(["finetune", *TINY, "--lr", "1e30", "--clip", "0", "--momentum", "0", "--out", str(out)],
                       capsys)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]  # a tiny-data warning line may precede it
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: training diverged at step"), err
    assert "Traceback" not in err
    result = json.loads((out / "result.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert result["diverged"] is True and result["diverged_at"] >= 1
