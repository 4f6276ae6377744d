"""Built-in sweeps: ``mini`` (the offline mini suite on the micro-ViT) and ``paper`` (README, "Reproducing the paper offline")."""

from __future__ import annotations

from vitplast.suites.estimate import Estimate, Sizes, estimate
from vitplast.suites.mini import mini_sizes, mini_suite, mini_throughput
from vitplast.suites.paper import paper_sizes, paper_suite, paper_throughput

SUITES = ("mini", "paper")

__all__ = [
    "SUITES",
    "Estimate",
    "Sizes",
    "estimate",
    "mini_sizes",
    "mini_suite",
    "mini_throughput",
    "paper_sizes",
    "paper_suite",
    "paper_throughput",
]
