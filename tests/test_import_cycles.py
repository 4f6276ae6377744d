"""No import circles among vitplast's modules (``src/``) and the benchmark scripts (``benchmarks/``).

Imports are read with ``ast`` (nothing is imported) and sorted by where they sit: at module level (run on
import), under ``if TYPE_CHECKING:`` (read by the type checker), or inside a function (run on call). A circle
of module-level and type-checking imports ties two modules' definitions together; one that closes through a
function-level import is the same circle, deferred. Both are refused, except the known ones listed in
:data:`KNOWN_CYCLES`, which may only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AT_IMPORT = frozenset({"module", "typing"})
ANYWHERE = frozenset({"module", "typing", "function"})

#: Circles allowed while they wait for their rework (none left); a set may only shrink and is removed when its
#: circle is gone (the test below says when).
KNOWN_CYCLES: tuple[frozenset[str], ...] = ()


def module_files(src: Path, benchmarks: Path | None = None) -> dict[str, Path]:
    """Dotted module name -> file, for the packages under ``src`` and the scripts in ``benchmarks``
    (named ``benchmarks.NAME``: they import each other by their bare names)."""
    out = {}
    for p in sorted(src.rglob("*.py")):
        parts = list(p.relative_to(src).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    for p in sorted(benchmarks.glob("*.py")) if benchmarks is not None else ():
        out[f"benchmarks.{p.stem}"] = p
    return out


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: Iterable[str]) -> list[str]:
    names = set(known)
    if isinstance(node, ast.Import):
        candidates = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: strip (level - 1) packages from the importing module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        candidates = [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]
    if module.startswith("benchmarks."):  # a script's bare sibling import
        candidates = [f"benchmarks.{c}" if f"benchmarks.{c}" in names else c for c in candidates]
    return [c for c in candidates if c in names and c != module]


def import_edges(files: dict[str, Path]) -> dict[str, set[tuple[str, str]]]:
    """Per module, its imports of other modules in ``files`` as ``(target, where)``, ``where`` one of
    ``module``, ``typing`` (under ``if TYPE_CHECKING``) and ``function``."""
    edges: dict[str, set[tuple[str, str]]] = {}
    for module, path in files.items():
        found: set[tuple[str, str]] = set()

        def visit(node: ast.AST, where: str, module: str = module, path: Path = path, found: set = found) -> None:
            for child in ast.iter_child_nodes(node):
                inner = where
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                    inner = "function"
                elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test) and where == "module":
                    inner = "typing"
                if isinstance(child, ast.Import | ast.ImportFrom):
                    found.update((t, inner) for t in _targets(child, module, path.name == "__init__.py", files))
                visit(child, inner)

        visit(ast.parse(path.read_text(), str(path)), "module")
        edges[module] = found
    return edges


def cycles(edges: dict[str, set[tuple[str, str]]], kinds: frozenset[str]) -> list[frozenset[str]]:
    """The import circles using only imports of ``kinds``: strongly connected sets of two or more modules."""
    graph = {m: sorted({t for t, w in e if w in kinds}) for m, e in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[frozenset[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(frozenset(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


@pytest.fixture(scope="module")
def edges() -> dict[str, set[tuple[str, str]]]:
    return import_edges(module_files(ROOT / "src", ROOT / "benchmarks"))


def _unknown(found: list[frozenset[str]]) -> list[list[str]]:
    return [sorted(c) for c in found if not any(c <= known for known in KNOWN_CYCLES)]


def test_the_reader_sees_every_module_and_its_imports(edges: dict[str, set[tuple[str, str]]]) -> None:
    assert {"vitplast", "vitplast.analysis", "vitplast.bounds.run", "benchmarks.finetune_speed"} <= set(edges)
    assert ("vitplast.bounds.run", "module") in edges["vitplast.analysis"]
    assert ("benchmarks.steppers", "module") in edges["benchmarks.gpu_speed"]
    assert any(w == "function" for _, w in edges["vitplast.cli.bounds"])


def test_no_import_circle_among_module_level_imports(edges: dict[str, set[tuple[str, str]]]) -> None:
    assert _unknown(cycles(edges, AT_IMPORT)) == []


def test_no_import_circle_through_function_level_imports(edges: dict[str, set[tuple[str, str]]]) -> None:
    found = cycles(edges, ANYWHERE)
    assert _unknown(found) == []
    gone = [sorted(k) for k in KNOWN_CYCLES if not any(len(k & c) > 1 for c in found)]
    assert gone == [], f"these circles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_circles_are_found_in_each_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\n",
        "c.py": "def f():\n    from .sub import d\n",
        "sub/__init__.py": "",
        "sub/d.py": "import pkg.c\nimport os\n",
        "e.py": "from pkg.sub.d import y\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    e = import_edges(module_files(tmp_path))
    assert e["pkg.a"] == {("pkg.b", "module")} and e["pkg.b"] == {("pkg.a", "typing")}
    assert e["pkg.c"] == {("pkg.sub.d", "function")} and e["pkg.e"] == {("pkg.sub.d", "module")}
    assert cycles(e, frozenset({"module"})) == []
    assert cycles(e, AT_IMPORT) == [frozenset({"pkg.a", "pkg.b"})]
    assert sorted(map(sorted, cycles(e, ANYWHERE))) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub.d"]]
