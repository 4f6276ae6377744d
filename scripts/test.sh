#!/usr/bin/env bash
# Install vitplast with its test dependencies, then run lint, types and the whole test suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.14.1 torchvision==0.29.1
python3 -m pip install -q -e ".[dev]"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
python3 -m ruff check src tests benchmarks
python3 -m mypy
python3 -m pytest -n 2 -q -p no:benchmark --durations=15 tests
