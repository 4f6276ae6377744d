"""Rich progress bars for long commands (drawn on stderr; silent when stderr is not a terminal)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from vitplast.progress import Progress as ProgressCallback


@contextlib.contextmanager
def rich_progress(console: Console) -> Iterator[ProgressCallback]:
    """Yield a :class:`vitplast.progress.Progress` drawing one rich bar per phase (label and total of the
    phase). Nothing is drawn before the first phase starts, nor when ``console`` is not a terminal, so an error
    prints only its own line."""
    with contextlib.ExitStack() as stack:
        bars: list[Progress] = []

        def start(label: str, total: int, /) -> Callable[[int], None]:
            if not bars:
                bars.append(stack.enter_context(Progress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False, disable=not console.is_terminal,
                )))
            task = bars[0].add_task(label, total=total)
            return lambda k: bars[0].advance(task, k)

        yield start
