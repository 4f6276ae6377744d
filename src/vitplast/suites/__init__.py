"""Built-in sweeps: ``mini`` (the offline mini suite on the micro-ViT) and ``paper`` (README, "Reproducing the paper
offline"), each a :class:`~vitplast.suites.suite.Suite` in :data:`SUITES`."""

from __future__ import annotations

from vitplast.suites.estimate import Estimate, Sizes, estimate
from vitplast.suites.mini import mini_sizes, mini_suite, mini_throughput
from vitplast.suites.paper import paper_sizes, paper_suite, paper_throughput
from vitplast.suites.suite import SUITES, Suite, SuiteOptions, suite_of

__all__ = [
    "SUITES",
    "Estimate",
    "Sizes",
    "Suite",
    "SuiteOptions",
    "estimate",
    "mini_sizes",
    "mini_suite",
    "mini_throughput",
    "paper_sizes",
    "paper_suite",
    "paper_throughput",
    "suite_of",
]
