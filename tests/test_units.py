"""Unit sets (``mha@8-11``): the parser against a naive enumeration, training, export and bad input."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from tests.test_train_cli import cli
from tests.tiny_models import tiny_timm, tiny_train_data, tiny_train_vit
from vitplast.errors import VitplastError
from vitplast.selectors.base import Scores
from vitplast.selectors.recommend import budget_units, unusable
from vitplast.train.config import TrainConfig
from vitplast.units import parse_train, parse_units, resolve, split_choices

ORDER = ("embed", "ln1", "mha", "ln2", "fc1", "fc2")
BLOCKWISE = ("ln1", "mha", "ln2", "fc1", "fc2")
#: The test's own spelling of each component of a timm ViT block.
TIMM = {"ln1": "norm1", "mha": "attn", "ln2": "norm2", "fc1": "mlp.fc1", "fc2": "mlp.fc2"}


def _expand(item: str) -> tuple[str, set[int] | None]:
    """Naive reading of one canonical item."""
    if "@" not in item:
        return item, None
    name, blocks = item.split("@")
    out: set[int] = set()
    for piece in blocks.split(","):
        lo, _, hi = piece.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return name, out


def _scramble(blocks: list[int], rng: random.Random) -> list[str]:
    """The blocks as a shuffled list of pieces, runs cut at random into ``a-b`` ranges and single indices."""
    pieces, run = [], [blocks[0]]
    for b in [*blocks[1:], None]:  # type: ignore[list-item]
        if b is not None and b == run[-1] + 1 and rng.random() < 0.7:
            run.append(b)
            continue
        pieces.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        if b is not None:
            run = [b]
    rng.shuffle(pieces)
    return pieces


def test_parser_matches_a_naive_enumeration() -> None:
    rng = random.Random(0)
    for _ in range(400):
        depth = rng.randint(1, 14)
        want = _random_choice(rng, depth)
        text = ",".join(c if b is None else f"{c}@" + ",".join(_scramble(sorted(b), rng)) for c, b in want.items())
        got = parse_train(text)
        assert [g.split("@")[0] for g in got] == [c for c in ORDER if c in want]  # group order
        assert dict(map(_expand, got)) == want, text
        for item in got:  # ranges are maximal: no two pieces touch, ascending
            if "@" in item:
                pieces = [tuple(map(int, p.split("-"))) for p in item.split("@")[1].split(",")]
                assert all(a[-1] + 1 < b[0] for a, b in itertools.pairwise(pieces)), item
        assert parse_train(list(got)) == got == parse_train(",".join(got))  # idempotent, list or string
        full = {c: set(range(depth)) if b is None and c != "embed" else b for c, b in want.items()}
        resolved = dict(map(_expand, resolve(text, depth)))
        assert resolved == {c: None if b is None or len(b) == depth else b for c, b in full.items()}


def _random_choice(rng: random.Random, depth: int) -> dict[str, set[int] | None]:
    want: dict[str, set[int] | None] = {}
    for c in rng.sample(ORDER, rng.randint(1, len(ORDER))):
        whole = c == "embed" or rng.random() < 0.3
        want[c] = None if whole else set(rng.sample(range(depth), rng.randint(1, depth)))
    return want


def test_split_choices_recovers_every_set_of_a_list() -> None:
    """Sets written one after another (items of a set joined by ``+``, sets by commas, block lists scrambled)
    split back into those sets: a comma before a name starts a set, a comma before an index continues one."""
    rng = random.Random(1)
    for _ in range(300):
        sets = [_random_choice(rng, rng.randint(1, 12)) for _ in range(rng.randint(1, 4))]
        text = ",".join("+".join(c if b is None else f"{c}@" + ",".join(_scramble(sorted(b), rng)) for c, b in s.items())
                        for s in sets)
        got = split_choices(text, "--groups")
        assert [dict(map(_expand, g)) for g in got] == sets, text
        assert split_choices(",".join("+".join(g) for g in got), "--groups") == got  # canonical text is a fixed point


@pytest.mark.parametrize("label", ["--train", "--groups", "'groups'"])
def test_errors_name_the_option_given(label: str) -> None:
    for bad in ("mha@3-1", "mha@", "@3", "mha,,ln1", "", "full,mha", "attn"):
        with pytest.raises(VitplastError) as exc:
            parse_train(bad, label)
        assert str(exc.value).startswith(label) and "--train" not in str(exc.value).replace(label, "", 1), exc.value


def test_documented_examples() -> None:
    assert parse_train("mha@8-11") == ("mha@8-11",)
    assert parse_train("ln1@0,2,4") == ("ln1@0,2,4",)
    assert parse_train("mha@8-11,ln2") == ("mha@8-11", "ln2")
    assert parse_train("ln1@0,2,4,mha") == ("ln1@0,2,4", "mha")
    assert parse_train("fc1@11, mha@11,10,8-9") == ("mha@8-11", "fc1@11")
    assert parse_units("full") == {"full": None}
    assert resolve("mha@0-11,ln2", 12) == ("mha", "ln2")
    assert TrainConfig(model="m", data="d", train="fc2@3,mha").train == ("mha", "fc2@3")


@pytest.mark.parametrize("bad, message", [
    ("mha@3-1", "runs backwards"), ("mha@", "names no block"), ("@3", "names no component"),
    ("mha,mha", "twice"), ("mha@1,1", "twice"), ("mha@1-3,mha@5", "twice"), ("mha@1-3,2", "block 2 of 'mha' twice"),
    ("full@2", "takes no block list"), ("ln-control@1", "takes no block list"), ("embed@0", "belongs to no block"),
    ("head@1", "always trained"), ("3,mha", "follows no"), ("mha,3", "follows no"), ("mha@x", "not a block index"),
    ("mha@-1", "not a block index"), ("mha@1.5", "not a block index"), ("full,mha@1", "do not combine"),
])
def test_bad_choices(bad: str, message: str) -> None:
    with pytest.raises(VitplastError, match=message):
        parse_train(bad)


def test_resolve_checks_the_depth() -> None:
    with pytest.raises(VitplastError, match="has 12 blocks, numbered 0-11"):
        resolve("mha@12", 12)
    assert resolve("mha@11", 12) == ("mha@11",)


def _unit_names(model: torch.nn.Module, train: dict[str, list[int]]) -> set[str]:
    return {n for n, _ in model.named_parameters()
            if any(n.startswith(f"blocks.{b}.{TIMM[c]}.") for c, bs in train.items() for b in bs)}


@pytest.mark.parametrize("spec, units", [("mha@1", {"mha": [1]}), ("ln1@0,fc2@1", {"ln1": [0], "fc2": [1]}),
                                         ("fc1@0-1", {"fc1": [0, 1]})])
def test_select_and_training_change_exactly_the_units(spec: str, units: dict[str, list[int]], tmp_path: Path) -> None:
    from vitplast.export import select
    from vitplast.train import finetune

    m = tiny_timm(dim=16, heads=2)
    heads = {n for n, _ in m.named_parameters() if n.startswith(("head.", "norm."))}
    assert set(select(m, spec)) == _unit_names(m, units) | heads
    vit = tiny_train_vit()
    before = {n: p.detach().clone() for n, p in vit.module.named_parameters()}
    res = finetune(vit, tiny_train_data(), spec, out=tmp_path / "run", steps=3, batch_size=8, eval_every=3,
                   optimizer="adamw", lr=1e-2, device="cpu", augment="none")
    changed = {n for n, p in vit.module.named_parameters() if not torch.equal(p, before[n])}
    chosen = _unit_names(vit.module, units)
    assert changed - {n for n in before if n.startswith(("head.", "norm."))} == chosen
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    recorded = resolve(spec, 2)  # fc1@0-1 names both blocks of the 2-block model: it is fc1
    assert config["train"]["train"] == list(recorded) and res.result["train"] == ",".join(recorded)
    assert recorded == (("fc1",) if spec == "fc1@0-1" else parse_train(spec))
    now = dict(vit.module.named_parameters())  # the head has the data's classes now
    assert config["trainable_params"] == sum(now[n].numel() for n in chosen | {n for n in now if
                                                                               n.startswith(("head.", "norm."))})


def test_a_unit_set_of_every_block_is_the_group(tmp_path: Path) -> None:
    from vitplast.sweep.spec import load_sweep
    from vitplast.train.loop import prepare

    prep = prepare(TrainConfig(model="tiny", data="tiny", train="mha@0-1", steps=1, batch_size=4),
                   tiny_train_vit(), tiny_train_data())
    assert prep.cfg.train == ("mha",) and list(prep.groups) == ["mha", "head"]
    yaml = tmp_path / "s.yaml"
    yaml.write_text("name: s\nmodels: [micro]\ndatasets: [random:16]\ngroups: [mha, 'mha@0-5', 'mha@0-2+ln1']\n"
                    "lrs: [0.01]\nseeds: [0]\n")
    from vitplast.sweep.plan import build_plan

    plan = build_plan(load_sweep(yaml))
    runs = plan.of_kind("finetune")
    assert [t.config["train"] for t in runs] == [["mha"], ["mha@0-5"], ["ln1", "mha@0-2"]]
    resolved = plan.resolved({("micro", False): 6})
    assert [t.config["train"] for t in resolved.of_kind("finetune")] == [["mha"], ["ln1", "mha@0-2"]]
    assert [t.id for t in resolved.of_kind("finetune")] == [runs[0].id, runs[2].id]
    assert resolved.tasks[: -2] == plan.tasks[: -3]  # probe and analysis unchanged


MICRO = ["--model", "timm:vit_micro_patch4_32", "--random-weights", "--device", "cpu"]  # 6 blocks
TINY = ["--data", "random:16", "--steps", "2", "--batch-size", "4", "--eval-every", "1"]
BAD = {"mha@6": "has 6 blocks, numbered 0-5", "mha@3-1": "runs backwards", "mha@": "names no block",
       "@3": "names no component", "mha@1,1": "twice", "mha,mha@2": "twice", "full@2": "takes no block list",
       "ln-control@1": "takes no block list"}


@pytest.mark.parametrize("command", ["finetune", "export", "sweep"])
@pytest.mark.parametrize("bad", BAD)
def test_bad_units_on_the_command_line(command: str, bad: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    if command == "finetune":
        argv = ["finetune", *MICRO, *TINY, "--train", bad, "--out", str(tmp_path / "f")]
    elif command == "export":
        argv = ["export", "--model", "timm:vit_micro_patch4_32", "--random-weights", "--train", bad,
                "--out", str(tmp_path / "f")]
    else:
        spec = tmp_path / "in" / "s.yaml"
        spec.parent.mkdir()
        spec.write_text(f"name: s\nmodels: [timm:vit_micro_patch4_32]\ndatasets: [random:16]\ngroups: ['{bad}']\n"
                        "lrs: [0.01]\nseeds: [0]\ntrain: {steps: 1, batch_size: 4, random_weights: true}\n"
                        "probe: false\nplasticity: false\n")
        argv = ["sweep", str(spec), "--executor", "local", "--out", str(tmp_path / "f")]
    code, out, err = cli(argv, capsys)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and BAD[bad] in lines[0], err
    assert out == ""  # nothing before the refusal (no recipe line)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("lib", ["timm", "hf"])
def test_peft_export_of_units_trains_only_those_modules(lib: str, tmp_path: Path) -> None:
    import re

    from tests.test_export import HF, _model
    from tests.test_export import TIMM as NAMES
    from vitplast.export import peft_plan, write_export

    peft = pytest.importorskip("peft")
    names = NAMES if lib == "timm" else HF
    m = _model(lib)

    def block(name: str) -> int | None:
        found = re.search(r"\.(\d+)\.", f".{name}.")
        return int(found[1]) if found else None

    def of(group: str, b: int) -> set[str]:
        return {n for n, mod in m.named_modules() if block(n) == b and any(p in f".{n}." for p in names[group])
                and not list(mod.children())}

    plan = peft_plan(m, "mha@1,ln2@0")
    linear = {n for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear)}
    assert set(plan.lora) == of("mha", 1) & linear and plan.layernorms == sorted(of("ln2", 0))
    written = write_export(m, "mha@1,ln2@0", tmp_path / "exp")
    heads = {n for n, _ in m.named_parameters() if any(n.startswith(p) for p in names["head"])}
    modules = of("mha", 1) | of("ln2", 0)
    assert set(written[0].read_text().split()) == heads | {n for n, _ in m.named_parameters()
                                                           if n.rsplit(".", 1)[0] in modules}
    cfg = peft.PeftConfig.from_pretrained(str(tmp_path / "exp" / "peft"))
    assert set(cfg.target_modules) == set(plan.lora) and set(cfg.modules_to_save) == {*plan.layernorms, *plan.save}
    pm = peft.get_peft_model(_model(lib), cfg)
    before = {n: p.detach().clone() for n, p in pm.named_parameters()}
    opt = torch.optim.SGD([p for p in pm.parameters() if p.requires_grad], lr=0.1)
    x = torch.randn(4, 3, 16, 16)
    for _ in range(3):
        out = pm(x)
        loss = (out if isinstance(out, torch.Tensor) else out.logits).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {n for n, p in pm.named_parameters() if not torch.equal(p, before[n])}
    allowed = {*(f"{t}.lora_" for t in plan.lora), *(f"{t}.modules_to_save." for t in plan.layernorms + plan.save)}
    assert changed and all(any(a in n for a in allowed) for n in changed), changed - {n for n in changed if
                                                                                    any(a in n for a in allowed)}
    assert any(".lora_B." in n for n in changed) and any(f"{plan.layernorms[0]}.modules_to_save." in n for n in changed)


# --- recommend at block granularity ---------------------------------------------------------------------------


def _random_scores(rng: random.Random, depth: int, whole: bool = False) -> tuple[Scores, dict[str, list[int]]]:
    blocks = {c: [math.nan if rng.random() < 0.1 else rng.random() for _ in range(depth)] for c in BLOCKWISE}
    sizes = {c: [rng.randint(1, 50) for _ in range(depth)] for c in BLOCKWISE}
    return Scores("x", dict.fromkeys(ORDER, 0.0), blocks, whole_blocks=whole), sizes


def test_block_budget_is_greedy_in_unit_ranking_order() -> None:
    rng = random.Random(1)
    for _ in range(200):
        depth = rng.randint(1, 8)
        s, sizes = _random_scores(rng, depth)
        budget = rng.randint(0, 600)
        chosen = {(c, b) for item in budget_units(s, sizes, budget) for c, bs in [_expand(item)]
                  for b in (range(depth) if bs is None else bs)}
        assert sum(sizes[c][b] for c, b in chosen) <= budget
        ranked = sorted(((c, b) for c in BLOCKWISE for b in range(depth) if not math.isnan(s.blocks[c][b])),
                        key=lambda u: (-s.blocks[u[0]][u[1]], u[1], BLOCKWISE.index(u[0])))
        used = 0
        for u in ranked:  # naive greedy: every unit in turn, taken when it still fits
            if used + sizes[u[0]][u[1]] <= budget:
                used += sizes[u[0]][u[1]]
                assert u in chosen
            else:
                assert u not in chosen
        assert not any(math.isnan(s.blocks[c][b]) for c, b in chosen)


@pytest.mark.parametrize("name, expect", [("last-k", lambda k, d: range(d - k, d)), ("first-k", lambda k, d: range(k))])
def test_last_and_first_k_take_whole_blocks(name: str, expect: Any) -> None:
    from vitplast.selectors import REGISTRY
    from vitplast.selectors.base import block_params, numel

    vit = tiny_train_vit()
    s = REGISTRY[name][0](vit, None)  # type: ignore[arg-type]
    sizes = {c: [numel(ps) for ps in per] for c, per in block_params(vit).items()}
    block = sum(sizes[c][0] for c in sizes)
    assert all(math.isnan(v) for v in s.groups.values()) and unusable(s, "group") and not unusable(s, "block")
    for k in range(vit.depth + 1):
        got = budget_units(s, sizes, k * block + block // 2)
        want = parse_train(",".join(f"{c}@{','.join(map(str, expect(k, vit.depth)))}" for c in BLOCKWISE)) if k else ()
        assert got == (resolve(want, vit.depth) if k else ()), (k, got)


def test_selectors_without_block_scores_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from vitplast.selectors import SelectorData
    from vitplast.selectors.config import RecommendConfig

    R = importlib.import_module("vitplast.selectors.recommend")  # the package's `recommend` is the function
    real = R.get_selector
    group_only = lambda vit, data: Scores("params", {g: 1.0 for g in ORDER})  # noqa: E731
    monkeypatch.setattr(R, "get_selector", lambda n: group_only if n == "params" else real(n))
    data = SelectorData(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]), 2)
    cfg = RecommendConfig(selectors=("params", "random", "last-k"), granularity="block", budget=0.3)
    res = R.recommend_for(tiny_train_vit(), data, cfg)
    assert list(res.scores) == ["random", "last-k"] and res.skipped == {"params": "has no per-block scores"}
    assert res.recommended == res.sets["random"] and res.params_of(res.recommended) <= res.budget
    with pytest.raises(VitplastError, match="no selector scores at --granularity group"):
        R.recommend_for(tiny_train_vit(), data, RecommendConfig(selectors=("last-k",)))


def test_recommend_cli_at_block_granularity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, exp = tmp_path / "rec", tmp_path / "exp"
    code, stdout, err = cli(["recommend", "--model", "timm:vit_micro_patch4_32", "--random-weights", "--data",
                             "random:24", "--selectors", "last-k,params,first-k,random", "--granularity", "block",
                             "--images", "4", "--budget", "0.4", "--out", str(out), "--export", str(exp)], capsys)
    assert code == 0, err
    rec = json.loads((out / "recommend.json").read_text())
    table = pd.read_csv(out / "recommend.csv")
    assert len(table) == 4 * 6 * 5 and set(table.columns) >= {"group", "block", "chosen"}
    assert rec["selectors"]["last-k"]["set"] == [f"{c}@4-5" for c in BLOCKWISE]  # 2 of 6 blocks fit 40 %
    assert rec["selectors"]["first-k"]["set"] == [f"{c}@0-1" for c in BLOCKWISE]
    for name, v in rec["selectors"].items():
        units = table[(table["selector"] == name) & table["chosen"]]
        assert v["set_params"] == units["params"].sum() <= rec["budget_params"]
    names = (exp / "trainable_parameters.txt").read_text().split()
    assert {n.split(".")[1] for n in names if n.startswith("blocks.")} == {"4", "5"}  # last-k's set, exported
    assert "LN1@5" in stdout and (out / "recommend.png").stat().st_size > 0
