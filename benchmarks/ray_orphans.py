"""Benchmark: how long the local Ray of a sweep outlives its driver after ``kill -9``.

Starts a one-task sweep on the Ray executor (``python -m vitplast.cli sweep ...``, a long random-weights run),
waits until its trial runs, records every process the driver started (its descendants: GCS, raylet, agents,
workers), kills the driver with SIGKILL and counts, every 0.5 s, how many of those processes are still alive.
Only these recorded processes are watched (other Ray sessions on the machine are left alone); whatever is still
alive at the end is killed by pid.

Usage: ``python benchmarks/ray_orphans.py [--watch 60] [--compare] [--write]`` (``--compare`` also measures the
driver without its reaper, as before it existed; ``--write`` replaces this benchmark's
section of ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from results import write_section

SWEEP = ["--datasets", "random:64", "--groups", "full", "--optimizers", "adamw", "--lrs", "0.001", "--seeds", "0",
         "--steps", "100000", "--batch-size", "8", "--eval-every", "100000", "--random-weights", "--no-probe",
         "--executor", "ray", "--cpus-per-trial", "1", "--max-concurrent", "1"]


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _label(p: psutil.Process) -> str:
    try:
        cmd = p.cmdline()
    except psutil.Error:
        return "?"
    first = cmd[0] if cmd else p.name()
    if first.startswith("ray::") or "python" not in Path(first).name:
        return first if first.startswith("ray::") else p.name()
    return Path(next((c for c in cmd[1:] if c.endswith(".py")), cmd[1] if len(cmd) > 1 else first)).name


# The driver without its reaper (the behaviour before it existed), for comparison.
NO_REAPER = ("import sys; from vitplast import reaper; reaper.Reaper.start = classmethod(lambda cls: None); "
             "from vitplast.cli import main; main(sys.argv[1:])")


def measure(
    watch: float, start_timeout: float, with_reaper: bool = True
) -> tuple[list[str], list[tuple[float, int]], float | None, list[str]]:
    """(labels of the driver's processes, [(seconds after the kill, processes alive)], seconds until none, labels
    of those alive at the end)."""
    out = Path(tempfile.mkdtemp(prefix="vitplast-ray-orphans-")) / "sweep"
    entry = ["-m", "vitplast.cli"] if with_reaper else ["-c", NO_REAPER]
    driver = subprocess.Popen([sys.executable, *entry, "sweep", "--out", str(out), *SWEEP],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(driver.pid)
    deadline = time.monotonic() + start_timeout
    procs: list[psutil.Process] = []
    while time.monotonic() < deadline:
        procs = root.children(recursive=True)
        if any("ray::" in _label(p) and "IDLE" not in _label(p) for p in procs) and (out / "runs").is_dir():
            time.sleep(3)  # let the trial settle into training
            procs = root.children(recursive=True)
            break
        if driver.poll() is not None:
            raise SystemExit(f"the sweep driver ended early (exit {driver.returncode})")
        time.sleep(0.5)
    else:
        driver.kill()
        raise SystemExit("no trial started in time")
    labels = sorted(_label(p) for p in procs)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    t0 = time.monotonic()
    counts: list[tuple[float, int]] = []
    gone_at = None
    while (t := time.monotonic() - t0) < watch:
        n = len(_alive(procs))
        counts.append((t, n))
        if n == 0:
            gone_at = t
            break
        time.sleep(0.5)
    left = _alive(procs)
    survivors = sorted(_label(p) for p in left)
    for p in left:  # ours: started by the driver above
        with contextlib.suppress(psutil.Error):
            p.kill()
    return labels, counts, gone_at, survivors


def _table(watch: float, labels: list[str], counts: list[tuple[float, int]], gone_at: float | None,
           survivors: list[str]) -> list[str]:
    rows = ["| seconds after kill -9 | processes of the driver alive |", "|---:|---:|"]
    for m in (0, 1, 2, 3, 5, 10, 20, 30, 60):
        seen = [n for t, n in counts if t <= m] or [counts[0][1]]
        if m <= counts[-1][0] + 0.5:
            rows.append(f"| {m} | {seen[-1]} |")
    verdict = (f"All gone after {gone_at:.1f} s" if gone_at is not None
               else f"Still alive after {watch:.0f} s (then killed by pid): {', '.join(survivors)}")
    return [f"The driver had started {len(labels)} processes: {', '.join(labels)}. {verdict}.", "", *rows, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--watch", type=float, default=60.0, help="seconds to watch after the kill")
    ap.add_argument("--start-timeout", type=float, default=240.0)
    ap.add_argument("--compare", action="store_true", help="also measure the driver without its reaper")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    text = [
        "## Ray processes after `kill -9` of a sweep driver",
        "",
        f"`python benchmarks/ray_orphans.py{' --compare' if a.compare else ''} --watch {a.watch:g}`: a one-task Ray "
        f"sweep, SIGKILL of the driver during the trial, {os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}.",
        "",
    ]
    for with_reaper in (True, False) if a.compare else (True,):
        text += [f"**{'With' if with_reaper else 'Without'} the reaper.**", "",
                 *_table(a.watch, *measure(a.watch, a.start_timeout, with_reaper))]
        print("\n".join(text), flush=True)
    if a.write:
        write_section("ray_orphans", "\n".join(text))


if __name__ == "__main__":
    main()
