"""The one progress-callback protocol of vitplast's compute functions.

Long computations (analysis, bounds, finetuning, probing, sweeps, recommendations, landscapes) take an optional
``progress`` argument of type :class:`Progress`: a factory called once per phase with a label and the phase's
total number of units (pairs, steps, runs, images), which returns ``advance(k)`` to report ``k`` more units done::

    advance = progress("measuring pairs", 256)
    for batch in batches:
        ...
        advance(len(batch))

Compute code never draws anything itself: the command line passes a rich progress bar (``vitplast.cli.progress``),
library users may pass their own callback or nothing (:func:`no_progress`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    """``progress(label, total) -> advance``: start a phase of ``total`` units; ``advance(k)`` reports k done."""

    def __call__(self, label: str, total: int, /) -> Advance: ...


def _ignore(k: int) -> None:
    return None


def no_progress(label: str, total: int, /) -> Advance:
    """A :class:`Progress` that reports nothing."""
    return _ignore


def phase(progress: Progress | None, label: str, total: int) -> Advance:
    """``progress(label, total)``, or a no-op when ``progress`` is None."""
    return (progress or no_progress)(label, total)
