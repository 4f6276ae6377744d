"""Hostile or damaged files that commands read back: exit code 2, one ``error:`` line naming the file, no traceback,
nothing executed and nothing new on disk.

Each row of :data:`ROWS` is ``(id, plant, argv, message)``: ``plant`` maps a path (or a glob: its first match) under
the test's folder to the bytes written there before the command runs (a callable gets the folder and returns the
bytes); ``{tmp}`` in an argument is that folder, a copy of the fixtures of :func:`scene`. A planted pickle payload
would create ``{tmp}/MARKER`` if it ran; the snapshot check sees that file. The tests after the table check that
the payloads are real, that what a run saves loads with ``weights_only=True``, and that the package has no unsafe
load.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.test_bad_input import snapshot
from tests.test_report_build import fabricate
from tests.test_train_cli import cli
from vitplast.errors import VitplastError

MICRO = ["--model", "timm:vit_micro_patch4_32", "--random-weights", "--device", "cpu"]
TINY = ["--data", "random:16", "--steps", "4", "--batch-size", "4", "--eval-every", "2"]
RESUME = ["finetune", *MICRO, *TINY, "--resume", "--out", "{tmp}/interrupted"]


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


def resume_state_with(**changes: object) -> Callable[[Path], bytes]:
    """The interrupted run's own resume state with ``changes``: plain data of the wrong shape or type."""
    def make(tmp: Path) -> bytes:
        state = torch.load(tmp / "interrupted" / "last.pt", weights_only=True)
        state.update(changes)
        return torch_bytes(state)
    return make


Plant = dict[str, bytes | Callable[[Path], bytes]]
EVALUATE = ["evaluate", "{tmp}/run", "--data", "random:16", "--device", "cpu"]
REPORT = ["report", "{tmp}/sweep", "--no-figures"]
RUN_RESULT = "sweep/runs/*/result.json"  # a glob: the first finished run of the fabricated sweep
NOT_UTF8 = b"\xff\xfe\x00garbage\x80\x81\n"
DEEP = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
SWEEP = b"models: [timm:vit_micro_patch4_32]\ndatasets: [random:16]\n"


def sweep_cmd() -> list[str]:
    return ["sweep", "{tmp}/spec.yaml", "--out", "{tmp}/s", "--executor", "local"]


def edited(rel: str, **changes: object) -> Callable[[Path], bytes]:
    """The scene's JSON file ``rel`` with ``changes`` applied (a value ``DROP`` removes the key)."""
    def make(tmp: Path) -> bytes:
        data = json.loads(next(iter(sorted(tmp.glob(rel)))).read_text())
        data.update(changes)
        return json.dumps({k: v for k, v in data.items() if v != "DROP"}).encode()
    return make


def cut(rel: str) -> Callable[[Path], bytes]:
    """The scene's file ``rel`` cut to half its length (a truncated write)."""
    def make(tmp: Path) -> bytes:
        data = next(iter(sorted(tmp.glob(rel)))).read_bytes()
        return data[: len(data) // 2]
    return make


def plan_with(**task: object) -> Callable[[Path], bytes]:
    """The sweep's plan with its first task changed."""
    def make(tmp: Path) -> bytes:
        plan = json.loads((tmp / "sweep" / "plan.json").read_text())
        plan["tasks"][0].update(task)
        return json.dumps(plan).encode()
    return make


def scores(text: str) -> bytes:
    return ("model,dataset,selector,group,score\n" + text).encode()


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
    ("resume-weight-not-a-tensor", {"interrupted/last.pt": resume_state_with(weights={"head.weight": 3})}, RESUME,
     "checkpoint {tmp}/interrupted/last.pt does not fit this run (checkpoint does not fit the model"),
    ("resume-step-text", {"interrupted/last.pt": resume_state_with(state={"step": "2"})}, RESUME,
     "last.pt does not fit this run (its counters must be numbers)"),
    ("resume-step-beyond-the-run", {"interrupted/last.pt": resume_state_with(state={"step": 10**9})}, RESUME,
     "last.pt does not fit this run (step 1000000000 is not in [0, 4])"),
    ("resume-unknown-counter", {"interrupted/last.pt": resume_state_with(state={"step": 2, "eta": 1})}, RESUME,
     "last.pt does not fit this run"),
    # a run's config.json, metrics.jsonl (finetune --resume) and result.json (evaluate, finetune --resume)
    ("resume-config-truncated", {"interrupted/config.json": cut("interrupted/config.json")}, RESUME,
     "config.json is not valid JSON"),
    ("resume-config-a-list", {"interrupted/config.json": b"[1, 2]\n"}, RESUME, "must hold a JSON object, not a list"),
    ("resume-config-not-utf8", {"interrupted/config.json": NOT_UTF8}, RESUME, "config.json is not UTF-8 text"),
    ("resume-config-deep", {"interrupted/config.json": DEEP}, RESUME, "config.json is nested more than 32 levels"),
    ("resume-config-train-text", {"interrupted/config.json": edited("interrupted/config.json", train="full")},
     RESUME, "'train' must be an object, not a string"),
    ("resume-metrics-damaged-row", {"interrupted/metrics.jsonl": b'{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n'},
     RESUME, "metrics.jsonl line 2 is not valid JSON"),
    ("resume-metrics-a-list-row", {"interrupted/metrics.jsonl": b'{"step": 1}\n[2]\n{"step": 3}\n'}, RESUME,
     "metrics.jsonl line 2 must hold a JSON object, not a list"),
    ("resume-metrics-step-text", {"interrupted/metrics.jsonl": b'{"step": "one"}\n'}, RESUME,
     "metrics.jsonl row 1 has no integer 'step'"),
    ("resume-metrics-not-utf8", {"interrupted/metrics.jsonl": NOT_UTF8}, RESUME, "metrics.jsonl is not UTF-8 text"),
    ("resume-finished-result-truncated", {"run/result.json": cut("run/result.json")},
     ["finetune", *MICRO, *TINY, "--resume", "--out", "{tmp}/run"], "result.json is not valid JSON"),
    ("evaluate-result-truncated", {"run/result.json": cut("run/result.json")}, EVALUATE,
     "result.json is not valid JSON"),
    ("evaluate-result-a-list", {"run/result.json": b"[]"}, EVALUATE, "result.json must hold a JSON object, not a list"),
    ("evaluate-result-not-utf8", {"run/result.json": NOT_UTF8}, EVALUATE, "result.json is not UTF-8 text"),
    ("evaluate-result-deep", {"run/result.json": DEEP}, EVALUATE, "result.json is nested more than 32 levels"),
    ("evaluate-result-evaluations-text", {"run/result.json": edited("run/result.json", evaluations="x")}, EVALUATE,
     "'evaluations' must be a list, not a string"),
    ("evaluate-result-acc-text", {"run/result.json": edited("run/result.json", test_acc="high")}, EVALUATE,
     "'test_acc' must be an integer or a number or null, not a string"),
    ("evaluate-config-classes-text", {"run/config.json": edited("run/config.json", num_classes="ten")}, EVALUATE,
     "'num_classes' must be an integer, not a string"),
    ("evaluate-config-no-fingerprint", {"run/config.json": edited("run/config.json", fingerprint="DROP")}, EVALUATE,
     "config.json lacks the key 'fingerprint'"),
    ("evaluate-config-empty", {"run/config.json": b""}, EVALUATE, "config.json is not valid JSON"),
    # the sweep file (safe YAML: no aliases, no duplicate keys, no object tags, plain text)
    ("sweep-binary-file", {"spec.yaml": bytes(range(256))}, sweep_cmd(), "spec.yaml is not UTF-8 text"),
    ("sweep-alias-bomb", {"spec.yaml": SWEEP + b"ablations:\n  - name: &a [x, x, x, x, x, x, x, x, x]\n"
                          b"  - name: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                          b"  - name: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"}, sweep_cmd(),
     "anchors and aliases (&name, *name) are not allowed"),
    ("sweep-merge-key", {"spec.yaml": SWEEP + b"train: &t {steps: 2}\nablations:\n  - {<<: *t, name: a}\n"}, sweep_cmd(),
     "anchors and aliases"),
    ("sweep-duplicate-key", {"spec.yaml": SWEEP + b"lrs: [0.1]\nlrs: [0.2]\n"}, sweep_cmd(),
     "(line 4, column 1): duplicate key 'lrs'"),
    ("sweep-duplicate-nested-key", {"spec.yaml": SWEEP + b"train: {steps: 2, steps: 3}\n"}, sweep_cmd(),
     "duplicate key 'steps'"),
    ("sweep-python-tag", {"spec.yaml": SWEEP + b"name: !!python/object/apply:os.system [touch MARKER]\n"},
     sweep_cmd(), "could not determine a constructor for the tag"),
    ("sweep-deep", {"spec.yaml": SWEEP + b"name: " + b"[" * 50_000 + b"]" * 50_000 + b"\n"}, sweep_cmd(),
     "spec.yaml is nested more than 32 levels"),
    ("sweep-device-quantum", {"spec.yaml": SWEEP + b"run: {device: quantum}\n"}, sweep_cmd(),
     "run.device must be one of auto, cpu, cuda, cuda:N, mps, got 'quantum'"),
    ("sweep-not-a-mapping", {"spec.yaml": b"- a\n- b\n"}, sweep_cmd(), "must hold a mapping"),
    # a sweep's plan, result files, metrics and tables (report)
    ("report-plan-truncated", {"sweep/plan.json": cut("sweep/plan.json")}, REPORT, "plan.json is not valid JSON"),
    ("report-plan-not-utf8", {"sweep/plan.json": NOT_UTF8}, REPORT, "plan.json is not UTF-8 text"),
    ("report-plan-a-list", {"sweep/plan.json": b"[]"}, REPORT, "plan.json must hold a JSON object, not a list"),
    ("report-plan-tasks-text", {"sweep/plan.json": b'{"name": "s", "tasks": "many"}'}, REPORT,
     "plan.json is not a vitplast sweep plan"),
    ("report-plan-path-traversal", {"sweep/plan.json": plan_with(id="../../outside")}, REPORT,
     "plan.json is not a vitplast sweep plan (ValueError: task '../../outside'"),
    ("report-plan-unknown-kind", {"sweep/plan.json": plan_with(kind="shell")}, REPORT,
     "plan.json is not a vitplast sweep plan"),
    ("report-plan-config-wrong", {"sweep/plan.json": plan_with(config={"model": 3})}, REPORT,
     "plan.json is not a vitplast sweep plan"),
    ("report-result-truncated", {RUN_RESULT: cut(RUN_RESULT)}, REPORT, "result.json is not valid JSON"),
    ("report-result-not-utf8", {RUN_RESULT: NOT_UTF8}, REPORT, "result.json is not UTF-8 text"),
    ("report-result-evaluations-wrong", {RUN_RESULT: edited(RUN_RESULT, evaluations=[1, 2])}, REPORT,
     "result.json is not a vitplast result"),
    ("report-result-acc-text", {RUN_RESULT: edited(RUN_RESULT, test_acc="0.9")}, REPORT,
     "result.json: 'test_acc' must be an integer or a number or null, not a string"),
    ("report-probe-acc-missing", {"sweep/probes/*/result.json": edited("sweep/probes/*/result.json", test_acc="DROP")},
     REPORT, "result.json lacks the key 'test_acc'"),
    ("report-metrics-garbage", {"sweep/runs/*/metrics.jsonl": NOT_UTF8}, REPORT, "metrics.jsonl is not UTF-8 text"),
    ("report-metrics-text-loss", {"sweep/runs/*/metrics.jsonl": b'{"kind": "eval", "step": 2, "val_loss": "low"}\n'},
     REPORT, "metrics.jsonl row 1: loss, lr, grad_norm, val_loss, val_acc and the values of grad_norm_groups must"),
    ("report-metrics-groups-list", {"sweep/runs/*/metrics.jsonl": b'{"kind": "train", "step": 1, '
                                    b'"grad_norm_groups": [1, 2]}\n'}, REPORT, "metrics.jsonl row 1"),
    ("report-metrics-eval-without-loss", {"sweep/runs/*/metrics.jsonl": b'{"kind": "eval", "step": 2}\n'}, REPORT,
     "metrics.jsonl row 1"),
    ("report-plasticity-not-utf8", {"sweep/plasticity/*/plasticity.csv": NOT_UTF8}, REPORT,
     "plasticity.csv is not UTF-8 text"),
    ("report-plasticity-no-mean", {"sweep/plasticity/*/plasticity.csv": b"model,layer,component\nm,0,mha\n"},
     REPORT, "plasticity.csv lacks the column(s) mean"),
    ("report-plasticity-text-mean", {"sweep/plasticity/*/plasticity.csv": b"layer,component,mean\n0,mha,1.5\n"
                                     b"1,mha,lots\n"}, REPORT, "column 'mean' must hold numbers, row 2 holds 'lots'"),
    ("report-bounds-text-bound", {"sweep/plasticity/*/bounds.csv": b"layer,component,variant,bound,rigorous\n"
                                  b"0,mha,x,big,True\n"}, REPORT, "bounds.csv column 'bound' must hold numbers"),
    ("report-scores-not-utf8", {"sweep/selectors/scores.csv": NOT_UTF8}, REPORT, "scores.csv is not UTF-8 text"),
    ("report-scores-empty", {"sweep/selectors/scores.csv": b""}, REPORT, "scores.csv is empty"),
    ("report-scores-no-score", {"sweep/selectors/scores.csv": b"model,dataset,selector,group\nmicro,a,fisher,mha\n"},
     REPORT, "scores.csv lacks the column(s) score"),
    ("report-scores-text-score", {"sweep/selectors/scores.csv": scores("micro,random:10,fisher,mha,high\n")},
     REPORT, "scores.csv column 'score' must hold numbers, row 1 holds 'high'"),
    ("report-scores-bool-score", {"sweep/selectors/scores.csv": scores("micro,random:10,fisher,mha,True\n")},
     REPORT, "column 'score' must hold numbers"),
    ("report-scores-unknown-group", {"sweep/selectors/scores.csv": scores("micro,random:10,fisher,attn,1.0\n")},
     REPORT, "scores.csv: unknown group 'attn'"),
    ("report-scores-ragged", {"sweep/selectors/scores.csv": scores("micro,random:10,fisher,mha,1,2,3\n")},
     REPORT, "scores.csv is not a readable CSV table"),
    # bounds --plasticity: the table is checked before the analysis runs
    ("bounds-plasticity-text", {"p.csv": b"layer,component,mean\nzero,mha,1\n"},
     ["bounds", *MICRO, "--plasticity", "{tmp}/p.csv", "--out", "{tmp}/b"], "p.csv column 'layer' must hold numbers"),
]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interrupted run (checkpoint at step 2 of 4) in ``interrupted/``, the same run finished in ``run/``, and a
    fabricated finished sweep (no training) in ``sweep/``."""
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
    finetune("timm:vit_micro_patch4_32", "random:16", "full", out=root / "run", steps=4, eval_every=2, batch_size=4,
             random_weights=True, device="cpu")
    fabricate(root / "sweep", n_datasets=2, groups=["full", "mha"])
    (root / "sweep" / "selectors").mkdir()
    return root


@pytest.mark.parametrize("plant, argv, message", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_file(
    plant: Plant, argv: list[str], message: str, scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tmp = tmp_path / "t"
    shutil.copytree(scene, tmp)
    monkeypatch.chdir(tmp)
    planted = []
    for rel, content in plant.items():
        path = next(iter(sorted(tmp.glob(rel))), tmp / rel)
        data = content(tmp) if callable(content) else content
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        planted.append(path)
    before = snapshot(tmp)
    code, _, err = cli([a.replace("{tmp}", str(tmp)) for a in argv], capsys)
    lines = err.splitlines()
    assert code == 2, err
    message = message.replace("{tmp}", str(tmp))
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert any(str(path) in lines[0] for path in planted), "the line names the file"
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
    """Every ``torch.load`` in the package passes ``weights_only=True``; no pickle, marshal, eval, unsafe YAML or
    ``np.load(allow_pickle=True)``."""
    root = Path(__file__).parents[1] / "src" / "vitplast"
    text = {p: p.read_text() for p in root.rglob("*.py")}
    loads = [(p, m) for p, s in text.items() for m in re.finditer(r"torch\.load\(([^)]*)\)", s)]
    assert loads and all("weights_only=True" in m.group(1) for _, m in loads), loads
    banned = re.compile(r"\bpickle\.loads?\(|\bmarshal\.|(?<![.\w])(?<!def )eval\(|(?<![.\w])exec\(|yaml\.(unsafe_)?load\((?!.*_loader\(\))"
                        r"|yaml\.full_load|UnsafeLoader|yaml\.Loader\b|allow_pickle=True")
    assert not [(p, m.group(0)) for p, s in text.items() for m in banned.finditer(s)]


def test_a_cut_last_line_is_dropped_but_a_damaged_earlier_line_is_refused(tmp_path: Path) -> None:
    """What an interrupted append leaves (the last line cut) reads as the complete rows before it."""
    from vitplast.reading import read_jsonl

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1}\n\n{"step": 2}\n{"step": 3, "lo')
    assert read_jsonl(log) == [{"step": 1}, {"step": 2}]
    log.write_text('{"step": 1}\n{"step": 3, "lo\n{"step": 2}\n')
    with pytest.raises(VitplastError, match="line 2 is not valid JSON"):
        read_jsonl(log)
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_plain_yaml_and_tables_still_read(tmp_path: Path) -> None:
    """The refusals do not touch ordinary files: YAML 1.2 floats, repeated values (not keys), empty number cells."""
    from vitplast.reading import read_table, read_yaml

    (tmp_path / "s.yaml").write_text("lrs: [1e-3, 0.01]\na: {x: 1}\nb: {x: 1}\nname: same\nother: same\n")
    assert read_yaml(tmp_path / "s.yaml") == {"lrs": [0.001, 0.01], "a": {"x": 1}, "b": {"x": 1}, "name": "same",
                                              "other": "same"}
    (tmp_path / "t.csv").write_text("layer,component,mean,extra\n0,mha,1.5,x\n1,ln1,,y\n")
    table = read_table(tmp_path / "t.csv", ("layer", "component", "mean"), ("layer", "mean"))
    assert table["layer"].tolist() == [0, 1] and table["mean"].iloc[0] == 1.5 and table["mean"].isna().iloc[1]


def test_a_rerun_sweep_refuses_a_planted_resume_state_and_records_it(tmp_path: Path) -> None:
    """The sweep path to ``last.pt``: re-running a sweep resumes its interrupted runs through the same loader."""
    from vitplast.sweep import build_plan, parse_sweep, run_sweep

    spec = parse_sweep({"models": ["timm:vit_micro_patch4_32"], "datasets": ["random:16"], "groups": ["ln1"],
                        "lrs": [0.01], "seeds": [0], "probe": False, "plasticity": False, "run": {"device": "cpu"},
                        "train": {"steps": 2, "batch_size": 8, "eval_every": 1, "random_weights": True}})
    out = tmp_path / "sweep"
    assert run_sweep(spec, out, executor="local").ran == 1
    (task,) = build_plan(spec).tasks
    task.result_path(out).unlink()  # the run now looks interrupted, with a crafted resume state
    (task.dir(out) / "last.pt").write_bytes(torch_payload(tmp_path))
    outcome = run_sweep(spec, out, executor="local")
    assert [t.id for t in outcome.failed] == [task.id]
    assert "last.pt holds more than tensors and plain values" in task.error_path(out).read_text().splitlines()[0]
    assert not (tmp_path / "MARKER").exists()


def test_the_written_sweep_file_has_no_aliases_and_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML writes a value used twice as an anchor and an alias; ``sweep.yaml`` must not, or it would be refused."""
    from vitplast.reading import read_yaml
    from vitplast.sweep import parse_sweep
    from vitplast.sweep.spec import SweepSpec

    spec = parse_sweep({"models": ["micro"], "datasets": ["random:16"]})
    shared = [0.1, 0.2]
    monkeypatch.setattr(SweepSpec, "to_dict", lambda self: {"a": shared, "b": {"lrs": shared}})
    (tmp_path / "sweep.yaml").write_text(spec.to_yaml())
    assert read_yaml(tmp_path / "sweep.yaml") == {"a": [0.1, 0.2], "b": {"lrs": [0.1, 0.2]}}
