"""The reaper ends a killed driver's descendants, and only when the driver dies without stopping it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

psutil = pytest.importorskip("psutil")

# A driver: starts its reaper, then a child that itself starts a grandchild (as the raylet starts Ray's
# workers), prints the pids and either waits to be killed or stops the reaper and exits.
DRIVER = textwrap.dedent("""
    import subprocess, sys, time
    from vitplast.reaper import Reaper
    reaper = Reaper.start()
    child = subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys, time; g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        " print(g.pid, flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    grandchild = child.stdout.readline().strip()
    time.sleep(2.0)  # the reaper records the tree every 0.5 s
    print(reaper.proc.pid, child.pid, grandchild, flush=True)
    if sys.argv[1] == "stop":
        reaper.stop()
        print("stopped", flush=True)
    time.sleep(60)
""")


def _driver(mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, mode], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    pids = [int(x) for x in proc.stdout.readline().split()]
    return proc, pids


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cleanup(pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_kill_9_of_the_driver_ends_everything_it_started() -> None:
    proc, (reaper, child, grandchild) = _driver("wait")
    try:
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(map(_alive, (reaper, child, grandchild))):
            time.sleep(0.2)
        assert not _alive(child) and not _alive(grandchild) and not _alive(reaper)
    finally:
        _cleanup([child, grandchild, reaper])


def test_a_stopped_reaper_touches_nothing() -> None:
    proc, (reaper, child, grandchild) = _driver("stop")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "stopped"
        assert not _alive(reaper)
        proc.kill()
        proc.wait()
        time.sleep(1.0)
        assert _alive(child) and _alive(grandchild)
    finally:
        _cleanup([child, grandchild, reaper])
