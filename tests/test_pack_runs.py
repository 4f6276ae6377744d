"""``scripts/pack_runs.py``: the finished tasks of a sweep folder, their small files only, restored byte for byte."""

from __future__ import annotations

import importlib.util
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pack_runs.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pack_runs", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sweep(root: Path) -> None:
    done = root / "runs" / "a1"
    done.mkdir(parents=True)
    for name, data in [("config.json", b"{}"), ("result.json", b'{"test_acc": 0.5}'), ("metrics.jsonl", b"{}\n"),
                       ("test_hits.npz", b"\x00\x01"), ("best.safetensors", b"w"), ("curves.png", b"p")]:
        (done / name).write_bytes(data)
    running = root / "runs" / "b2"
    running.mkdir()
    (running / "config.json").write_bytes(b"{}")
    (running / "last.pt").write_bytes(b"state")
    probe = root / "probes" / "c3"
    probe.mkdir(parents=True)
    (probe / "result.json").write_bytes(b"{}")
    analysis = root / "plasticity" / "d4"
    analysis.mkdir(parents=True)
    for name in ("plasticity.json", "plasticity.csv", "plasticity.png"):
        (analysis / name).write_bytes(b"a")
    unfinished = root / "plasticity" / "e5"
    unfinished.mkdir()
    (unfinished / "plasticity.csv").write_bytes(b"partial")
    stray = root / "elsewhere" / "f6"
    stray.mkdir(parents=True)
    (stray / "result.json").write_bytes(b"{}")
    (root / "plan.json").write_bytes(b"[]")


def test_packs_finished_tasks_without_weights_and_restores_them(tmp_path: Path) -> None:
    mod = _module()
    root, archive, back = tmp_path / "sweep", tmp_path / "runs.tar.gz", tmp_path / "back"
    _sweep(root)
    assert mod.main([str(root), str(archive)]) == 0
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        tar.extractall(back, filter="data")
    assert names == ["plasticity/d4/plasticity.csv", "plasticity/d4/plasticity.json", "probes/c3/result.json",
                     "runs/a1/config.json", "runs/a1/metrics.jsonl",
                     "runs/a1/result.json", "runs/a1/test_hits.npz"]
    for name in names:
        assert (back / name).read_bytes() == (root / name).read_bytes()
    assert not archive.with_name(archive.name + ".part").exists()


def test_a_folder_without_finished_tasks_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = _module()
    (tmp_path / "empty" / "runs" / "x").mkdir(parents=True)
    assert mod.main([str(tmp_path / "empty"), str(tmp_path / "out.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert not (tmp_path / "out.tar.gz").exists()
