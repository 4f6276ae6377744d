"""Progress on stderr for long commands: rich bars on a terminal, plain heartbeat lines elsewhere (logs, CI)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vitplast.progress import Progress as ProgressCallback

#: Seconds between two plain progress lines when stderr is not a terminal.
HEARTBEAT_S = 30.0


class Heartbeat:
    """Prints ``[elapsed] label: done/total`` for the latest phase every ``interval`` seconds, from a daemon thread.

    Used when output is not a terminal, so that a log or a CI job sees a line at least every ``interval`` seconds
    during long work. Nothing is printed before ``interval`` seconds have passed, so a command that fails early
    prints only its error line."""

    def __init__(self, stream: IO[str], interval: float = HEARTBEAT_S) -> None:
        self.stream, self.interval = stream, interval
        self.label, self.done, self.total = "", 0, 0
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def phase(self, label: str, total: int) -> Callable[[int], None]:
        """Start a phase (and the thread, on the first one); returns ``advance(k)``."""
        self.label, self.done, self.total = label, 0, total
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

        def advance(k: int) -> None:
            self.done += k

        return advance

    def line(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"[{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}] {self.label}: {self.done}/{self.total}"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            print(self.line(), file=self.stream, flush=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@contextlib.contextmanager
def rich_progress(console: Console, heartbeat_s: float = HEARTBEAT_S) -> Iterator[ProgressCallback]:
    """Yield a :class:`vitplast.progress.Progress` drawing one rich bar per phase (label and total of the
    phase) on a terminal, or a :class:`Heartbeat` line every ``heartbeat_s`` seconds elsewhere. Nothing is drawn
    before the first phase starts (nor, off a terminal, before ``heartbeat_s`` seconds), so an error prints only
    its own line."""
    if not console.is_terminal:
        beat = Heartbeat(console.file, heartbeat_s)
        try:
            yield beat.phase
        finally:
            beat.stop()
        return
    with contextlib.ExitStack() as stack:
        bars: list[Progress] = []

        def start(label: str, total: int, /) -> Callable[[int], None]:
            if not bars:
                bars.append(stack.enter_context(Progress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False,
                )))
            task = bars[0].add_task(label, total=total)
            return lambda k: bars[0].advance(task, k)

        yield start
