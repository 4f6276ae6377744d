"""Sweep files: validation, grid expansion counts, lr scaling, stable task ids (no training)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vitplast.errors import VitplastError
from vitplast.sweep import build_plan, load_sweep, parse_sweep
from vitplast.sweep.task import task_id

BASE = {
    "models": ["timm:vit_micro_patch4_32", {"spec": "timm:vit_tiny_patch16_224", "label": "tiny"}],
    "datasets": ["random:16", {"spec": "random:24", "label": "r24", "lrs": [0.1, 0.2, 0.3], "steps": 7}, "mini:digits"],
    "groups": ["mha", "ln1+ln2"],
    "optimizers": ["sgd", {"name": "adamw", "lr_scale": 0.01}],
    "lrs": [0.003, 0.01],
    "seeds": [0, 1],
    "train": {"steps": 5, "batch_size": 8},
}


def test_grid_expansion_counts_match_the_cartesian_product() -> None:
    plan = build_plan(parse_sweep(BASE))
    counts = plan.counts()
    # models x datasets x groups x optimizers x lrs(dataset) x seeds
    per_dataset_lrs = [2, 3, 2]
    expected = sum(2 * 2 * 2 * n * 2 for n in per_dataset_lrs)
    assert counts["finetune"] == expected == 112
    assert counts["probe"] == counts["plasticity"] == 2 * 3  # once per (model, dataset)
    assert len({t.id for t in plan.tasks}) == len(plan.tasks)
    # every combination appears exactly once
    keys = {(t.config["model"], t.config["data"], tuple(t.config["train"]), t.config["optimizer"], t.config["lr"],
             t.config["seed"]) for t in plan.of_kind("finetune")}
    assert len(keys) == expected
    # analyses and probes come first (they build the data caches the runs share)
    kinds = [t.kind for t in plan.tasks]
    assert kinds.index("finetune") == 12 and set(kinds[:12]) == {"probe", "plasticity"}


def test_per_dataset_settings_and_lr_scale() -> None:
    plan = build_plan(parse_sweep(BASE))
    runs = plan.of_kind("finetune")
    r24 = [t for t in runs if t.config["data"] == "random:24"]
    assert {t.config["steps"] for t in r24} == {7}
    assert {t.config["steps"] for t in runs if t.config["data"] != "random:24"} == {5}
    sgd = {t.config["lr"] for t in r24 if t.config["optimizer"] == "sgd"}
    adamw = {t.config["lr"] for t in r24 if t.config["optimizer"] == "adamw"}
    assert sgd == {0.1, 0.2, 0.3}
    assert adamw == {0.001, 0.002, 0.003}  # rounded: 0.3 * 0.01 is 0.0029999999999999996 in floating point
    assert {tuple(t.config["train"]) for t in runs} == {("mha",), ("ln1", "ln2")}
    assert {t.dataset for t in r24} == {"r24"} and {t.model for t in runs} == {"timm:vit_micro_patch4_32", "tiny"}


def test_ablations_add_runs_and_duplicates_are_kept_once() -> None:
    data = dict(BASE)
    data["ablations"] = [
        {"name": "more-seeds", "seeds": [0, 1, 2]},  # seeds 0 and 1 repeat the base grid
        {"name": "one", "models": ["timm:vit_micro_patch4_32"], "datasets": ["random:16"], "groups": ["full"],
         "optimizers": ["sgd"], "lrs": [0.05], "seeds": [9]},
    ]
    plan = build_plan(parse_sweep(data))
    assert len(plan.of_kind("finetune")) == 112 + 56 + 1  # seed 2 of the base grid, then one run
    assert {t.grid for t in plan.of_kind("finetune") if t.config["seed"] == 2} == {"more-seeds"}


def test_ids_are_stable_and_depend_only_on_the_run_identity(tmp_path: Path) -> None:
    a = build_plan(parse_sweep(BASE))
    b = build_plan(parse_sweep(BASE | {"run": {"device": "cpu", "workers": 0}}))
    assert [t.id for t in a.tasks] == [t.id for t in b.tasks]
    c = build_plan(parse_sweep(BASE | {"train": {"steps": 6, "batch_size": 8}}))
    ids_a = {t.id for t in a.of_kind("finetune")}
    ids_c = {t.id for t in c.of_kind("finetune")}
    same = {t.id for t in a.of_kind("finetune") if t.config["data"] == "random:24"}  # its own steps: unchanged
    assert ids_a & ids_c == same and len(same) == 48
    assert {t.id for t in a.of_kind("probe")} == {t.id for t in c.of_kind("probe")}  # probes do not train
    t = a.of_kind("finetune")[0]
    assert t.id == task_id("finetune", t.config) and len(t.id) == 12
    # the normalised YAML reads back into the same plan
    path = tmp_path / "sweep.yaml"
    path.write_text(parse_sweep(BASE).to_yaml())
    assert [x.id for x in build_plan(load_sweep(path)).tasks] == [x.id for x in a.tasks]


def test_yaml_numbers_written_as_strings_are_read_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("models: [timm:vit_micro_patch4_32]\ndatasets: [random:16]\ngroups: [mha]\n"
                    "lrs: [1e-3, 3e-3]\ntrain: {weight_decay: 1e-4, steps: 3}\nseeds: [0]\n")
    assert yaml.safe_load(path.read_text())["lrs"] == ["1e-3", "3e-3"]  # PyYAML's own reading
    runs = build_plan(load_sweep(path)).of_kind("finetune")
    assert [t.config["lr"] for t in runs] == [0.001, 0.003]
    assert {t.config["weight_decay"] for t in runs} == {0.0001}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "unknown key 'colour'"),
        ({"lrs": [0.1, -1]}, "lr must be > 0"),
        ({"groups": ["mha", "head"]}, "head"),
        ({"datasets": ["nosuch:thing"]}, "unknown data spec"),
        ({"train": {"steps": 0}}, "train.steps must be >= 1"),
        ({"train": {"lr": 0.1}}, "set by the grid keys"),
        ({"train": {"stepz": 3}}, "unknown training setting 'stepz'"),
        ({"seeds": [0, 0]}, "same value twice"),
        ({"models": []}, "lists no models"),
        ({"optimizers": ["rmsprop"]}, "--optimizer must be one of"),
        ({"plasticity": {"pairs": 1}}, "--pairs must be >= 2"),
        ({"groups": []}, "'groups' must list at least one group"),
        ({"probe": {"batch_size": "x"}}, "probe.batch_size must be int, got 'x'"),
        ({"run": {"workers": -1}}, "run.workers must be >= 0"),
        ({"train": {"steps": "many"}}, "train.steps must be int, got 'many'"),
        ({"train": {"clip": True}}, "train.clip must be float"),
        ({"optimizers": [{"name": "adamw", "lr_scale": "big"}]}, "optimizers[0].lr_scale must be float"),
        ({"models": [{"label": "x"}]}, "models[0]"),
        ({"plasticity": "yes"}, "'plasticity' must be true, false or a mapping"),
    ],
)
def test_bad_sweeps_are_refused_with_one_message(change: dict, message: str) -> None:
    with pytest.raises(VitplastError, match=re.escape(message)):
        parse_sweep(BASE | change)


def test_training_settings_follow_the_train_config_fields_generically(monkeypatch: pytest.MonkeyPatch) -> None:
    import vitplast.sweep.spec as S

    # a field added to TrainConfig is accepted and type-checked through its type hint, with no parser change
    monkeypatch.setitem(S._TRAIN_HINTS, "precision", str)
    monkeypatch.setitem(S._TRAIN_META, "precision", {"choices": ("fp32", "bf16")})
    monkeypatch.setattr(S, "TRAIN_FIELDS", (*S.TRAIN_FIELDS, "precision"))
    assert S._train_overrides({"precision": "bf16", "steps": 3}, "train") == {"precision": "bf16", "steps": 3}
    with pytest.raises(VitplastError, match=re.escape("train.precision must be one of fp32, bf16, got 'fp8'")):
        S._train_overrides({"precision": "fp8"}, "train")


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(VitplastError, match="does not exist"):
        load_sweep(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [a\n")
    with pytest.raises(VitplastError, match="not valid YAML"):
        load_sweep(bad)


def test_mini_control_group_only_adds_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding the ``ln-control`` group keeps every task id of the suite without it (a finished or running
    reproduction is extended, not redone): its ids are a subset, and the extra tasks are exactly the control's."""
    from vitplast.suites import mini

    new = {t.id: t for t in build_plan(mini.mini_suite(project=True)).tasks}
    monkeypatch.setattr(mini, "GROUPS", tuple(g for g in mini.GROUPS if g != "ln-control"))
    old = build_plan(mini.mini_suite(project=True)).tasks
    assert {t.id for t in old} <= set(new)
    assert all(new[t.id].grid == t.grid for t in old)  # and they stay in their grids
    extra = [t for i, t in new.items() if i not in {o.id for o in old}]
    assert len(extra) == 9 * (3 + 2)
    assert all(t.kind == "finetune" and t.config["train"] == ["ln-control"] for t in extra)
    assert {t.grid for t in extra} == {"pilot-ln-control", "seeds-ln-control"}


def test_builtin_suites_have_the_documented_size() -> None:
    from vitplast.suites import mini_suite, paper_suite

    paper = build_plan(paper_suite())
    base = [t for t in paper.of_kind("finetune") if t.grid == "paper"]
    assert len(base) == 11 * 7 * 4 * 3 == 924
    assert len(paper.of_kind("finetune")) == 924 + 2 * 84 + 84
    steps = {t.dataset: t.config["steps"] for t in base}
    assert steps["CIFAR-10"] == 10000 and steps["Pet"] == 4000 and steps["Flowers102"] == 5000
    assert steps["DomainNet clipart"] == 20000
    dn = {t.config["lr"] for t in base if t.dataset.startswith("DomainNet")}
    assert dn == {0.003, 0.01, 0.03, 0.06}
    adamw = {t.config["lr"] for t in paper.of_kind("finetune") if t.config["optimizer"] == "adamw"}
    assert adamw == {3e-5, 1e-4, 3e-4, 6e-4}
    mini = build_plan(mini_suite(project=True))  # the whole design, each pilot choosing its middle lr
    assert mini.counts() == {"probe": 9, "plasticity": 9, "start": 9, "finetune": 9 * 6 * (3 + 2)}
    runs = mini.of_kind("finetune")
    groups = {tuple(t.config["train"]) for t in runs}
    assert groups == {(g,) for g in ("ln1", "mha", "ln2", "fc1", "fc2", "ln-control")}
    pilot = [t for t in runs if t.config["seed"] == 0]
    lrs = {g: sorted({t.config["lr"] for t in pilot if t.config["train"] == [g]}) for g in ("mha", "ln1", "ln-control")}
    # the LayerNorms' grid a decade higher, and the same one for their parameter-matched control
    assert lrs == {"mha": [1e-4, 3e-4, 1e-3], "ln1": [1e-3, 3e-3, 1e-2], "ln-control": [1e-3, 3e-3, 1e-2]}
    assert {t.config["seed"] for t in runs} == {0, 1, 2}
    assert {t.config["lr"] for t in runs if t.config["seed"] > 0 and t.config["train"] == ["mha"]} == {3e-4}
    from vitplast.suites.mini import mini_sizes

    assert all(mini_sizes(t.config["data"]).test >= 1000 for t in runs)
