"""A default lives in one place: every command option that mirrors a config field has that field's default."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import typer

from vitplast.analysis_config import AnalyzeConfig
from vitplast.cli import app, command_index, load_command
from vitplast.configs import default_of
from vitplast.landscape.config import LandscapeConfig
from vitplast.selectors.config import RecommendConfig
from vitplast.train.config import PRETRAIN_DEFAULTS, RunOptions, TrainConfig

#: command -> (config classes whose fields its options mirror, {option: field} where the names differ).
MIRRORS: dict[str, tuple[tuple[type, ...], dict[str, str]]] = {
    "analyze": ((AnalyzeConfig,), {}),
    "bounds": ((AnalyzeConfig,), {"data": "target"}),
    "landscape": ((LandscapeConfig,), {}),
    "recommend": ((RecommendConfig,), {}),
    "export": ((RecommendConfig,), {}),
    "finetune": ((TrainConfig, RunOptions), {}),
    "probe": ((TrainConfig, RunOptions), {"batch_size": ""}),  # its batch is the feature extraction's
    "evaluate": ((TrainConfig, RunOptions), {"batch_size": ""}),  # its batch is the evaluation's
}
#: Options whose command-line default differs on purpose: the command draws its figure, the API on request.
ON_PURPOSE = {("finetune", "plots")}


def _sweep_classes() -> tuple[type, ...]:
    from vitplast.sweep.spec import PlasticitySettings, RunSettings

    return PlasticitySettings, RunSettings


def _with_default(cls: type) -> set[str]:
    """Fields of ``cls`` that have a default (a required field, like a run's model, has none to mirror)."""
    missing = dataclasses.MISSING
    return {f.name for f in dataclasses.fields(cls) if f.default is not missing or f.default_factory is not missing}


def _shown(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


@pytest.mark.parametrize("command", sorted(set(MIRRORS) | {"pretrain", "sweep"}))
def test_command_defaults_are_the_config_defaults(command: str) -> None:
    load_command(command)
    params = typer.main.get_group(app).commands[command].params
    classes, renamed = MIRRORS.get(command, ((), {}))
    if command == "sweep":
        classes = _sweep_classes()
    compared = 0
    for p in params:
        name = renamed.get(str(p.name), str(p.name))
        if p.default is None or (command, name) in ON_PURPOSE or not name:
            continue
        if command == "pretrain":
            if name in PRETRAIN_DEFAULTS:
                assert p.default == PRETRAIN_DEFAULTS[name], name
                compared += 1
            continue
        owner = next((c for c in classes if name in _with_default(c)), None)
        if owner is not None:
            assert p.default == _shown(default_of(owner, name)), f"{command} --{name}"
            compared += 1
    assert compared >= 2, f"{command}: no option compared"


def test_every_command_with_config_options_is_checked() -> None:
    assert set(MIRRORS) | {"pretrain", "sweep"} <= set(command_index())
