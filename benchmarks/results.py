"""The one writer of ``benchmarks/RESULTS.md``: each benchmark owns the block between its markers."""

from __future__ import annotations

from pathlib import Path

from vitplast.io import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nWritten by the scripts in `benchmarks/`.\n"


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    """Replace the block between ``<!-- name -->`` and ``<!-- /name -->`` in ``path`` (append it if absent)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{text.strip()}\n{end}\n"
    old = path.read_text() if path.is_file() else HEADER
    if start in old and end in old:
        after = old[old.index(end) + len(end) :].lstrip("\n")
        new = old[: old.index(start)] + block + ("\n" + after if after else "")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    write_text_atomic(path, new)
