"""Start-up cost of the command line: help and option errors must not import the heavy libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vitplast.cli import command_index

HEAVY = ("torch", "timm", "transformers", "pandas", "matplotlib", "scipy", "sklearn")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('HEAVY:', *(m for m in {HEAVY!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    return set(out.stdout.rsplit("HEAVY:", 1)[1].split())


def test_import_vitplast_cli_is_light() -> None:
    assert _imported_after("import vitplast, vitplast.cli") == set()


def test_parsing_a_sweep_with_a_plasticity_section_is_light() -> None:
    code = ("from vitplast.sweep.spec import parse_sweep\n"
            "parse_sweep({'name': 'x', 'models': ['micro'], 'datasets': ['random:16'],"
            " 'plasticity': {'source': 'mini:source', 'pairs': 8}})")
    assert _imported_after(code) == set()


def test_root_help_does_not_import_heavy_libraries() -> None:
    assert _imported_after("from vitplast.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass") == set()


@pytest.mark.parametrize("command", sorted(command_index()))
def test_command_help_and_option_errors_do_not_import_heavy_libraries(command: str) -> None:
    """Every command (the list comes from the help index, so a new command is covered): ``CMD --help`` and
    ``CMD --bogus`` are answered before torch and friends are imported."""
    code = (f"from vitplast.cli import main\nfor argv in ([{command!r}, '--help'], [{command!r}, '--bogus']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass")
    assert _imported_after(code) == set()


@pytest.mark.parametrize("argv", [
    ["finetune", "--lr", "inf"], ["probe", "--C", "nan"], ["landscape", "--grid", "2"], ["recommend", "--selectors", "nosuch"],
    ["reproduce", "--steps", "0", "--dry-run"], ["sweep", "--datasets", "random:16", "--lrs", "x"],
    ["pretrain", "--steps", "0"], ["pretrain", "--name", "nano"], ["sweep", "--datasets", "random:16", "--lrs", "-1"],
    ["sweep", "--datasets", "nosuch:1", "--lrs", "0.1"],
], ids=lambda a: " ".join(a[:3]))
def test_bad_option_values_are_refused_before_heavy_imports(argv: list[str], tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    code = f"from vitplast.cli import main\ntry:\n    main({[*argv, '--out', out]!r})\nexcept SystemExit as e:\n" \
           "    assert e.code == 2, e.code"
    assert _imported_after(code) == set()
    assert not (tmp_path / "out").exists()


def test_lazy_public_names_resolve() -> None:
    import vitplast

    assert vitplast.COMPONENTS == ("ln1", "mha", "ln2", "fc1", "fc2")
    assert callable(vitplast.load_model) and "measure_plasticity" in dir(vitplast)
    with pytest.raises(AttributeError):
        _ = vitplast.no_such_name


def test_command_index_matches_registered_commands() -> None:
    """The help listing (parsed from sources) names exactly the commands the modules register."""
    import importlib

    import typer

    from vitplast.cli import COMMAND_MODULES, app

    for mod in COMMAND_MODULES:
        importlib.import_module(mod)
    registered = set(typer.main.get_group(app).commands)
    assert set(command_index()) == registered
