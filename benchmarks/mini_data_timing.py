"""Benchmark: time to build and to reload every offline mini-suite set.

Each measurement runs ``load_data(spec)`` in a fresh Python process (imports excluded from the time)
against a fresh cache directory: "first build" starts from an empty cache (for ``mini:source-c`` the
source set is already cached, since the corrupted set is derived from it and not cached itself),
"cached load" is a second fresh process on the filled cache. Times are medians over ``--repeats``.

Usage: ``python benchmarks/mini_data_timing.py [--repeats 1] [--threads 2] [--write]`` (``--write``
replaces this benchmark's section of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from results import write_section

HERE = Path(__file__).resolve().parent
SPECS = [
    "mini:source",
    "mini:novel",
    "mini:textures",
    "mini:digits",
    "mini:faces",
    *[f"mini:source-c:{c}:5" for c in ("gaussian_noise", "motion_blur", "contrast", "snow", "speckle_noise")],
]
CHILD = """
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from vitplast.data import load_data
import vitplast.data.mini
t = time.perf_counter()
b = load_data(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t, "sizes": b.info["sizes"], "classes": b.num_classes}))
"""


def timed_load(spec: str, cache: Path, threads: int) -> dict[str, object]:
    env = dict(os.environ, VITPLAST_CACHE=str(cache))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, spec, str(threads)], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    rows = []
    for spec in SPECS:
        first, again = [], []
        info: dict[str, object] = {}
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as tmp:
                cache = Path(tmp)
                if spec.startswith("mini:source-c"):
                    timed_load("mini:source", cache, args.threads)
                info = timed_load(spec, cache, args.threads)
                first.append(float(info["seconds"]))  # type: ignore[arg-type]
                again.append(float(timed_load(spec, cache, args.threads)["seconds"]))  # type: ignore[arg-type]
        sizes = info["sizes"]
        assert isinstance(sizes, dict)
        split = f"{sizes['train']} / {sizes['val']} / {sizes['test']}"
        row = f"| `{spec}` | {info['classes']} | {split} | {statistics.median(first):.2f} | {statistics.median(again):.2f} |"
        print(row, flush=True)
        rows.append(row)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join(
        [
            "## Offline mini-suite: build and reload times (`benchmarks/mini_data_timing.py`)",
            "",
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
            f"{args.threads}, load average {load:.1f} at the end (shared machine), median of {args.repeats}.",
            "Seconds of `load_data(spec)` in a fresh process, imports excluded. `mini:source-c` is derived "
            "from the cached source set on every load (not cached itself).",
            "",
            "| spec | classes | train / val / test | first build (s) | cached load (s) |",
            "|---|---:|---|---:|---:|",
            *rows,
        ]
    )
    print(text)
    if args.write:
        write_section("mini_data_timing", text)
        print(f"wrote section to {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
