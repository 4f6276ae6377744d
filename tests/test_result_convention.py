"""One result convention: ``compute(config) -> XResult``; the result's ``to_dict()`` is its JSON and ``save(out)``
writes its files and draws its figures; compute code draws nothing."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pandas as pd
import pytest

from vitplast.io import write_json_atomic

SRC = Path(__file__).resolve().parents[1] / "src"

#: The modules that compute a task's result (they may import the result types, never a drawing module).
COMPUTE = ("vitplast.analysis", "vitplast.landscape.run", "vitplast.bounds.compute", "vitplast.bounds.run",
           "vitplast.selectors.recommend")
#: Each task's result type, in a result module.
RESULTS = (("vitplast.analysis_result", "AnalysisResult"), ("vitplast.bounds.result", "BoundsView"),
           ("vitplast.landscape.result", "LandscapeResult"), ("vitplast.selectors.result", "RecommendResult"))
DRAWING = ("matplotlib", "vitplast.plotting", "vitplast.bounds.plot", "vitplast.train.plots")


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """Every import of ``module`` (at any depth): (module imported, names imported from it)."""
    tree = ast.parse((SRC / (module.replace(".", "/") + ".py")).read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append((node.module or "", [a.name for a in node.names]))
    return out


@pytest.mark.parametrize("module", COMPUTE)
def test_compute_modules_draw_nothing(module: str) -> None:
    for imported, names in _imports(module):
        assert not imported.startswith(DRAWING), f"{module} imports {imported}"
        assert not [n for n in names if n.startswith("plot_")], f"{module} imports {names} from {imported}"


@pytest.mark.parametrize(("module", "name"), RESULTS)
def test_results_live_in_result_modules_with_to_dict_and_save(module: str, name: str) -> None:
    assert module.endswith("result")
    cls = getattr(importlib.import_module(module), name)
    assert callable(cls.to_dict) and callable(cls.save)


def test_bounds_view_saves_its_dict_and_tables(tmp_path: Path) -> None:
    from vitplast.analysis import AnalyzeConfig, bounds_view, run_analysis

    cfg = AnalyzeConfig(
        model="timm:vit_micro_patch4_32", random_weights=True, source="random:8", target="random:8", pairs=4,
        batch_size=4, with_bounds=True, device="cpu",
    )  # fmt: skip
    view = bounds_view(run_analysis(cfg))
    view.save(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "bounds.csv", "bounds.json", "bounds.png", "check.csv", "violations.csv"
    ]
    write_json_atomic(tmp_path / "expected.json", view.to_dict())
    assert (tmp_path / "b" / "bounds.json").read_bytes() == (tmp_path / "expected.json").read_bytes()
    table = pd.read_csv(tmp_path / "b" / "bounds.csv")
    assert list(table.columns[:2]) == ["model", "layer"] and set(table["model"]) == {cfg.model}
    pd.testing.assert_series_equal(table["bound"], view.check.bounds.table["bound"], check_exact=False, rtol=1e-12)
    assert view.record["pairs"] == 4 and view.record["primary"]["mha"] == "max_r_qbias"
