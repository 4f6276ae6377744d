"""Hostile or damaged files that commands read back: exit code 2, one ``error:`` line naming the file, no traceback,
nothing executed and nothing new on disk.

Each row of :data:`ROWS` is ``(id, plant, argv, message)``: ``plant`` maps a path under the test's folder to the
bytes written there before the command runs (a callable gets the folder and returns the bytes); ``{tmp}`` in an
argument is that folder, a copy of the fixtures of :func:`scene` (an interrupted run with a ``last.pt``).
A planted pickle payload would create ``{tmp}/MARKER`` if it ran; the snapshot check sees that file.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.test_bad_input import snapshot
from tests.test_train_cli import cli
from vitplast.errors import VitplastError

MICRO = ["--model", "timm:vit_micro_patch4_32", "--random-weights", "--device", "cpu"]
RESUME = ["finetune", *MICRO, "--data", "random:16", "--steps", "4", "--batch-size", "4", "--eval-every", "2",
          "--resume", "--out", "{tmp}/interrupted"]


class Payload:
    """Unpickling it opens (creates) ``marker``: the stand-in for arbitrary code in a crafted file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (self.marker, "w")


def torch_payload(tmp: Path) -> bytes:
    """A genuine torch zip archive whose pickle calls ``open`` (as ``torch.save`` writes any object)."""
    buf = io.BytesIO()
    torch.save({"weights": Payload(tmp / "MARKER"), "state": {"step": 2}}, buf)
    return buf.getvalue()


def bare_payload(tmp: Path) -> bytes:
    return pickle.dumps({"weights": Payload(tmp / "MARKER")})


def torch_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


Plant = dict[str, bytes | Callable[[Path], bytes]]
ROWS: list[tuple[str, Plant, list[str], str]] = [
    # resume state: loaded with weights_only=True, nothing executed
    ("resume-torch-pickle-payload", {"interrupted/last.pt": torch_payload}, RESUME,
     "last.pt holds more than tensors and plain values (refused, not loaded: GLOBAL io.open)"),
    ("resume-bare-pickle-payload", {"interrupted/last.pt": bare_payload}, RESUME,
     "last.pt is not a torch checkpoint archive"),
    ("resume-numpy-in-state", {"interrupted/last.pt": lambda _: torch_bytes({"rng": __import__("numpy").zeros(3)})},
     RESUME, "last.pt holds more than tensors and plain values"),
    ("resume-not-a-dict", {"interrupted/last.pt": lambda _: torch_bytes([1, 2])}, RESUME,
     "last.pt is not a vitplast resume state (a list)"),
    ("resume-rng-not-a-tensor", {"interrupted/last.pt": lambda _: torch_bytes(
        {"weights": {}, "optimizer": {}, "rng": [1], "state": {}})}, RESUME, "last.pt is not a vitplast resume state"),
    ("resume-empty-last", {"interrupted/last.pt": b""}, RESUME, "last.pt is not a torch checkpoint archive"),
]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interrupted run (checkpoint at step 2 of 4) in ``interrupted/``."""
    from vitplast.train import finetune

    root = tmp_path_factory.mktemp("files")
    torch.set_num_threads(1)

    def stop(step: int, _: object) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune("timm:vit_micro_patch4_32", "random:16", "full", out=root / "interrupted", steps=4, eval_every=2,
                 batch_size=4, random_weights=True, device="cpu", callback=stop)
    assert (root / "interrupted" / "last.pt").is_file()
    return root


@pytest.mark.parametrize("plant, argv, message", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_file(
    plant: Plant, argv: list[str], message: str, scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp = tmp_path / "t"
    shutil.copytree(scene, tmp)
    monkeypatch.chdir(tmp)
    for rel, content in plant.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(content(tmp) if callable(content) else content)
    before = snapshot(tmp)
    code, _, err = cli([a.replace("{tmp}", str(tmp)) for a in argv], capsys)
    lines = err.splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert any(str(tmp / rel) in lines[0] for rel in plant), "the line names the file"
    assert "Traceback" not in err
    assert not (tmp / "MARKER").exists(), "the planted payload ran"
    assert snapshot(tmp) == before


@pytest.mark.parametrize("make", [torch_payload, bare_payload])
def test_the_payloads_would_run_if_unpickled_and_the_loader_refuses_them(
    make: Callable[[Path], bytes], tmp_path: Path
) -> None:
    """The payload is real (plain unpickling creates the marker), and :func:`load_torch` never runs it."""
    from vitplast.train.checkpoint import load_torch

    (tmp_path / "last.pt").write_bytes(make(tmp_path))
    with pytest.raises(VitplastError, match=re.escape(str(tmp_path / "last.pt"))):
        load_torch(tmp_path / "last.pt")
    assert not (tmp_path / "MARKER").exists()
    with contextlib.suppress(RuntimeError):  # a bare pickle runs as torch reads its "magic number", then fails
        torch.load(tmp_path / "last.pt", weights_only=False)  # what the loader must never do
    assert (tmp_path / "MARKER").exists()


def test_the_resume_state_round_trips_with_weights_only(scene: Path) -> None:
    """What a run saves is loadable with ``weights_only=True``: tensors and plain values only."""
    state = torch.load(scene / "interrupted" / "last.pt", map_location="cpu", weights_only=True)
    assert set(state) >= {"weights", "optimizer", "rng", "state"} and state["state"]["step"] == 2
    assert state["rng"].dtype == torch.uint8


def test_no_source_file_unpickles_or_loads_unsafe_yaml() -> None:
    """Every ``torch.load`` in the package passes ``weights_only=True``; no pickle, marshal, eval or unsafe YAML."""
    root = Path(__file__).parents[1] / "src" / "vitplast"
    text = {p: p.read_text() for p in root.rglob("*.py")}
    loads = [(p, m) for p, s in text.items() for m in re.finditer(r"torch\.load\(([^)]*)\)", s)]
    assert loads and all("weights_only=True" in m.group(1) for _, m in loads), loads
    banned = re.compile(r"\bpickle\.loads?\(|\bmarshal\.|(?<![.\w])(?<!def )eval\(|(?<![.\w])exec\(|yaml\.(unsafe_)?load\((?!.*_loader\(\))"
                        r"|yaml\.full_load|UnsafeLoader|yaml\.Loader\b")
    assert not [(p, m.group(0)) for p, s in text.items() for m in banned.finditer(s)]
