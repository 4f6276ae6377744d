"""Benchmark: start-up time of the command line (``vitplast --help`` and option errors).

``vitplast --help``, then ``CMD --bogus`` for every command of ``vitplast --help`` (read from
:func:`vitplast.cli.command_index`, so a new command is measured too). Every command is run in a fresh Python
process (``python -m vitplast.cli ARGS``, the ``vitplast`` entry point) ``--repeat`` times; the median and the minimum wall time are reported, with the machine's load average (on a
shared machine the absolute numbers move). Goals: ``--help`` < 2 s, an option error < 3 s.

Usage: ``python benchmarks/startup.py [--repeat 5] [--write]`` (``--write`` replaces this benchmark's section of
``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

from results import write_section

from vitplast.cli import command_index

CASES = (
    ("vitplast --help", ["--help"]),
    *((f"vitplast {c} --bogus", [c, "--bogus"]) for c in sorted(command_index())),
    ("vitplast probe --C x", ["probe", "--out", "x", "--C", "x"]),
    ("python -c 'import vitplast'", None),
)


def wall(args: list[str] | None) -> float:
    cmd = [sys.executable, "-c", "import vitplast"] if args is None else [sys.executable, "-m", "vitplast.cli", *args]
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    rows = ["| command | median s | min s |", "|---|---:|---:|"]
    for label, args in CASES:
        times = [wall(args) for _ in range(a.repeat)]
        rows.append(f"| `{label}` | {statistics.median(times):.2f} | {min(times):.2f} |")
        print(rows[-1], flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = "\n".join(
        [
            "## Start-up time of the command line",
            "",
            f"`python benchmarks/startup.py --repeat {a.repeat}`: fresh process per call, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, load average {load}.",
            "",
            *rows,
        ]
    )
    if a.write:
        write_section("startup", text)


if __name__ == "__main__":
    main()
