"""Bad input across all commands: exit code 2, one ``error:`` line, no traceback, nothing new on disk.

Each row of :data:`ROWS` is ``(id, argv, message)``; ``{tmp}`` in an argument is the test's folder, which holds the
fixtures of :func:`scene` (a file, a one-class folder, a 10-class folder named a..j, a finished run on ``random``,
copies of it with a truncated ``best.safetensors`` or an interrupted run with a truncated ``last.pt``). Rows with
``READ_ONLY`` run with file creation failing as on a read-only file system. The named tests after the table cover
the cases that are not refusals (a recorded warning, the Ctrl-C message, 16-bit images, cleanup, fallback).
"""

from __future__ import annotations

import errno
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_train_cli import cli
from vitplast.errors import VitplastError

MICRO = ["--model", "timm:vit_micro_patch4_32", "--random-weights", "--device", "cpu"]
TINY = ["--data", "random:16", "--steps", "2", "--batch-size", "4", "--eval-every", "1"]
READ_ONLY = "READ_ONLY"

ROWS: list[tuple[str, list[str], str]] = [
    # analyze
    ("analyze-out-file", ["analyze", *MICRO, "--out", "{tmp}/FILE"], "exists and is not a directory"),
    ("analyze-out-under-file", ["analyze", *MICRO, "--out", "{tmp}/FILE/sub"], "is not a directory"),
    ("analyze-out-read-only", [READ_ONLY, "analyze", *MICRO, "--out", "{tmp}/new"], "not writable"),
    ("analyze-pairs-1", ["analyze", *MICRO, "--pairs", "1", "--out", "{tmp}/a"], "--pairs must be >= 2"),
    ("analyze-mode", ["analyze", *MICRO, "--mode", "nosuch", "--out", "{tmp}/a"], "--mode must be one of"),
    ("analyze-order", ["analyze", *MICRO, "--order", "nosuch", "--out", "{tmp}/a"], "--order must be one of"),
    ("analyze-batch-0", ["analyze", *MICRO, "--batch-size", "0", "--out", "{tmp}/a"], "--batch-size"),
    ("analyze-model", ["analyze", "--model", "nosuch", "--out", "{tmp}/a"], "unknown model spec"),
    ("analyze-offline-timm", ["analyze", "--model", "timm:vit_tiny_patch16_224", "--out", "{tmp}/a"],
     "cannot download the weights"),
    ("analyze-bad-option", ["analyze", "--bogus"], "No such option"),
    # bounds
    ("bounds-out-file", ["bounds", *MICRO, "--out", "{tmp}/FILE"], "exists and is not a directory"),
    ("bounds-out-read-only", [READ_ONLY, "bounds", *MICRO, "--out", "{tmp}/new"], "not writable"),
    ("bounds-pairs-1", ["bounds", *MICRO, "--pairs", "1", "--out", "{tmp}/b"], "--pairs must be >= 2"),
    ("bounds-model", ["bounds", "--model", "nosuch", "--out", "{tmp}/b"], "unknown model spec"),
    # pretrain
    ("pretrain-out-file", ["pretrain", "--out", "{tmp}/FILE", "--device", "cpu"], "exists and is not a directory"),
    ("pretrain-out-read-only", [READ_ONLY, "pretrain", "--out", "{tmp}/new"], "not writable"),
    ("pretrain-name", ["pretrain", "--name", "nano", "--out", "{tmp}/p"], "--name must be one of micro, micro-long"),
    ("pretrain-weight-decay-nan", ["pretrain", "--weight-decay", "nan", "--out", "{tmp}/p"],
     "--weight-decay must be a finite number"),
    ("pretrain-warmup-long", ["pretrain", "--steps", "10", "--warmup-steps", "11", "--out", "{tmp}/p"],
     "--warmup-steps must be in [0, steps=10]"),
    # finetune
    ("finetune-out-file", ["finetune", *MICRO, *TINY, "--out", "{tmp}/FILE"], "exists and is not a directory"),
    ("finetune-out-read-only", [READ_ONLY, "finetune", *MICRO, *TINY, "--out", "{tmp}/new"], "not writable"),
    ("finetune-one-class", ["finetune", *MICRO, *TINY, "--data", "folder:{tmp}/oneclass", "--out", "{tmp}/f"],
     "need at least 2"),
    ("finetune-truncated-last", ["finetune", *MICRO, "--data", "random:16", "--steps", "4", "--batch-size", "4",
                                 "--eval-every", "2", "--resume", "--out", "{tmp}/interrupted"],
     "last.pt is truncated or damaged"),
    ("finetune-offline-timm", ["finetune", "--model", "timm:vit_tiny_patch16_224", "--out", "{tmp}/f"],
     "--random-weights"),
    ("finetune-offline-hf", ["finetune", "--model", "hf:google/vit-base-patch16-224", "--out", "{tmp}/f"],
     "cannot download the weights"),
    ("finetune-group", ["finetune", *MICRO, *TINY, "--train", "attn", "--out", "{tmp}/f"], "unknown trainable group"),
    ("finetune-batch-larger", ["finetune", *MICRO, *TINY, "--batch-size", "64", "--out", "{tmp}/f"],
     "larger than the train split"),
    ("finetune-missing-folder", ["finetune", *MICRO, *TINY, "--data", "folder:{tmp}/nosuch", "--out", "{tmp}/f"],
     "does not exist"),
    ("finetune-already-a-run", ["finetune", *MICRO, *TINY, "--out", "{tmp}/run"], "already holds a run"),
    ("finetune-lr-inf", ["finetune", *MICRO, *TINY, "--lr", "inf", "--out", "{tmp}/f"], "--lr must be a finite number"),
    ("finetune-weight-decay-inf", ["finetune", *MICRO, *TINY, "--weight-decay", "inf", "--out", "{tmp}/f"],
     "--weight-decay must be a finite number"),
    ("finetune-fp16-cpu", ["finetune", *MICRO, *TINY, "--precision", "fp16", "--out", "{tmp}/f"], "needs a CUDA device"),
    # probe
    ("probe-out-file", ["probe", *MICRO, "--data", "random:16", "--out", "{tmp}/FILE"], "exists and is not a directory"),
    ("probe-out-read-only", [READ_ONLY, "probe", *MICRO, "--out", "{tmp}/new"], "not writable"),
    ("probe-C-nan", ["probe", *MICRO, "--C", "nan", "--out", "{tmp}/p"], "--C must be a finite number > 0"),
    ("probe-C-inf", ["probe", *MICRO, "--C", "inf", "--out", "{tmp}/p"], "--C must be a finite number > 0"),
    ("probe-C-negative", ["probe", *MICRO, "--C", "-1", "--out", "{tmp}/p"], "--C must be a finite number > 0"),
    ("probe-batch-0", ["probe", *MICRO, "--batch-size", "0", "--out", "{tmp}/p"], "--batch-size"),
    ("probe-one-class", ["probe", *MICRO, "--data", "folder:{tmp}/oneclass", "--out", "{tmp}/p"], "need at least 2"),
    # evaluate
    ("evaluate-other-classes", ["evaluate", "{tmp}/run", "--data", "folder:{tmp}/atoj", "--device", "cpu"],
     "are not the run's"),
    ("evaluate-truncated-best", ["evaluate", "{tmp}/truncated", "--data", "random:12", "--device", "cpu"],
     "best.safetensors is truncated or damaged"),
    ("evaluate-run-is-file", ["evaluate", "{tmp}/FILE", "--data", "random:12"], "exists and is not a directory"),
    ("evaluate-read-only", [READ_ONLY, "evaluate", "{tmp}/run", "--data", "random:12"], "not writable"),
    ("evaluate-not-a-run", ["evaluate", "{tmp}/oneclass", "--data", "random:12"], "not a run directory"),
    ("evaluate-split", ["evaluate", "{tmp}/run", "--data", "random:12", "--split", "nosuch"], "unknown split"),
    ("evaluate-label-map-syntax", ["evaluate", "{tmp}/run", "--data", "folder:{tmp}/atoj", "--label-map", "a"],
     "expected DATA=RUN"),
    ("evaluate-label-map-incomplete", ["evaluate", "{tmp}/run", "--data", "folder:{tmp}/atoj", "--label-map",
                                       "a=class0"], "must map every data class"),
    ("evaluate-label-map-index-count", ["evaluate", "{tmp}/run", "--data", "folder:{tmp}/oneclass",
                                        "--label-map", "index"], "the data set has 1 classes"),
    # sweep, report, reproduce
    ("sweep-out-file", ["sweep", "--out", "{tmp}/FILE", "--datasets", "random:16", "--executor", "local"],
     "exists and is not a directory"),
    ("sweep-out-read-only", [READ_ONLY, "sweep", "--out", "{tmp}/new", "--datasets", "random:16"], "not writable"),
    ("sweep-missing-yaml", ["sweep", "{tmp}/nosuch.yaml", "--out", "{tmp}/s"], "nosuch.yaml"),
    ("sweep-unknown-data", ["sweep", "--out", "{tmp}/s", "--datasets", "mini:nosuch", "--executor", "local"],
     "unknown mini set"),
    ("sweep-batch-larger", ["sweep", "--out", "{tmp}/s", "--datasets", "random:16", "--batch-size", "500", "--executor",
                            "local", "--models", "micro"], "larger than the train split"),
    ("reproduce-steps-0", ["reproduce", "--suite", "mini", "--dry-run", "--steps", "0", "--out", "{tmp}/r"],
     "--steps must be >= 1"),
    # landscape, recommend
    ("landscape-grid-2", ["landscape", "--grid", "2", "--out", "{tmp}/l"], "--grid must be >= 3"),
    ("landscape-steps-2", ["landscape", "--steps", "2", "--out", "{tmp}/l"], "--steps must be >= 3"),
    ("landscape-head", ["landscape", "--train", "head", "--out", "{tmp}/l"], "is not a component group"),
    ("recommend-budget-0", ["recommend", "--budget", "0", "--out", "{tmp}/rc"], "--budget must be > 0"),
    ("recommend-selector", ["recommend", "--selectors", "nosuch", "--out", "{tmp}/rc"], "unknown selector"),
    ("recommend-pilot-0", ["recommend", "--pilot", "0", "--out", "{tmp}/rc"], "--pilot must be > 0"),
    ("report-dir-is-file", ["report", "{tmp}/FILE"], "exists and is not a directory"),
    ("report-read-only", [READ_ONLY, "report", "{tmp}/run"], "not writable"),
    ("reproduce-dry-run-out-file", ["reproduce", "--dry-run", "--out", "{tmp}/FILE"], "exists and is not a directory"),
    ("reproduce-suite", ["reproduce", "--suite", "nosuch", "--out", "{tmp}/r"], "--suite must be one of"),
    ("reproduce-paper-quick", ["reproduce", "--suite", "paper", "--quick", "--dry-run", "--out", "{tmp}/r"],
     "apply to the mini suite"),
]


def _png(path: Path, value: int, size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixtures named in the module docstring (built once; each test works on a copy)."""
    from vitplast.train import finetune

    root = tmp_path_factory.mktemp("scene")
    (root / "FILE").write_text("a file\n")
    for i in range(6):
        _png(root / "oneclass" / "only" / f"{i}.png", 40 * i)
    for c in "abcdefghij":
        for i in range(2):
            _png(root / "atoj" / c / f"{i}.png", 20 * i + ord(c) - 90)
    torch.set_num_threads(1)
    main_args = dict(model="timm:vit_micro_patch4_32", random_weights=True, device="cpu", batch_size=4)
    finetune(data="random:16", train="full", out=root / "run", steps=2, eval_every=1, **main_args)  # type: ignore[arg-type]
    shutil.copytree(root / "run", root / "truncated")
    best = root / "truncated" / "best.safetensors"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])

    def stop(step: int, _: object) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(data="random:16", train="full", out=root / "interrupted", steps=4, eval_every=2, callback=stop,
                 **main_args)  # type: ignore[arg-type]
    last = root / "interrupted" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("argv, message", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input(
    argv: list[str], message: str, scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp = tmp_path / "t"
    shutil.copytree(scene, tmp)
    monkeypatch.chdir(tmp)
    assert message in refused_line(argv, tmp, capsys, monkeypatch, snapshot)


def refused_line(argv: list[str], tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                 snap: Callable[[Path], object]) -> str:
    """Run ``argv`` in process (``{tmp}`` replaced by ``tmp``; a leading :data:`READ_ONLY`: with temporary files
    refused as on a read-only disk) and return its error line, after asserting exit code 2, exactly one line on
    stderr (empty lines count too: a person sees them), starting ``error:``, no traceback, and ``snap(tmp)``
    unchanged."""
    if argv[0] == READ_ONLY:
        argv = argv[1:]

        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr("vitplast.io.tempfile.mkstemp", refuse)
    before = snap(tmp)
    code, _, err = cli([a.replace("{tmp}", str(tmp)) for a in argv], capsys)
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert snap(tmp) == before
    return lines[0]


def test_the_table_covers_every_command_with_40_rows() -> None:
    commands = {next(a for a in r[1] if a != READ_ONLY) for r in ROWS}
    assert len(ROWS) >= 40 and len({r[0] for r in ROWS}) == len(ROWS)
    assert commands >= {"analyze", "bounds", "pretrain", "finetune", "probe", "evaluate", "sweep", "report",
                        "reproduce", "landscape", "recommend"}


# --- the cases that are not refusals ----------------------------------------------------------------------------


def test_tiny_data_is_warned_and_recorded_by_finetune_and_probe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 6-image folder splits 4/1/1: both commands say so in one line and record it with their results."""
    for c in "ab":
        for i in range(3):
            _png(tmp_path / "tiny" / c / f"{i}.png", 30 * i + (100 if c == "b" else 0))
    data = ["--data", f"folder:{tmp_path}/tiny"]
    code, _, err = cli(["finetune", *MICRO, *data, "--steps", "1", "--batch-size", "2", "--eval-every", "1",
                        "--augment", "none", "--out", str(tmp_path / "f")], capsys)
    assert code == 0, err
    assert [ln for ln in err.splitlines() if ln.strip()] == [
        f"warning: data folder:{tmp_path}/tiny is tiny (train 4, val 1, test 1): accuracies on fewer than 10 "
        "images are not meaningful"
    ]
    result = json.loads((tmp_path / "f" / "result.json").read_text())
    assert result["warnings"] == [err.strip().removeprefix("warning: ")]
    code, _, err2 = cli(["probe", *MICRO, *data, "--out", str(tmp_path / "p")], capsys)
    assert code == 0 and err2 == err
    assert json.loads((tmp_path / "p" / "result.json").read_text())["warnings"] == result["warnings"]


@pytest.mark.parametrize("command, data, record_file, used", [
    ("analyze", "--target", "plasticity.json", "pairs_used"), ("bounds", "--data", "bounds.json", "pairs")])
def test_pairs_beyond_the_data_are_warned_and_the_number_used_recorded(
    command: str, data: str, record_file: str, used: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """analyze and bounds share the analysis: both say it in one line and record it."""
    out = tmp_path / "a"
    code, _, err = cli([command, *MICRO, "--source", "random:8", data, "random:8", "--pairs", "100000",
                        "--out", str(out)], capsys)
    assert code == 0, err
    message = "--pairs 100000 is more than the data hold (source 8, target 8 images): using 8"
    assert [ln for ln in err.splitlines() if ln.strip()] == [f"warning: {message}"]
    record = json.loads((out / record_file).read_text())
    assert record["warnings"] == [message] and record["pairs_requested"] == 100000
    assert record[used] + record.get("pairs_skipped", 0) == 8


@pytest.mark.parametrize("command, message", [("finetune", "interrupted; resume with --resume"),
                                              ("probe", "interrupted")])
def test_ctrl_c_says_how_to_resume_and_exits_130(
    command: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("vitplast.train.finetune", interrupted)
    monkeypatch.setattr("vitplast.train.probe.linear_probe", interrupted)
    code, _, err = cli([command, "--out", str(tmp_path / "x")], capsys)
    assert code == 130 and err == message + "\n"


def test_progress_bars_stay_off_stderr_when_it_is_not_a_terminal() -> None:
    import io

    from rich.console import Console

    from vitplast.cli.progress import rich_progress

    sink = io.StringIO()
    with rich_progress(Console(file=sink, force_terminal=False)) as start:
        advance = start("pairs", 3)
        for _ in range(3):
            advance(1)
    assert sink.getvalue() == ""  # a short job off a terminal prints nothing (the heartbeat waits 30 s)
    with rich_progress(Console(file=sink, force_terminal=True)) as start:
        start("pairs", 3)(3)
    assert "pairs" in sink.getvalue()  # on a terminal the bar is drawn


def test_long_work_off_a_terminal_prints_a_heartbeat_line() -> None:
    """Off a terminal (logs, CI), a plain line with the phase and its count every heartbeat interval."""
    import io
    import time

    from rich.console import Console

    from vitplast.cli.progress import rich_progress

    sink = io.StringIO()
    with rich_progress(Console(file=sink, force_terminal=False), heartbeat_s=0.05) as start:
        advance = start("pairs", 10)
        advance(4)
        time.sleep(0.3)
    lines = sink.getvalue().splitlines()
    assert len(lines) >= 2 and all(ln.endswith("pairs: 4/10") and ln.startswith("[0:00:0") for ln in lines)


@pytest.mark.parametrize("command, hint", [("finetune", "resume with --resume"),
                                           ("sweep", "re-run the same command to resume"),
                                           ("reproduce", "re-run the same command to resume"),
                                           ("analyze", None)])
def test_interrupted_names_the_way_to_continue(command: str, hint: str | None,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from vitplast.cli import _interrupted

    with pytest.raises(SystemExit) as exc:
        _interrupted([command, "--out", "x"])
    assert exc.value.code == 130
    assert capsys.readouterr().err == ("interrupted" + (f"; {hint}" if hint else "")) + "\n"


def test_16_bit_gradient_is_scaled_not_saturated(tmp_path: Path) -> None:
    from vitplast.data.base import load_rgb

    ramp = np.tile(np.arange(0, 65536, 257, dtype=np.uint16), (4, 1))  # 0, 257, ..., 65535: 256 levels
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    rgb = np.asarray(load_rgb(tmp_path / "g16.png"))
    assert rgb.shape == (4, 256, 3) and (rgb == rgb[..., :1]).all()
    np.testing.assert_array_equal(rgb[0, :, 0], np.arange(256))  # v * 255 / 65535 exactly
    Image.fromarray(ramp.astype(np.int32) * 7).save(tmp_path / "i32.tif")  # 32-bit integers above 65535
    wide = np.asarray(load_rgb(tmp_path / "i32.tif"))[0, :, 0].astype(int)
    assert wide.max() == 255 and (np.diff(wide) >= 0).all() and (wide < 255).mean() > 0.9


class _FailsAt(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Like ``base`` until ``n`` items were read; then an unreadable image."""

    def __init__(self, base: torch.utils.data.Dataset, n: int) -> None:  # type: ignore[type-arg]
        self.base, self.n, self.reads = base, n, 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> object:
        self.reads += 1
        if self.reads > self.n:
            raise VitplastError("unreadable image broken.png: truncated")
        return self.base[i]


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path: Path) -> None:
    from vitplast.data import DataContext, load_data
    from vitplast.train import finetune

    bundle = load_data("random:16", DataContext(input_size=32))
    bundle.train = _FailsAt(bundle.train, 2 * 4)  # batches of 4: the error comes at step 3
    out = tmp_path / "run"
    for _ in range(2):  # the second attempt does not ask for --resume
        with pytest.raises(VitplastError, match="unreadable image"):
            finetune("timm:vit_micro_patch4_32", bundle, out=out, steps=5, batch_size=4, eval_every=100,
                     random_weights=True, device="cpu")
        assert not out.exists()
        bundle.train.reads = 0  # type: ignore[attr-defined]


def test_resume_skips_a_damaged_last_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With last.pt truncated, --resume continues from last.prev.pt and ends as an uninterrupted run."""
    from vitplast.train import finetune

    args = dict(steps=4, batch_size=4, eval_every=1, random_weights=True, device="cpu")

    def stop(step: int, _: object) -> None:
        if step == 3:
            raise KeyboardInterrupt

    whole = finetune("timm:vit_micro_patch4_32", "random:16", out=tmp_path / "whole", **args)  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        finetune("timm:vit_micro_patch4_32", "random:16", out=tmp_path / "cut", callback=stop, **args)  # type: ignore[arg-type]
    last = tmp_path / "cut" / "last.pt"
    assert (tmp_path / "cut" / "last.prev.pt").is_file()
    last.write_bytes(last.read_bytes()[:500])
    capsys.readouterr()
    resumed = finetune("timm:vit_micro_patch4_32", "random:16", out=tmp_path / "cut", resume=True, **args)  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "last.pt is truncated or damaged" in err and "resuming from the previous checkpoint last.prev.pt" in err
    for key in ("best_step", "best_val_acc", "test_acc", "test_loss"):
        assert resumed.result[key] == whole.result[key], key
    assert not last.exists() and not (tmp_path / "cut" / "last.prev.pt").exists()


def test_evaluate_with_label_map_index_records_the_mapping(
    scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(scene / "run", run)
    code, out, err = cli(["evaluate", str(run), "--data", f"folder:{scene}/atoj", "--split", "train",
                          "--label-map", "index", "--device", "cpu"], capsys)
    assert code == 0, err
    entry = json.loads((run / "result.json").read_text())["evaluations"][-1]
    assert entry["label_map"] == {c: f"class{i}" for i, c in enumerate("abcdefghij")}
    assert json.loads(out)["n"] == entry["n"]
