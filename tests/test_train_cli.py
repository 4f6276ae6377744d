"""``vitplast finetune / probe / evaluate / pretrain`` from the command line, and the pretrain export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vitplast.cli import main
from vitplast.data import DataContext, load_data, make_transform
from vitplast.models import load_model
from vitplast.train.pretrain import pretrain
from vitplast.train.scoring import score

MICRO = ["--model", "timm:vit_micro_patch4_32", "--random-weights"]
SMALL = ["--data", "random:16", "--steps", "2", "--batch-size", "4", "--eval-every", "1", "--device", "cpu"]


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    torch.set_num_threads(1)
    try:
        main(["finetune", *MICRO, *SMALL, "--train", "mha,ln1", "--out", str(out)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return out


def test_finetune_writes_all_outputs(finished_run: Path) -> None:
    for f in ("config.json", "metrics.jsonl", "result.json", "curves.png", "best.safetensors"):
        assert (finished_run / f).is_file(), f
    res = json.loads((finished_run / "result.json").read_text())
    cfg = json.loads((finished_run / "config.json").read_text())
    assert res["train"] == "ln1,mha" and res["steps"] == 2 and 0 <= res["test_acc"] <= 1
    assert cfg["train"]["train"] == ["ln1", "mha"] and cfg["num_classes"] == 10
    rows = [json.loads(r) for r in (finished_run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert set(train_rows[0]["grad_norm_groups"]) == {"ln1", "mha", "head"}
    assert {"step", "loss", "lr", "grad_norm"} <= set(train_rows[0])
    assert {"step", "val_loss", "val_acc"} <= {k for r in rows if r["kind"] == "eval" for k in r}


def test_evaluate_appends_to_results(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["evaluate", str(finished_run), "--data", "random:12", "--device", "cpu"], capsys)
    assert code == 0, err
    entry = json.loads(out)
    assert entry["data"] == "random:12" and entry["n"] == 12
    res = json.loads((finished_run / "result.json").read_text())
    assert [e["data"] for e in res["evaluations"]] == ["random:12"]
    code, _, err = cli(["evaluate", str(finished_run), "--data", "random:12", "--split", "val", "--device", "cpu"],
                       capsys)
    res = json.loads((finished_run / "result.json").read_text())
    assert code == 0 and [(e["data"], e["split"]) for e in res["evaluations"]] == [("random:12", "test"),
                                                                                    ("random:12", "val")]
    code, _, err = cli(["evaluate", str(finished_run.parent / "nope"), "--data", "random:12"], capsys)
    assert code == 2 and err.count("\n") == 1


def test_resume_with_another_config_exits_2(finished_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (finished_run / "result.json").read_bytes()
    code, _, err = cli(["finetune", *MICRO, *SMALL, "--train", "fc1", "--resume", "--out", str(finished_run)], capsys)
    assert code == 2 and err.startswith("error: --resume") and err.count("\n") == 1
    assert (finished_run / "result.json").read_bytes() == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--train", "attn"], "unknown trainable group"),
        (["--lr", "0"], "--lr"),
        (["--steps", "0"], "--steps"),
        (["--batch-size", "64"], "larger than the train split"),
        (["--data", "folder:/nonexistent/vitplast"], "does not exist"),
        (["--data", "cifar10c:/nonexistent/vitplast:snow:5"], "does not exist"),
        (["--optimizer", "adam"], "--optimizer"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_output(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code, _, err = cli(["finetune", *MICRO, *SMALL, *extra, "--out", str(out)], capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not out.exists()


def test_probe_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "probe"
    code, stdout, err = cli(["probe", *MICRO, "--data", "random:24", "--device", "cpu", "--out", str(out)], capsys)
    assert code == 0, err
    res = json.loads((out / "result.json").read_text())
    assert (res["n_train"], res["n_val"], res["n_test"]) == (24, 6, 24)
    assert res["feature_dim"] == 192
    assert res["C"] in (0.01, 0.1, 1.0, 10.0) and res["val_acc"] == max(res["val_acc_per_C"].values())
    assert (out / "config.json").is_file() and "linear probe" in stdout
    code, _, err = cli(["probe", *MICRO, "--data", "folder:/nonexistent/x", "--out", str(tmp_path / "p2")], capsys)
    assert code == 2 and not (tmp_path / "p2").exists()


def test_pretrain_short_run_exports_and_installs(tmp_path: Path) -> None:
    out, pkg = tmp_path / "pre", tmp_path / "pkg"
    card = pretrain(out, steps=3, batch_size=8, data="random:24", device="cpu", install=True, install_dir=pkg,
                    warmup_steps=1, weight_decay=0.02, regime_pairs=8)
    for f in ("micro_vit.safetensors", "model_card.json", "model_card.md"):
        assert (pkg / f).is_file() and (pkg / f).read_bytes() == (out / f).read_bytes()
    ckpt = pkg / "micro_vit.safetensors"
    assert ckpt.stat().st_size <= 12e6
    from safetensors.torch import load_file

    state = load_file(str(ckpt))
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert state["head.weight"].shape[0] == 10  # classifier for the source classes
    stored = json.loads((pkg / "model_card.json").read_text())
    assert stored == json.loads(json.dumps(card))
    assert stored["recipe"]["optimizer"] == "adamw" and stored["recipe"]["train"] == ["full"]
    assert stored["command"].startswith("vitplast pretrain --steps 3 --batch-size 8")
    assert stored["command"].endswith("--warmup-steps 1 --weight-decay 0.02")  # re-creates the run
    assert (stored["recipe"]["warmup_steps"], stored["recipe"]["weight_decay"]) == (1, 0.02)
    assert stored["name"] == "micro" and set(stored["regime"]["met"]) == {"token_rms", "gamma_dev"}
    assert "## Regime" in (pkg / "model_card.md").read_text()
    # the recorded accuracy is that of the shipped fp16 weights loaded the way load_model loads them
    vit = load_model(f"timm:vit_micro_patch4_32@{ckpt}")
    bundle = load_data("random:24", DataContext(input_size=32))
    s = score(vit.logits, bundle.test, make_transform(vit.data_config), 8, torch.device("cpu"))
    assert stored["source_test_acc"] == pytest.approx(s.acc)
    assert "Source test accuracy" in (pkg / "model_card.md").read_text()


def test_pretrain_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    """The same command and seed re-create the same checkpoint on one device (bitwise, same SHA-256); another
    seed gives another model. (Across devices only the accuracy can match: floating-point order differs.)"""
    cards = [pretrain(tmp_path / name, steps=4, batch_size=8, data="random:24", device="cpu", seed=seed,
                      regime_pairs=0)
             for name, seed in (("a", 0), ("b", 0), ("b2", 0), ("c", 1))]
    assert cards[1]["checkpoint_sha256"] == cards[2]["checkpoint_sha256"]  # metadata order is fixed, too
    assert cards[0]["checkpoint_sha256"] == cards[1]["checkpoint_sha256"]
    assert cards[0]["checkpoint_sha256"] != cards[3]["checkpoint_sha256"]
    assert cards[0]["source_test_acc"] == cards[1]["source_test_acc"]
    # the run's seed initialises the random body, not only the head and the data order
    from vitplast.train.config import PretrainConfig
    from vitplast.train.loop import prepare

    def first_mha_weight(seed: int) -> torch.Tensor:
        return prepare(PretrainConfig(steps=1, batch_size=8, data="random:24", seed=seed).train_config("timm:vit_micro_patch4_32")).vit.param_groups()["mha"][0]

    assert torch.equal(first_mha_weight(0), first_mha_weight(0))
    assert not torch.equal(first_mha_weight(0), first_mha_weight(1))


def test_pretrain_name_sets_the_card_and_the_install_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vitplast.models import micro
    from vitplast.train import pretrain as pre

    folders = {"micro": tmp_path / "m", "micro-long": tmp_path / "ml"}
    monkeypatch.setattr(pre, "BUNDLED", folders)
    card = pretrain(tmp_path / "run", steps=2, batch_size=8, data="random:24", device="cpu", install=True,
                    name="micro-long", regime_pairs=0)
    assert card["name"] == "micro-long" and card["command"].endswith("--name micro-long")
    assert (folders["micro-long"] / "model_card.json").is_file() and not folders["micro"].exists()
    assert "# micro-long" in (folders["micro-long"] / "model_card.md").read_text()
    assert set(micro.BUNDLED) == set(folders)
    from vitplast.errors import VitplastError

    with pytest.raises(VitplastError, match="--name must be one of"):
        pretrain(tmp_path / "bad", steps=2, batch_size=8, data="random:24", device="cpu", name="nano")
    assert not (tmp_path / "bad").exists()


def test_pretrain_cli_rejects_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["pretrain", "--steps", "0", "--out", str(tmp_path / "p")], capsys)
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "p").exists()
