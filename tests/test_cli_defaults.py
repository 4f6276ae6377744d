"""A default lives in one place: every command option that mirrors a config field is generated from that field
(default, help and name), and the few written by hand are listed here with their reason."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import typer

from vitplast.cli import app, command_index, load_command
from vitplast.cli.options import GENERATED
from vitplast.configs import DEVICE_HELP, cli_name, default_of, help_of

#: Options named as a field of a config their command reads, written by hand on purpose.
HAND_WRITTEN = {
    ("finetune", "plots"): "the command draws its figure by default, the API (RunOptions.plots) on request",
    ("pretrain", "plots"): "the command draws its figure by default, the API (RunOptions.plots) on request",
    ("landscape", "groups"): "--groups and --train are two spellings of LandscapeConfig.groups",
}
#: Commands whose options are not generated from a config; their defaults are compared with these classes.
NOT_GENERATED = {"report"}


def _command(name: str) -> tuple[Any, dict[str, tuple[type, str, bool]]]:
    """The click command ``name`` and its generated parameters ``{param: (config class, field, unset)}``."""
    load_command(name)
    callback = next(c.callback for c in app.registered_commands
                    if (c.name or c.callback.__name__.replace("_", "-")) == name)  # type: ignore[union-attr]
    return typer.main.get_group(app).commands[name], getattr(callback, GENERATED, {})


def _shown(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def _with_default(cls: type) -> set[str]:
    missing = dataclasses.MISSING
    return {f.name for f in dataclasses.fields(cls) if f.default is not missing or f.default_factory is not missing}


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("command", sorted(set(command_index()) - NOT_GENERATED))
def test_options_of_every_command_come_from_its_configs(command: str) -> None:
    click_cmd, generated = _command(command)
    classes = {cls for cls, _, _ in generated.values()}
    for p in click_cmd.params:
        if p.name not in generated:
            # an option named as a field of a config the command reads must be generated from it
            assert (command, p.name) in HAND_WRITTEN or not any(p.name in _fields(c) for c in classes), \
                f"{command} --{p.name} repeats a config field by hand"
            continue
        cls, field, unset = generated[str(p.name)]
        assert p.opts[0] == cli_name(str(p.name))
        assert help_of(cls, field) in p.help, f"{command} --{p.name}"
        if field not in _with_default(cls):
            assert p.required, f"{command} --{p.name}: the config requires it"
        elif unset:  # a data recipe may set it: unset, the help shows the default
            default = default_of(cls, field)
            assert p.default is None and (default is None or f"[default: {_shown(default)}" in p.help)
        else:
            assert p.default == _shown(default_of(cls, field)), f"{command} --{p.name}"


@pytest.mark.parametrize("command", sorted(command_index()))
def test_device_is_declared_once(command: str) -> None:
    click_cmd, generated = _command(command)
    device = [p for p in click_cmd.params if p.name == "device"]
    if not device:
        return
    assert "device" in generated and generated["device"][1] == "device"
    assert device[0].help == DEVICE_HELP and "mps" in device[0].help and device[0].default == "auto"


def test_the_generated_commands() -> None:
    generated = {c for c in command_index() if _command(c)[1]}
    assert generated == set(command_index()) - NOT_GENERATED
    assert {c for c, _ in HAND_WRITTEN} <= generated
