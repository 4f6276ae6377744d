"""A reaper: the processes a driver started end within seconds of the driver dying without cleaning up.

``kill -9`` (or the OOM killer) of a sweep driver gives it no chance to shut its local Ray down, and Ray's agents
and workers then outlive it for minutes. :meth:`Reaper.start` launches this file as a small separate process
(standard library and psutil only) that watches the calling process, the driver:

- every ``interval`` seconds it records the driver's descendants (they are re-parented once the driver is gone, so
  they are recorded while it lives; psutil checks a process's start time before signalling it, so a re-used pid
  is never hit);
- its stdin is a pipe whose write end only the driver holds (and it also checks that the driver still runs). :meth:`Reaper.stop` (the driver shut its processes
  down itself) writes ``stop`` and the reaper ends quietly. End of file without ``stop`` means the driver died
  (the kernel closed its end): every recorded process still alive gets SIGTERM, and SIGKILL ``grace`` seconds
  later.

Only processes that were descendants of that driver are touched; other Ray sessions on the machine are not.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
from typing import IO, Any

INTERVAL = 0.5
GRACE = 2.0


class Reaper:
    """Handle of a running reaper of the calling process's descendants (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @classmethod
    def start(cls) -> Reaper | None:
        """Start a reaper for this process; ``None`` where it cannot run (no psutil, or no ``select`` on pipes)."""
        try:
            import psutil  # noqa: F401
        except ImportError:
            return None
        if os.name != "posix":
            return None
        # -P: this file's folder (the package's modules, e.g. io.py) must not shadow the standard library
        proc = subprocess.Popen([sys.executable, "-P", os.path.abspath(__file__), str(os.getpid())], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": it has recorded the processes this one started so far
        proc.stdout.close()
        return cls(proc)

    def stop(self) -> None:
        """The driver cleaned up itself: end the reaper without it touching anything."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def watch(
    driver_pid: int, stream: IO[str], interval: float = INTERVAL, grace: float = GRACE, ready: Any = None
) -> list[Any]:
    """Record ``driver_pid``'s descendants (calling ``ready()`` after the first time) until ``stream`` says
    ``stop`` (returns ``[]``) or ends or the driver is gone (it died: terminate the recorded processes still
    alive; returns the ones that had to be signalled)."""
    import psutil

    me = os.getpid()
    tracked: dict[tuple[int, float], Any] = {}
    try:
        driver: Any = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        driver = None
    while True:
        if driver is not None:
            if not driver.is_running():
                break  # gone, though a process it forked may still hold the pipe open
            try:
                for p in driver.children(recursive=True):
                    if p.pid != me:
                        tracked.setdefault((p.pid, p.create_time()), p)
            except psutil.Error:
                pass
        if ready is not None:
            ready()
            ready = None
        readable, _, _ = select.select([stream], [], [], interval)
        if readable:
            line = stream.readline()
            if line.strip() == "stop":
                return []
            if not line:
                break
    alive = [p for p in tracked.values() if p.is_running()]
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, left = psutil.wait_procs(alive, timeout=grace)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return alive


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.stdin, ready=lambda: print("ready", flush=True))
