"""The units suite (docs/units-evidence.md): its contenders from fake selector scores, its stages planned from fake
result files, its analysis on a fabricated sweep folder against a naive computation, and its dry run."""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.test_sweep_cli import _run
from vitplast.errors import VitplastError
from vitplast.report import inference as I
from vitplast.selectors.base import Scores
from vitplast.suites import units
from vitplast.sweep import build_plan
from vitplast.train.scoring import HITS_FILE, save_hits

DEPTH = 6
# the micro-ViT's parameters per (component, block) and per group
UNIT = {"ln1": 384, "mha": 148224, "ln2": 384, "fc1": 148224, "fc2": 147648}
UNIT_SIZES = {c: [n] * DEPTH for c, n in UNIT.items()}
SIZES = {"embed": 22080, **{c: n * DEPTH for c, n in UNIT.items()}}
NAMES = ("plasticity", "grad-norm", "fisher", "taylor", "params", "last-k", "first-k", "random")


def _per_block(weights: dict[str, float], later: float) -> dict[str, list[float]]:
    return {c: [weights[c] + later * b for b in range(DEPTH)] for c in UNIT}


def fake_score(name: str, seed: int) -> Scores:
    """Fake scores: plasticity has no embed score; grad-norm and fisher agree on everything (one contender at both granularities); taylor prefers
    the early FFN; params scores whole groups by size; last-k / first-k whole blocks; random by seed."""
    group = {"embed": 0.1, "ln1": 0.2, "mha": 0.9, "ln2": 0.3, "fc1": 0.5, "fc2": 0.4}
    if name == "plasticity":  # no embed score: its group-level set is the LayerNorms alone
        return Scores(name, {**group, "embed": math.nan}, _per_block({**group, "fc2": 0.95}, 0.01))
    if name in ("grad-norm", "fisher"):
        return Scores(name, group, _per_block(group, 0.05))
    if name == "taylor":
        return Scores(name, {**group, "fc1": 1.0}, _per_block({**group, "fc1": 1.0}, -0.05))
    if name == "params":
        return Scores(name, {g: float(n) for g, n in SIZES.items()}, {c: [float(n)] * DEPTH for c, n in UNIT.items()})
    if name in ("last-k", "first-k"):
        blocks = {c: [float(b + 1 if name == "last-k" else DEPTH - b) for b in range(DEPTH)] for c in UNIT}
        return Scores(name, {g: math.nan for g in SIZES}, blocks, whole_blocks=True)
    rng = np.random.default_rng(seed)
    return Scores(name, {g: float(rng.random()) for g in SIZES}, {c: list(rng.random(DEPTH)) for c in UNIT})


def selection(budget: float = units.BUDGET) -> dict:
    return units.selection_from(fake_score, NAMES, SIZES, UNIT_SIZES, budget)


def naive_units(items: tuple[str, ...]) -> set[tuple[str, int]]:
    """The (component, block) units of a set, read by hand (``embed`` as one unit of block -1)."""
    out = set()
    for item in items:
        name, _, blocks = item.partition("@")
        if not blocks:
            out |= {(name, b) for b in (range(DEPTH) if name in UNIT else [-1])}
            continue
        for part in blocks.split(","):
            lo, _, hi = part.partition("-")
            out |= {(name, b) for b in range(int(lo), int(hi or lo) + 1)}
    return out


def naive_params(items: tuple[str, ...]) -> int:
    return sum(SIZES["embed"] if b < 0 else UNIT[c] for c, b in naive_units(items))


def test_contenders_fit_the_budget_exactly_and_identical_sets_are_one() -> None:
    sel = selection()
    cap = math.floor(0.2 * sum(SIZES.values()))
    assert sel["budget_params"] == cap
    cs = units.contenders(sel)
    ids = [c.id for c in cs]
    assert len(ids) == len(set(ids))
    for c in cs:
        assert c.params == naive_params(c.train) <= cap
    sources = {s: c for c in cs for s in c.sources}
    # grad-norm and fisher chose the same set at each granularity: one contender each, listing both
    assert sources["group:grad-norm"] is sources["group:fisher"]
    assert sources["block:grad-norm"] is sources["block:fisher"]
    assert sources["group:grad-norm"].train == ("embed", "ln1", "ln2")  # MHA, FC1, FC2 each exceed the budget
    assert sources["group:plasticity"].train == ("ln1", "ln2")  # an unscored group is never added
    # last-k: the last block, every component; first-k: the first (one block is 16.5 % of the backbone)
    assert sources["block:last-k"].train == ("ln1@5", "mha@5", "ln2@5", "fc1@5", "fc2@5")
    assert sources["block:first-k"].train == ("ln1@0", "mha@0", "ln2@0", "fc1@0", "fc2@0")
    assert {f"random draw {d}" for d in range(units.RANDOM_DRAWS)} <= set(sources)
    assert "group:last-k" not in sources and "group:last-k" in sel["skipped"]
    # the greedy fill of single units leaves no unit out that would still fit
    for c in cs:
        if c.block_level and not {"block:last-k", "block:first-k"} & set(c.sources):
            left = {(n, b) for n in UNIT for b in range(DEPTH)} - naive_units(c.train)
            assert all(c.params + UNIT[n] > cap for n, _ in left)
    assert [c.id for c in units.contenders(selection())] == ids  # deterministic


def test_at_ten_percent_no_whole_block_fits() -> None:
    sources = {s for c in units.contenders(selection(0.1)) for s in c.sources}
    assert "block:last-k" not in sources and "block:first-k" not in sources and "block:fisher" in sources


def _root(tmp_path: Path, **kw: object) -> tuple[units.Design, Path]:
    design = units.Design("micro-long", targets=("mini:latin",), **kw)  # type: ignore[arg-type]
    root = tmp_path / "sweep"
    units.selection_path(root, "mini:latin").parent.mkdir(parents=True)
    units.selection_path(root, "mini:latin").write_text(json.dumps(selection()))
    units.prepare(design, root)  # the selection is cached: only the design is written
    return design, root


def _val(c: units.Contender, lr: float) -> float:
    """Validation accuracy: peaks at lr 3e-4, by contender; group-level sets ordered against their test accuracy."""
    rank = sum(map(ord, c.id)) % 7
    return 0.6 + rank / 100 - abs(math.log10(lr) - math.log10(3e-4)) / 20


N_IMAGES = 3000
DIFFICULTY = np.random.default_rng(0).uniform(-0.3, 0.3, N_IMAGES)


def _hits(c: units.Contender, seed: int) -> np.ndarray:
    """Test accuracy ordered against :func:`_val`'s, 0.2 point apart per seed: each image right with probability
    ``accuracy + its difficulty`` (shared by every run), independently by contender and seed."""
    acc = 0.7 - (sum(map(ord, c.id)) % 7) / 50 + 0.002 * (seed - 1)
    rng = np.random.default_rng(zlib.crc32(f"{c.id} {seed}".encode()))
    return rng.random(N_IMAGES) < np.clip(acc + DIFFICULTY, 0, 1)


def _finish(design: units.Design, root: Path) -> int:
    """Fake result files for every planned, unfinished run; returns how many."""
    by_id = {c.id: c for c in units.contenders(selection())}
    n = 0
    for t in build_plan(units.units_suite(design, root)).of_kind("finetune"):
        if t.is_done(root):
            continue
        c, lr, seed = by_id["+".join(t.config["train"])], t.config["lr"], t.config["seed"]
        t.dir(root).mkdir(parents=True, exist_ok=True)
        save_hits(t.dir(root) / HITS_FILE, _hits(c, seed))
        t.result_path(root).write_text(json.dumps({"best_val_acc": _val(c, lr), "test_acc": _hits(c, seed).mean()}))
        n += 1
    return n


def test_the_stages_pilot_every_contender_then_seed_the_block_sets_and_the_best_group_set(tmp_path: Path) -> None:
    design, root = _root(tmp_path)
    cs = units.contenders(selection())
    first = build_plan(units.units_suite(design, root)).of_kind("finetune")
    assert len(first) == len(cs) * len(units.LRS) and {t.config["seed"] for t in first} == {0}
    assert {t.id for t in first} == {t.id for t in build_plan(units.units_suite(design, root)).of_kind("finetune")}
    while _finish(design, root):
        pass
    final = build_plan(units.units_suite(design, root)).of_kind("finetune")
    group = [c for c in cs if c.group_level]
    best = max(group, key=lambda c: _val(c, 3e-4))  # by validation: the test accuracy runs the other way
    seeded = {"+".join(t.config["train"]) for t in final if t.config["seed"] != 0}
    assert seeded == {c.id for c in cs if c.block_level} | {best.id}
    assert {t.config["lr"] for t in final if t.config["seed"] != 0} == {3e-4}
    assert len(final) == len(cs) * 3 + 2 * len(seeded)
    assert {t.id for t in first} <= {t.id for t in final}  # a run's id does not depend on the stage that added it
    projected = build_plan(units.units_suite(design, None, project=True)).of_kind("finetune")
    assert len({"+".join(t.config["train"]) for t in projected}) > len(cs)  # before the selection: an upper bound


def test_the_analysis_matches_a_naive_computation(tmp_path: Path) -> None:
    design, root = _root(tmp_path)
    while _finish(design, root):
        pass
    table = units.units_report(root)
    cs = {c.id: c for c in units.contenders(selection())}
    assert list(table["units"]) == list(cs)
    fin = table[table["finalist"]]
    ref = cs[next(i for i, c in cs.items() if units.REFERENCE in c.sources)]
    top = max(fin["units"], key=lambda i: np.mean([_val(cs[i], 3e-4)] * 3))
    acc = {i: np.mean([_hits(cs[i], s).mean() for s in design.seeds]) for i in fin["units"]}
    p = {}
    for _, r in fin.iterrows():
        c = cs[r["units"]]
        assert r["params"] == naive_params(c.train) and r["lr"] == 3e-4 and r["seeds"] == 3
        assert r["test_acc"] == pytest.approx(acc[c.id])
        assert r["regret"] == pytest.approx(acc[top] - acc[c.id])
        if c is ref:
            assert r["verdict"] == "reference"
            continue
        hits = {i: np.stack([_hits(cs[i], s) for s in design.seeds]) for i in (c.id, ref.id)}
        d = I.difference_test([hits], [c.id], [ref.id], "two-sided")
        assert r["diff_vs_last_k"] == pytest.approx(acc[c.id] - acc[ref.id]) == pytest.approx(d.effect)
        assert (r["ci_low"], r["ci_high"], r["p"]) == pytest.approx((d.ci_low, d.ci_high, d.p))
        p[c.id] = d.p
    # Holm by hand: the k-th smallest of m p-values times (m - k + 1), running maximum
    order = sorted(p, key=p.get)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        row = fin[fin["units"] == i].iloc[0]
        assert row["p_holm"] == pytest.approx(running)
        if row["p_holm"] < 0.05:
            assert row["verdict"] == ("better than last-k" if row["diff_vs_last_k"] > 0 else "worse than last-k")
        else:
            assert row["verdict"] in {"no better than last-k", "inconclusive"}
    verdicts = set(fin["verdict"])
    assert {"better than last-k", "worse than last-k"} <= verdicts and verdicts & {"no better than last-k", "inconclusive"}
    assert (table[~table["finalist"]]["verdict"] == "group-level set not chosen on validation").all()
    paths = units.write_units_report(root)
    assert [p.name for p in paths] == ["units_evidence.csv", "units_evidence.md"]
    md = paths[1].read_text().splitlines()
    assert len(md) == 2 + 2 + len(table)  # title, blank, header, rule, one line per row
    assert [line.split(" | ")[-1].rstrip(" |") for line in md[4:]] == list(table["verdict"])


def test_an_unfinished_sweep_is_reported_as_such_and_not_tested(tmp_path: Path) -> None:
    design, root = _root(tmp_path)
    _finish(design, root)  # the pilots only
    table = units.units_report(root)
    assert table["p"].isna().all()
    assert set(table[table["finalist"]]["verdict"]) == {"not finished"}
    assert set(table[~table["finalist"]]["verdict"]) == {"group-level set not chosen on validation"}


def test_another_design_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    design, root = _root(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(VitplastError, match="holds no sweep"):
        units.prepare(design, tmp_path / "other")
    with pytest.raises(VitplastError, match="another design"):
        units.prepare(units.Design("micro-long", targets=("mini:latin",), budget=0.3), root)
    assert units.load_design(root) == design


@pytest.mark.parametrize("kw, match", [({"targets": ("mini:digits",)}, "--targets"), ({"budget": 1.5}, "--budget"),
                                       ({"seeds": (0,)}, "--seeds"), ({"lrs": (2e-4,)}, "ladder")])
def test_a_bad_design_is_refused(kw: dict, match: str) -> None:
    with pytest.raises(VitplastError, match=match):
        units.Design("micro-long", **kw)


def test_the_dry_run_prints_the_design_and_its_size(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vitplast.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["reproduce", "--suite", "units", "--model", "micro-long", "--dry-run", "--out",
                              str(tmp_path)])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "budget 20 % of the backbone" in out and "mini:latin" in out and "an upper bound" in out
    runs = int(re.search(r"(\d+) runs, \d+ steps", out)[1])  # type: ignore[index]
    spec = units.units_suite(units.Design("micro-long"), None, project=True)
    assert runs == len(build_plan(spec).of_kind("finetune"))
    assert (tmp_path / "sweep.yaml").read_text().startswith("# The units suite")
    assert _run(["reproduce", "--suite", "mini", "--budget", "0.2", "--dry-run", "--out", str(tmp_path / "x")]) == 2
    assert _run(["reproduce", "--suite", "units", "--quick", "--dry-run", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()

