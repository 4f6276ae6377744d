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
