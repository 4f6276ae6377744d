"""Options generated from config fields (vitplast.cli.options): names, types, defaults, lists, flags and the
values a command receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from vitplast.cli.options import Fields, options_from
from vitplast.configs import option, validate


@dataclass(frozen=True)
class Toy:
    name: str = option(help="A name.")  # required
    steps: int = option(10, help="Steps.", ge=1)
    lr: float = option(0.5, help="Rate.", gt=0)
    scales: tuple[float, ...] = option((1.0, 2.0), help="Scales.")
    tags: tuple[str, ...] = option((), help="Tags.")
    limit: int | None = option(None, help="Limit.")
    quiet: bool = option(False, help="Quiet.")
    loud: bool = option(True, help="Loud.")

    def __post_init__(self) -> None:
        validate(self)


def _run(fields: Fields, args: list[str]) -> tuple[int, Any, str]:
    got: dict[str, Any] = {}
    app = typer.Typer()

    @app.command()
    @options_from(fields)
    def cmd(value: Any, extra: int = typer.Option(3, "--extra")) -> None:
        got["value"], got["extra"] = value, extra

    res = CliRunner().invoke(app, args)
    return res.exit_code, got, res.output + repr(res.exception)


def test_defaults_types_lists_and_flags() -> None:
    code, got, out = _run(Fields(Toy, "value"), ["--name", "a"])
    assert code == 0, out
    assert got == {"value": Toy(name="a"), "extra": 3}
    code, got, _ = _run(Fields(Toy, "value"), ["--name", "a", "--steps", "4", "--lr", "1e-3", "--scales", "1, 3,6",
                                               "--tags", "x,y", "--limit", "7", "--quiet", "--no-loud", "--extra", "1"])
    assert got == {"value": Toy("a", 4, 1e-3, (1.0, 3.0, 6.0), ("x", "y"), 7, True, False), "extra": 1}
    assert _run(Fields(Toy, "value"), ["--name", "a", "--scales", ""])[1]["value"].scales == ()


def test_bad_values() -> None:
    assert _run(Fields(Toy, "value"), [])[0] == 2  # --name is required
    assert _run(Fields(Toy, "value"), ["--name", "a", "--steps", "x"])[0] == 2  # not an integer
    code, _, out = _run(Fields(Toy, "value"), ["--name", "a", "--scales", "1,,2"])
    assert code == 1 and "--scales has an empty item" in out
    code, _, out = _run(Fields(Toy, "value"), ["--name", "a", "--scales", "1,b"])
    assert "--scales takes a comma list of numbers" in out
    assert "--steps must be >= 1" in _run(Fields(Toy, "value"), ["--name", "a", "--steps", "0"])[2]


def test_selection_renames_unset_and_dicts() -> None:
    spec = Fields(Toy, "value", only=("name", "steps", "tags"), rename={"name": "title"}, unset=("steps",),
                  text=("tags",), build=False)
    code, got, out = _run(spec, ["--title", "a", "--tags", "x,y"])
    assert code == 0, out
    assert got["value"] == {"name": "a", "tags": "x,y"}  # steps unset: not handed on; tags as typed
    assert _run(spec, ["--title", "a", "--steps", "2"])[1]["value"] == {"name": "a", "steps": 2, "tags": ""}
    assert _run(spec, ["--name", "a"])[0] == 2  # renamed


def test_help_and_default_shown() -> None:
    spec = Fields(Toy, "value", unset=("steps",), recipes={"mini:": {"steps": 70}})
    app = typer.Typer()

    @app.command()
    @options_from(spec)
    def cmd(value: Toy) -> None: ...

    params = {p.name: p for p in typer.main.get_command(app).params}
    assert params["steps"].default is None and params["steps"].help == "Steps. \\[default: 10; mini:* data: 70]"
    shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "Steps. [default: 10; mini:* data: 70]" in shown  # the escaped markup is shown
    assert params["scales"].default == "1.0,2.0" and params["scales"].help == "Scales."
    assert params["limit"].default is None and not params["limit"].required and params["name"].required
    assert params["loud"].secondary_opts == ["--no-loud"] and params["quiet"].secondary_opts == []


def test_an_option_declared_twice_or_nowhere_is_refused() -> None:
    with pytest.raises(ValueError, match="declared twice"):

        @options_from(Fields(Toy, "value"))
        def cmd(value: Toy, steps: int = 1) -> None: ...

    with pytest.raises(ValueError, match="no parameter 'value'"):

        @options_from(Fields(Toy, "value"))
        def other(cfg: Toy) -> None: ...
