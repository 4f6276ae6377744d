"""Task kinds: one module each, the only dispatch on a kind; ids of a fixed spec are those of earlier releases."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import vitplast.sweep.task as task_module
from vitplast.io import write_json_atomic
from vitplast.sweep import build_plan, parse_sweep, run_sweep, sweep_status
from vitplast.sweep.kinds import ANALYSIS, FINETUNE, PROBE, START, AnalysisTask, ProbeTask, kind_of, register
from vitplast.sweep.spec import SweepSpec
from vitplast.sweep.task import SplitSizes, Task, TaskKind, Throughput, kinds, task_id

SRC = Path(__file__).resolve().parents[1] / "src" / "vitplast"


def test_each_kind_owns_its_folder_result_file_and_config(tmp_path: Path) -> None:
    plan = build_plan(parse_sweep({"models": ["micro"], "datasets": ["random:16"], "groups": ["mha"],
                                   "plasticity": {"source": "random:9", "pairs": 8}}))
    seen = {t.kind: t for t in plan.tasks}
    assert set(seen) == {"probe", "plasticity", "finetune"}
    assert seen["probe"].dir(tmp_path) == tmp_path / "probes" / seen["probe"].id
    assert seen["plasticity"].result_path(tmp_path).name == "plasticity.json"
    assert seen["finetune"].dir(tmp_path).parent.name == "runs"
    probe = kind_of("probe").config(seen["probe"])
    assert isinstance(probe, ProbeTask) and probe.data == "random:16"
    analysis = kind_of("plasticity").config(seen["plasticity"])
    assert isinstance(analysis, AnalysisTask) and analysis.pairs == 8
    # ids hash the typed config's fields (the same keys as before: existing sweep folders are found again)
    assert seen["probe"].id == task_id("probe", {"model": "micro", "data": "random:16", "C": None,
                                                 "random_weights": False})
    assert [k.name for k in kinds()] == [FINETUNE.name, PROBE.name, ANALYSIS.name, START.name]
    assert plan.counts() == {"finetune": 1, "probe": 1, "plasticity": 1, "start": 0}  # a random head: no start


ORACLE = {"name": "oracle", "models": ["micro", {"spec": "timm:vit_micro_patch4_32", "label": "rw"}],
          "datasets": ["random:16", {"spec": "mini:digits", "label": "digits", "steps": 7}],
          "groups": ["mha", "ln1+ln2", "fc1@0-1"], "optimizers": ["sgd", {"name": "adamw", "lr_scale": 0.01}],
          "lrs": [0.01, 0.03], "seeds": [0, 1], "train": {"steps": 5, "batch_size": 8, "eval_every": 5},
          "probe": {"C": 0.5}, "plasticity": {"source": "random:9", "pairs": 8},
          "ablations": [{"name": "ab", "groups": ["full"], "seeds": [3]}]}


def _digest(plan: Any) -> str:
    return hashlib.sha256(json.dumps(plan.to_dict(), sort_keys=True).encode()).hexdigest()


def test_plan_of_a_fixed_spec_is_byte_identical_to_the_one_before_the_kind_registry() -> None:
    """Regression oracle: the digests of ``plan.json`` (kinds, ids, configs, options, order) were computed with
    the code before the task kinds planned their own tasks; a change of any id would orphan existing sweeps."""
    plan = build_plan(parse_sweep(ORACLE))
    assert plan.counts() == {"finetune": 112, "probe": 4, "plasticity": 4, "start": 0}
    assert [plan.tasks[i].id for i in (0, 4, 8, -1)] == ["39af8f395635", "4e3c5d8d6558", "836dff3928a8",
                                                         "a905d9b30b4c"]
    assert _digest(plan) == "0943a9ba7642a197fe72c0466b281bf840594c9db09f6bf0b7f87044d6e02793"
    depths = {("micro", False): 2, ("timm:vit_micro_patch4_32", False): 2}  # fc1@0-1 names every block: fc1
    assert _digest(plan.resolved(depths)) == "8b323e5b262805754ca0ff79f48c45cab1c2e0e1dcb00ea4525f3452a7ff1180"


class Count(TaskKind):
    """A toy kind, complete in this file: counts the characters of each data spec of the base grid, before
    every other kind. Adding a kind to the package is this class in a module of ``vitplast/sweep/kinds/`` and
    its ``register`` line in ``kinds/__init__.py`` (``docs/contributing.md``, "A new sweep task kind")."""

    name = "count-test"
    subdir = "counts"
    config_cls = dict
    order = -1
    table = "counts"

    def plan(self, spec: SweepSpec) -> Iterator[Task]:
        base = spec.grids[0]
        for model in base.models:
            for ds in base.datasets:
                cfg = {"model": model.spec, "data": ds.spec, "random_weights": True}
                yield self.make(cfg, model.label, ds.label, base.name)

    def run(self, task: Task, out: Path, device: str, workers: int | None, eval_batch_size: int | None) -> None:
        write_json_atomic(out / self.result_file, {"chars": len(task.config["data"]), "device": device})

    def cost(self, task: Task, sizes: SplitSizes, throughput: Throughput) -> tuple[float, int, int]:
        return 1.0, 0, 0


@pytest.fixture
def count_kind(monkeypatch: pytest.MonkeyPatch) -> Count:
    kind = Count()
    monkeypatch.setitem(task_module._KINDS, kind.name, kind)  # registered for this test only
    return kind


def test_a_kind_defined_in_one_file_is_planned_run_tabulated_and_resumed(tmp_path: Path, count_kind: Count) -> None:
    spec = parse_sweep({"models": ["timm:vit_micro_patch4_32"], "datasets": ["random:16", "random:9"],
                        "groups": ["mha"], "train": {"steps": 1, "batch_size": 8, "eval_every": 1,
                                                     "random_weights": True},
                        "probe": False, "plasticity": False, "run": {"device": "cpu"}})
    plan = build_plan(spec)
    assert [t.kind for t in plan.tasks] == ["count-test", "count-test", "finetune", "finetune"]  # its order
    assert plan.counts() == {"finetune": 2, "probe": 0, "plasticity": 0, "start": 0, "count-test": 2}
    out = tmp_path / "sweep"
    first = run_sweep(spec, out, executor="local")
    assert first.ran == 4 and not first.failed
    table = pd.read_csv(out / "counts.csv")  # the kind's table, written with the built-in ones
    assert table["chars"].tolist() == [len("random:16"), len("random:9")] and set(table["status"]) == {"done"}
    assert table["id"].tolist() == [t.id for t in plan.tasks[:2]]
    assert all((out / "counts" / i / "result.json").is_file() for i in table["id"])
    assert sweep_status(out).counts(count_kind)["done"] == 2
    again = run_sweep(spec, out, executor="local")
    assert again.ran == 0 and again.skipped == 4
    with pytest.raises(ValueError, match="already registered"):
        register(Count())
    with pytest.raises(ValueError, match="unknown task kind"):
        kind_of("nope")


#: Where code would dispatch on a kind's name: a comparison with a task's kind, a lookup, a task made by name,
#: a subscript of the counts, or a list of two kinds' names.
def _dispatch(names: tuple[str, ...]) -> re.Pattern[str]:
    name = "|".join(map(re.escape, names))
    q = f"[\"'](?:{name})[\"']"
    return re.compile(rf"kind\s*[!=]=\s*{q}|(?:of_kind|kind_of|make|counts)\(\s*{q}|\bc\[\s*{q}|{q}\s*,\s*{q}")


#: The YAML schema of a sweep file, whose sections share the names of the kinds they configure.
SCHEMA = SRC / "sweep" / "spec.py"
#: Modules of the sweep machinery, which must not spell a kind's name at all.
STRICT = (*sorted(set((SRC / "sweep").glob("*.py")) - {SCHEMA}), SRC / "suites" / "estimate.py", SRC / "suites" / "suite.py")


def _event_name(text: str, at: int) -> bool:
    """The definition of the ``events.jsonl`` event ``start`` (``execute.STARTED``), which shares its name with
    the ``start`` kind."""
    return text[text.rfind("\n", 0, at) + 1:at] == "STARTED = "


def test_no_module_outside_the_kinds_spells_a_kind_name() -> None:
    names = tuple(k.name for k in kinds())
    dispatch = _dispatch(names)
    assert dispatch.search('if t.kind == "finetune":') and dispatch.search('plan.of_kind("probe")')
    assert dispatch.search("for kind in ('finetune', 'probe'):") and not dispatch.search('col = "plasticity"')
    literal = re.compile("|".join(f"[\"']{re.escape(n)}[\"']" for n in names))
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if (SRC / "sweep" / "kinds") in path.parents or path == SCHEMA:
            continue
        text = path.read_text()
        pattern = literal if path in STRICT else dispatch
        found += [f"{path.relative_to(SRC)}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
                  for m in pattern.finditer(text) if not _event_name(text, m.start())]
    assert all(p.is_file() for p in STRICT)
    assert not found, "dispatch on a task kind's name outside vitplast/sweep/kinds/:\n" + "\n".join(found)
