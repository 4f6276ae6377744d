"""The README's Python code blocks marked ``<!-- readme-test: run -->`` run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = "<!-- readme-test: run -->"
BLOCK = re.compile(re.escape(MARK) + r"\s*```python\n(.*?)```", re.S)


def marked_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_marker_finds_exactly_the_marked_blocks() -> None:
    text = f"```python\nskipped = 1\n```\n{MARK}\n```python\nx = 1\n```\n"
    assert marked_blocks(text) == ["x = 1\n"]
    assert README.read_text().count(MARK) == len(marked_blocks(README.read_text())) >= 1


@pytest.mark.parametrize("index", range(len(marked_blocks(README.read_text()))))
def test_readme_block_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = marked_blocks(README.read_text())[index]
    monkeypatch.chdir(tmp_path)  # relative output paths land in a temporary folder
    namespace: dict[str, object] = {"__name__": "__readme__"}
    exec(compile(code, f"README.md block {index}", "exec"), namespace)
    if "res" in namespace:  # the Python API example: one row per component, ranked 1..5
        summary = namespace["res"].summary()  # type: ignore[attr-defined]
        assert sorted(summary["rank"]) == [1, 2, 3, 4, 5]


SWEEP_MARK = "<!-- readme-test: sweep -->"
SWEEP_BLOCK = re.compile(re.escape(SWEEP_MARK) + r"\s*```yaml\n(.*?)```", re.S)


def test_readme_sweep_example_uses_the_finetune_recipe_and_runs(tmp_path: Path) -> None:
    """The README's sweep YAML parses, takes the same mini recipe as ``finetune`` for every key it omits, and
    runs end to end (2 steps instead of 70 and no probe, on the in-process executor)."""
    import yaml

    from vitplast.sweep import build_plan, run_sweep
    from vitplast.sweep.spec import parse_sweep
    from vitplast.train.config import TrainConfig

    (text,) = SWEEP_BLOCK.findall(README.read_text())
    data = yaml.safe_load(text)
    spec = parse_sweep(data)
    runs = spec.grids[0].runs()
    assert len(runs) == 4
    for _, ds, cfg in runs:
        # the grid's values, and for everything else what finetune would use on the same data
        alone = TrainConfig.for_data(cfg.model, ds.spec, train=cfg.train, lr=cfg.lr, seed=cfg.seed)
        assert cfg == alone and cfg.optimizer == "adamw" and cfg.augment == "none"
    data |= {"train": {"steps": 2, "eval_every": 2}, "probe": False}  # the reduced form: 4 runs of 2 steps
    plan = build_plan(parse_sweep(data))
    run_sweep(parse_sweep(data), tmp_path / "sweep", executor="local")
    import pandas as pd

    results = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert len(plan.of_kind("finetune")) == 4 and set(results["group"]) == {"mha", "ln1+ln2"}
    assert set(results["optimizer"]) == {"adamw"} and results["test_acc"].notna().all()


def test_cpu_install_command_admits_the_cpu_wheels() -> None:
    """The README's CPU install takes torch/torchvision from the CPU index: their ``+cpu`` builds of the versions
    this machine has must satisfy vitplast's dependency ranges (else pip would fall back to the CUDA build)."""
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    text = README.read_text()
    (command,) = re.findall(r"^python3 -m pip install -e \. --extra-index-url (\S+)$", text, re.M)
    assert command.endswith("/whl/cpu")
    deps = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]["dependencies"]
    reqs = {r.name: r for r in map(Requirement, deps)}
    for name in ("torch", "torchvision"):
        public = version(name).split("+")[0]
        assert reqs[name].specifier.contains(f"{public}+cpu"), (name, public)
