"""Shared test fixtures. Tests never touch the network: HF_HUB_OFFLINE=1 and a private cache directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# One thread per test process: the suite runs with 2 xdist workers on 2 cores, and tiny models are far
# slower with oversubscribed threads.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory per test session, shared by its xdist workers: a generated data set is built once
    (cache files are written atomically, so two workers building the same set at once is only wasted time)."""
    if "VITPLAST_CACHE" not in os.environ:
        if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers' base folders share the session's folder
            shared = tmp_path_factory.getbasetemp().parent / "vitplast-cache"
            shared.mkdir(exist_ok=True)
            os.environ["VITPLAST_CACHE"] = str(shared)
        else:
            os.environ["VITPLAST_CACHE"] = str(tmp_path_factory.mktemp("vitplast-cache"))
    return Path(os.environ["VITPLAST_CACHE"])


def heavy_scale() -> str:
    """'full' when VITPLAST_HEAVY=full, else 'reduced' (what CI runs)."""
    return "full" if os.environ.get("VITPLAST_HEAVY") == "full" else "reduced"
