"""Bad options, output folders, models and data across all commands: exit code 2, one ``error:`` line, no
traceback, nothing new or changed on disk.

Each row of :data:`ROWS` is ``(id, argv, message)``; ``{tmp}`` is the test's copy of :func:`scene` (no training:
a file, a dangling link, a loop of links, a folder that is not a sweep, folder data sets with a flaw each, a
timm checkpoint of the wrong shapes). Every row fails before heavy work (the models are random micro-ViTs, the
data ``random:N`` or tiny folders). Rows with ``READ_ONLY`` run with file creation failing as on a read-only file
system. The named tests after the table cover what is not a plain refusal: disk full, the run-folder lock, the
warning of ``recommend --images`` and the compositing of grey + alpha images.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_bad_input import READ_ONLY, refused_line
from tests.test_train_cli import cli

MICRO = ["--model", "timm:vit_micro_patch4_32", "--random-weights"]
CPU = ["--device", "cpu"]
TINY = ["--data", "random:16", "--steps", "2", "--batch-size", "4", "--eval-every", "1"]
ANALYZE = ["analyze", *MICRO, *CPU, "--source", "random:8", "--target", "random:8", "--pairs", "4"]
BOUNDS = ["bounds", *MICRO, *CPU, "--source", "random:8", "--data", "random:8", "--pairs", "4"]
FINETUNE = ["finetune", *MICRO, *CPU, *TINY]
PROBE = ["probe", *MICRO, *CPU, "--data", "random:16"]
PRETRAIN = ["pretrain", "--data", "random:16", "--steps", "2", "--batch-size", "4", *CPU]
LANDSCAPE = ["landscape", *MICRO, *CPU, "--data", "random:16", "--steps", "3", "--batch-size", "4"]
RECOMMEND = ["recommend", *MICRO, *CPU, "--data", "random:16", "--selectors", "params"]
SWEEP = ["sweep", "--datasets", "random:16", "--executor", "local"]
REPRODUCE = ["reproduce", "--dry-run", "--random-weights"]
HUGE = "1180591620717411303424"  # 2^70
LONG = "n" * 300  # longer than any file system's NAME_MAX
NO_CUDA = not torch.cuda.is_available()
NO_MPS = not torch.backends.mps.is_available()

SEEDS: list[tuple[str, list[str], str]] = [
    ("finetune-seed-negative", [*FINETUNE, "--seed", "-1", "--out", "{tmp}/o"], "--seed must be >= 0, got -1"),
    ("finetune-seed-2^70", [*FINETUNE, "--seed", HUGE, "--out", "{tmp}/o"], "--seed must be <= 18446744073709551615"),
    ("pretrain-seed-negative", [*PRETRAIN, "--seed", "-1", "--out", "{tmp}/o"], "--seed must be >= 0"),
    ("pretrain-seed-2^70", [*PRETRAIN, "--seed", HUGE, "--out", "{tmp}/o"], "--seed must be <="),
    ("analyze-seed-negative", [*ANALYZE, "--seed", "-1", "--out", "{tmp}/o"], "--seed must be >= 0"),
    ("analyze-seed-2^70", [*ANALYZE, "--seed", HUGE, "--out", "{tmp}/o"], "--seed must be <="),
    ("bounds-seed-negative", [*BOUNDS, "--seed", "-1", "--out", "{tmp}/o"], "--seed must be >= 0"),
    ("landscape-seed-2^70", [*LANDSCAPE, "--seed", HUGE, "--out", "{tmp}/o"], "--seed must be <="),
    ("recommend-seed-negative", [*RECOMMEND, "--seed", "-1", "--out", "{tmp}/o"], "--seed must be >= 0"),
    ("sweep-seeds-negative", [*SWEEP, "--seeds", "0,-1", "--out", "{tmp}/o"], "--seed must be >= 0"),
    ("sweep-seeds-2^70", [*SWEEP, "--seeds", HUGE, "--out", "{tmp}/o"], "--seed must be <="),
    ("reproduce-seeds-negative", [*REPRODUCE, "--seeds", "-1", "--out", "{tmp}/o"], "--seeds must be >= 0"),
    ("reproduce-seeds-2^70", [*REPRODUCE, "--seeds", HUGE, "--out", "{tmp}/o"], "--seeds must be <="),
]

LISTS: list[tuple[str, list[str], str]] = [
    ("analyze-embed-scale-empty-item", [*ANALYZE, "--embed-scale", "1,,3", "--out", "{tmp}/o"],
     "--embed-scale has an empty item in '1,,3'"),
    ("analyze-embed-scale-trailing-comma", [*ANALYZE, "--embed-scale", "1,3,", "--out", "{tmp}/o"],
     "--embed-scale has an empty item"),
    ("sweep-lrs-empty-item", [*SWEEP, "--lrs", "1e-3,,1e-2", "--out", "{tmp}/o"], "--lrs has an empty item"),
    ("sweep-seeds-leading-comma", [*SWEEP, "--seeds", ",1", "--out", "{tmp}/o"], "--seeds has an empty item"),
    ("sweep-datasets-empty-item", ["sweep", "--datasets", "random:16,,random:8", "--out", "{tmp}/o"],
     "--datasets has an empty item"),
    ("sweep-groups-empty-item", [*SWEEP, "--groups", "mha,,ln1", "--out", "{tmp}/o"], "--groups has an empty item"),
    ("reproduce-lrs-empty-item", [*REPRODUCE, "--lrs", "1e-3,,1e-2", "--out", "{tmp}/o"], "--lrs has an empty item"),
    ("finetune-train-empty-item", [*FINETUNE, "--train", "mha,,ln1", "--out", "{tmp}/o"], "--train has an empty item"),
    ("landscape-groups-empty-item", [*LANDSCAPE, "--groups", "mha,", "--out", "{tmp}/o"], "--groups has an empty item"),
    ("recommend-selectors-empty-item", [*RECOMMEND[:-2], "--selectors", "params,,random", "--out", "{tmp}/o"],
     "--selectors has an empty item"),
]



def _on(device: str, cmd: list[str]) -> list[str]:
    """``cmd`` with ``--device device`` (replacing its own) and ``--out {tmp}/o``."""
    at = cmd.index("--device") if "--device" in cmd else len(cmd)
    return [*cmd[:at], *cmd[at + 2:], "--device", device, "--out", "{tmp}/o"]


DEVICES: list[tuple[str, list[str], str]] = [
    (f"{cmd[0]}-device-{name or 'empty'}", _on(name, cmd), message)
    for cmd in (FINETUNE, PROBE, PRETRAIN, ANALYZE, BOUNDS, LANDSCAPE, RECOMMEND)
    for name, message in (("", "--device must be one of auto, cpu, cuda, cuda:N, mps, got ''"),
                          ("quantum", "--device must be one of auto, cpu, cuda, cuda:N, mps, got 'quantum'"))
] + [
    ("sweep-device-empty", _on("", SWEEP), "device must be one of auto, cpu"),
]
# An accelerator this machine lacks: every command that takes a device, through the one resolving function.
ABSENT = [
    (f"{cmd[0]}-device-{name}", _on(name, cmd), message, absent)
    for cmd in (FINETUNE, PROBE, PRETRAIN, ANALYZE, BOUNDS, LANDSCAPE, RECOMMEND, SWEEP)
    for name, message, absent in (("mps", "MPS (Apple GPU) is not available on this machine", NO_MPS),
                                  ("cuda", "CUDA is not available on this machine", NO_CUDA))
]

RESOURCES: list[tuple[str, list[str], str]] = [
    ("sweep-cpus-nan", [*SWEEP, "--cpus-per-trial", "nan", "--out", "{tmp}/o"], "--cpus-per-trial must be a finite"),
    ("sweep-cpus-negative", [*SWEEP, "--cpus-per-trial", "-2", "--out", "{tmp}/o"], "--cpus-per-trial must be > 0"),
    ("sweep-gpus-nan", [*SWEEP, "--gpus-per-trial", "nan", "--out", "{tmp}/o"], "--gpus-per-trial must be a finite"),
    ("sweep-gpus-negative", [*SWEEP, "--gpus-per-trial", "-1", "--out", "{tmp}/o"], "--gpus-per-trial must be >= 0"),
    ("sweep-max-concurrent-0", [*SWEEP, "--max-concurrent", "0", "--out", "{tmp}/o"], "--max-concurrent must be >= 1"),
    ("sweep-executor-unknown", ["sweep", "--datasets", "random:16", "--executor", "slurm", "--out", "{tmp}/o"],
     "--executor must be one of auto, ray, local, got 'slurm'"),
    ("sweep-address-not-answering", [*SWEEP, "--address", "ray://127.0.0.1:9", "--out", "{tmp}/o"],
     "--address ray://127.0.0.1:9 does not answer"),
    ("sweep-address-malformed", [*SWEEP, "--address", "ray://nowhere", "--out", "{tmp}/o"],
     "--address must be ray://HOST:PORT"),
    ("reproduce-executor-unknown", [*REPRODUCE, "--executor", "slurm", "--out", "{tmp}/o"], "--executor must be one of"),
    ("reproduce-max-concurrent-0", [*REPRODUCE, "--max-concurrent", "0", "--out", "{tmp}/o"],
     "--max-concurrent must be >= 1"),
    ("reproduce-cpus-nan", [*REPRODUCE, "--cpus-per-trial", "nan", "--out", "{tmp}/o"], "--cpus-per-trial must be a"),
    ("reproduce-model-bogus", ["reproduce", "--dry-run", "--model", "bogus", "--out", "{tmp}/o"],
     "--model: unknown model spec 'bogus'"),
]

OUT = "{tmp}/o"
OUTPUTS: list[tuple[str, list[str], str]] = [
    *[(f"{cmd[0]}-out-empty", [*cmd, "--out", ""], "--out is empty") for cmd in (
        FINETUNE, PROBE, PRETRAIN, ANALYZE, BOUNDS, LANDSCAPE, RECOMMEND, SWEEP, REPRODUCE,
        ["export", "--train", "mha", *MICRO])],
    ("evaluate-run-dir-empty", ["evaluate", "", "--data", "random:16"], "RUN_DIR is empty"),
    ("report-sweep-dir-empty", ["report", ""], "SWEEP_DIR is empty"),
    ("recommend-export-empty", [*RECOMMEND, "--out", OUT, "--export", ""], "--export is empty"),
    *[(f"{cmd[0]}-out-dangling-link", [*cmd, "--out", "{tmp}/dangling"], "is a symbolic link to a missing target")
      for cmd in (FINETUNE, ANALYZE, SWEEP, LANDSCAPE)],
    ("analyze-out-under-dangling-link", [*ANALYZE, "--out", "{tmp}/dangling/sub"], "symbolic link to a missing"),
    *[(f"{cmd[0]}-out-link-loop", [*cmd, "--out", "{tmp}/loop1"], "its symbolic links form a loop")
      for cmd in (FINETUNE, ANALYZE, PROBE, RECOMMEND)],
    ("analyze-out-under-link-loop", [*ANALYZE, "--out", "{tmp}/loop1/sub"], "its symbolic links form a loop"),
    *[(f"{cmd[0]}-out-name-too-long", [*cmd, "--out", "{tmp}/" + LONG], "a name in it is too long (300 characters")
      for cmd in (FINETUNE, ANALYZE, SWEEP, PRETRAIN)],
    ("sweep-fresh-into-other-folder", [*SWEEP, "--out", "{tmp}/notsweep"], "is not empty and holds no sweep"),
    ("recommend-export-is-file", [*RECOMMEND, "--out", OUT, "--export", "{tmp}/FILE"],
     "--export {tmp}/FILE exists and is not a directory"),
    ("recommend-export-dangling", [*RECOMMEND, "--out", OUT, "--export", "{tmp}/dangling"],
     "--export {tmp}/dangling: {tmp}/dangling is a symbolic link"),
    ("recommend-export-read-only", [READ_ONLY, *RECOMMEND, "--out", OUT, "--export", "{tmp}/new"], "not writable"),
]

MODELS_AND_DATA: list[tuple[str, list[str], str]] = [
    ("analyze-hf-missing-dir", ["analyze", "--model", "hf:/nonexistent/dir", "--out", OUT],
     "HF model directory /nonexistent/dir does not exist"),
    ("finetune-hf-missing-dir", ["finetune", "--model", "hf:./nonexistent", "--out", OUT],
     "HF model directory ./nonexistent does not exist"),
    ("analyze-timm-wrong-shapes", ["analyze", "--model", "timm:vit_micro_patch4_32@{tmp}/wrong.safetensors", *CPU,
                                   "--out", OUT], "checkpoint {tmp}/wrong.safetensors does not fit the architecture"),
    ("finetune-test-class-not-in-train", [*FINETUNE, "--data", "folder:{tmp}/extratest", "--out", OUT],
     "test/ has class 'c' that train/ lacks"),
    ("analyze-val-class-not-in-train", [*ANALYZE, "--target", "folder:{tmp}/extraval", "--out", OUT],
     "val/ has class 'c' that train/ lacks"),
    ("finetune-text-named-jpg", [*FINETUNE, "--data", "folder:{tmp}/fakejpg", "--out", OUT],
     "unreadable image {tmp}/fakejpg/b/notes.jpg"),
    ("analyze-text-named-jpg", [*ANALYZE, "--target", "folder:{tmp}/fakejpg", "--out", OUT],
     "unreadable image {tmp}/fakejpg/b/notes.jpg"),
    ("finetune-400-megapixels", [*FINETUNE, "--data", "folder:{tmp}/bomb", "--out", OUT],
     "unreadable image {tmp}/bomb/b/huge.png"),
    ("analyze-400-megapixels", [*ANALYZE, "--target", "folder:{tmp}/bomb", "--out", OUT],
     "unreadable image {tmp}/bomb/b/huge.png"),
    ("recommend-one-class", [*RECOMMEND[:-4], "--data", "folder:{tmp}/oneclass", "--selectors", "params",
                             "--out", OUT], "training and probing need at least 2"),
    ("landscape-grid-100001", [*LANDSCAPE, "--grid", "100001", "--out", OUT], "--grid 100001 asks for 10,000,200,001"),
    ("landscape-grid-1001-two-groups", [*LANDSCAPE, "--grid", "1001", "--groups", "mha,ln1", "--out", OUT],
     "use --grid 707 or less"),
]

ROWS = SEEDS + LISTS + DEVICES + RESOURCES + OUTPUTS + MODELS_AND_DATA
PARAMS = [pytest.param(argv, message, id=name) for name, argv, message in ROWS] + [
    pytest.param(argv, message, id=name, marks=pytest.mark.skipif(not absent, reason="the device exists here"))
    for name, argv, message, absent in ABSENT
]


def _png(path: Path, value: int, mode: str = "RGB", size: int = 32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).convert(mode).save(path)


def _classes(root: Path, names: str, n: int = 3) -> None:
    for k, c in enumerate(names):
        for i in range(n):
            _png(root / c / f"{i}.png", 40 * k + 10 * i)


def _bomb_png(path: Path, side: int = 20000) -> None:
    """A PNG whose header claims ``side`` x ``side`` grey pixels (400 megapixels): a few bytes on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixtures named in the module docstring (built once, without training; each test works on a copy)."""
    from safetensors.torch import save_file

    from vitplast.models import load_model

    root = tmp_path_factory.mktemp("scene")
    (root / "FILE").write_text("a file\n")
    os.symlink(root / "nowhere", root / "dangling")
    os.symlink(root / "loop2", root / "loop1")
    os.symlink(root / "loop1", root / "loop2")
    (root / "notsweep").mkdir()
    (root / "notsweep" / "thesis.tex").write_text("\\documentclass{article}\n")
    _classes(root / "oneclass", "a", 6)
    for split, names in (("train", "ab"), ("test", "abc")):
        _classes(root / "extratest" / split, names)
    for split, names in (("train", "ab"), ("test", "ab"), ("val", "abc")):
        _classes(root / "extraval" / split, names)
    _classes(root / "fakejpg", "ab")
    (root / "fakejpg" / "b" / "notes.jpg").write_text("not an image, only a name\n")
    _classes(root / "bomb", "ab")
    _bomb_png(root / "bomb" / "b" / "huge.png")
    state = load_model("timm:vit_micro_patch4_32", random_weights=True).module.state_dict()
    state["pos_embed"] = torch.zeros(1, 5, state["pos_embed"].shape[-1])  # 4 patches + cls: another image size
    save_file({k: v.contiguous() for k, v in state.items()}, str(root / "wrong.safetensors"))
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry under ``root`` (links not followed): size, modification time and link target of files and
    links; folders by name only (the write check creates and removes a probe file in the folder it checks)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            if p.is_dir() and not p.is_symlink():
                out[str(p.relative_to(root))] = (0, 0, "folder")
            else:
                out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, os.readlink(p) if p.is_symlink() else "")
    return out


@pytest.fixture
def tmp(scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the scene (links kept as links) as the current folder."""
    copy = tmp_path / "t"
    shutil.copytree(scene, copy, symlinks=True)
    for link in ("dangling", "loop1", "loop2"):  # point the copied links into the copy
        target = Path(os.readlink(copy / link))
        (copy / link).unlink()
        os.symlink(copy / target.name, copy / link)
    monkeypatch.chdir(copy)
    return copy


@pytest.mark.parametrize("argv, message", PARAMS)
def test_bad_input(argv: list[str], message: str, tmp: Path, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert message.replace("{tmp}", str(tmp)) in refused_line(argv, tmp, capsys, monkeypatch, snapshot)


def test_the_table_covers_every_kind_of_value_and_every_command_with_a_device_or_an_out() -> None:
    ids = [r[0] for r in ROWS] + [r[0] for r in ABSENT]
    assert len(ids) == len(set(ids)) and len(ids) >= 100
    commands = {r[1][0] for r in OUTPUTS if r[1][0] != READ_ONLY}
    assert commands >= {"analyze", "bounds", "pretrain", "finetune", "probe", "evaluate", "sweep", "report",
                        "reproduce", "landscape", "recommend", "export"}
    assert {r[1][0] for r in ABSENT} == {"analyze", "bounds", "pretrain", "finetune", "probe", "sweep", "landscape",
                                         "recommend"}


def test_the_kinds_of_values_parse_what_they_should() -> None:
    """The parsers accept the usual spellings (commas, spaces, both), and bounds hold at their edges."""
    from vitplast.configs import SEED_MAX, check_device, parse_numbers, split_list
    from vitplast.train.config import TrainConfig

    assert split_list("a, b c,d", "--x") == ("a", "b", "c", "d") and split_list("  ", "--x") == ()
    assert parse_numbers("1e-3, 3e-3", "--lrs", float) == (1e-3, 3e-3)
    assert parse_numbers("0 42 3407", "--seeds", int) == (0, 42, 3407)
    for name in ("auto", "cpu", "cuda", "cuda:1", "mps"):
        check_device("--device", name)
    assert TrainConfig(model="m", data="d", seed=SEED_MAX).seed == 2**64 - 1  # exact: no float rounding


# --- not plain refusals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, file", [
    ([*FINETUNE, "--out", "{tmp}/run"], "{tmp}/run/config.json"),
    ([*ANALYZE, "--out", "{tmp}/a"], "{tmp}/a/plasticity.csv"),
])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(
    argv: list[str], file: str, tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    before = snapshot(tmp)
    code, _, err = cli([a.replace("{tmp}", str(tmp)) for a in argv], capsys)
    assert code == 2, err
    assert err == f"error: cannot write {file.replace('{tmp}', str(tmp))}: No space left on device\n"
    assert snapshot(tmp) == before


def test_a_full_disk_outside_the_atomic_writes_is_one_line_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append to metrics.jsonl or a torch.save that hits a full disk: the command line's net names the file."""
    raised = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "last.pt"))

    def fails(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr("vitplast.train.finetune", fails)
    code, _, err = cli(["finetune", "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and err == f"error: cannot write {tmp_path}/run/last.pt: No space left on device\n"
    raised = PermissionError(errno.EACCES, "Permission denied")
    with pytest.raises(PermissionError):  # other OS errors are not disguised as a full disk
        cli(["finetune", "--out", str(tmp_path / "run")], capsys)


def test_a_second_finetune_on_a_locked_folder_is_refused_and_the_lock_goes_with_the_run(
    tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process's lock (held here by the test) refuses the run; a finished run releases and removes it."""
    run = tmp / "run"
    run.mkdir()
    with open(run / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = snapshot(tmp)
        code, _, err = cli([*FINETUNE, "--out", str(run)], capsys)
        assert code == 2 and err == f"error: --out {run} is in use by another run (it holds .lock): wait for it to " \
                                    "end or choose another --out\n"
        assert snapshot(tmp) == before
    (run / ".lock").unlink()
    code, _, err = cli([*FINETUNE, "--no-plots", "--out", str(run)], capsys)
    assert code == 0, err
    assert (run / "result.json").is_file() and not (run / ".lock").exists()


def test_the_lock_refuses_a_second_holder_until_the_first_lets_go(tmp_path: Path) -> None:
    from vitplast.errors import VitplastError
    from vitplast.train.rundir import RunDir

    rd = RunDir(tmp_path / "new" / "run")
    with rd.locked():
        assert rd.lock.is_file()
        with pytest.raises(VitplastError, match="is in use by another run"), RunDir(rd.path).locked():
            pass
    assert not (tmp_path / "new" / "run").exists()  # created by the lock, left empty: removed
    with RunDir(rd.path).locked():
        pass


def test_recommend_records_the_images_it_used_and_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vitplast.data import DataContext, load_data

    code, _, err = cli([*RECOMMEND, "--images", "1000000000", "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    used = len(load_data("random:16", DataContext(input_size=32)).train)  # type: ignore[arg-type]
    message = f"--images 1000000000 is more than the data hold: using {used}"
    assert [ln for ln in err.splitlines() if ln.strip()] == [f"warning: {message}"]
    record = json.loads((tmp_path / "r" / "recommend.json").read_text())
    assert record["images_used"] == used and record["warnings"] == [message]
    assert record["config"]["images"] == 1000000000


def test_grey_alpha_is_composited_like_rgba_and_palette(tmp_path: Path) -> None:
    """The same half-transparent grey picture saved as LA, RGBA and P (transparent colour) reads as one image."""
    from vitplast.data.base import load_rgb

    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    alpha = np.where(np.arange(16)[:, None] < 8, 0, 255).astype(np.uint8) * np.ones((1, 16), np.uint8)
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(tmp_path / "la.png")
    Image.fromarray(np.stack([grey, grey, grey, alpha], -1), "RGBA").save(tmp_path / "rgba.png")
    la, rgba = (np.asarray(load_rgb(tmp_path / f)) for f in ("la.png", "rgba.png"))
    np.testing.assert_array_equal(la, rgba)
    assert (la[:8] == 255).all() and (la[8:, :, 0] == grey[8:]).all()  # transparent rows: the white background
    pal = Image.fromarray(grey).convert("P")
    pal.info["transparency"] = pal.getpixel((0, 0))  # the colour of grey 0 is transparent
    pal.save(tmp_path / "p.png", transparency=pal.getpixel((0, 0)))
    p = np.asarray(load_rgb(tmp_path / "p.png"))
    assert (p[:, 0] == 255).all() and (p[:, 1:, 0] == grey[:, 1:]).all()


@pytest.mark.parametrize("command, message", [("sweep", "interrupted; re-run the same command to resume"),
                                              ("reproduce", "interrupted; re-run the same command to resume"),
                                              ("pretrain", "interrupted; resume with --resume")])
def test_ctrl_c_says_how_each_command_resumes(command: str, message: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep has no --resume: re-running the same command continues it."""
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("vitplast.cli.sweep._execute", interrupted)
    monkeypatch.setattr("vitplast.train.pretrain.pretrain", interrupted)
    args = {"sweep": SWEEP, "reproduce": ["reproduce", "--random-weights", "--quick"], "pretrain": PRETRAIN}[command]
    code, _, err = cli([*args, "--out", str(tmp_path / "x")], capsys)
    assert code == 130 and err.splitlines()[-1] == message, err


def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    """A run folder locked by another process is refused here; when that process ends (also by SIGKILL) the
    lock is gone with it, and the folder can be locked again."""
    import signal
    import subprocess
    import sys

    from vitplast.errors import VitplastError
    from vitplast.train.rundir import RunDir

    path = tmp_path / "run"
    code = ("import sys\nfrom pathlib import Path\nfrom vitplast.train.rundir import RunDir\n"
            f"with RunDir(Path({str(path)!r})).locked():\n    print('held', flush=True)\n    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(VitplastError, match="is in use by another run"), RunDir(path).locked():
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    with RunDir(path).locked():  # the killed holder's lock file is still there, but no longer locked
        assert (path / ".lock").is_file()
