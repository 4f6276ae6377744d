"""The ``vitplast`` command line. Each sub-command lives in its own module of this package.

User errors (:class:`~vitplast.errors.VitplastError`, bad option values) end with one ``error: ...`` line
on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from vitplast.errors import VitplastError


class LazyGroup(TyperGroup):
    """The root command group; a sub-command's module is imported only when that command runs.

    ``vitplast --help`` lists every command from the sources of :data:`COMMAND_MODULES` (parsed, not
    imported), so help and option errors never pay for torch, timm or pandas.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(command_index()))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in command_index():
            name, doc = cmd_name, command_index()[cmd_name][1]
            cmd = TyperCommand(name, help=doc, callback=None)  # help listing only; resolve_command loads it
        return cmd

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0] in command_index():
            load_command(args[0])
            self.commands.update(typer.main.get_group(app).commands)
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None and cmd.callback is not None and not hasattr(cmd.callback, "output_guard"):
            cmd.callback = _guard_outputs(cmd.callback)
            for param in cmd.params:
                if param.name in OUTPUT_PARAMS:
                    param.consume_value = _refuse_empty(param.consume_value, OUTPUT_PARAMS[param.name])  # type: ignore[method-assign]
        return name, cmd, rest


# Parameters that name a folder a command writes into; every command's are checked before it starts.
OUTPUT_PARAMS = {"out": "--out", "run_dir": "RUN_DIR", "sweep_dir": "SWEEP_DIR", "export": "--export"}


def _refuse_empty(consume: Any, what: str) -> Any:
    """An output folder option's reading of its raw value that refuses an empty name (as a path it would be
    ``.``, the current folder, which :func:`vitplast.io.check_output_dir` can no longer tell apart)."""

    def checked(ctx: Any, opts: Any) -> Any:
        value, source = consume(ctx, opts)
        if isinstance(value, str) and value == "":
            raise VitplastError(f"{what} is empty: give a folder name")
        return value, source

    return checked


def _guard_outputs(callback: Any) -> Any:
    """Wrap a command's callback: each output folder passes :func:`vitplast.io.check_output_dir` first."""

    @functools.wraps(callback)
    def guarded(**kwargs: Any) -> Any:
        from vitplast.io import check_output_dir

        for param, what in OUTPUT_PARAMS.items():
            if kwargs.get(param) is not None:
                check_output_dir(kwargs[param], what)
        return callback(**kwargs)

    guarded.output_guard = True  # type: ignore[attr-defined]
    return guarded


app = typer.Typer(
    cls=LazyGroup,
    name="vitplast",
    help="Measure, bound and exploit the plasticity of vision-transformer components (ln1 mha ln2 fc1 fc2).",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root() -> None:
    """Measure, bound and exploit the plasticity of vision-transformer components.

    Start with `vitplast analyze` (offline default: the bundled micro-ViT, mini:source vs mini:digits).
    """


# Sub-command modules; each defines its command(s) on ``app`` when imported.
COMMAND_MODULES = (
    "vitplast.cli.analyze",
    "vitplast.cli.bounds",
    "vitplast.cli.pretrain",
    "vitplast.cli.train",
    "vitplast.cli.sweep",
    "vitplast.cli.landscape",
    "vitplast.cli.recommend",
)


@functools.cache
def command_index() -> dict[str, tuple[str, str]]:
    """``{command: (module, docstring)}`` of every ``@app.command()`` in :data:`COMMAND_MODULES`, read from
    the module sources without importing them."""
    index: dict[str, tuple[str, str]] = {}
    for mod in COMMAND_MODULES:
        spec = importlib.util.find_spec(mod)
        if spec is None or spec.origin is None:
            continue
        with open(spec.origin, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if _is_command(deco):
                    index[_command_name(deco, node.name)] = (mod, ast.get_docstring(node) or "")
    return index


def _is_command(deco: ast.expr) -> bool:
    f = deco.func if isinstance(deco, ast.Call) else deco
    return isinstance(f, ast.Attribute) and f.attr == "command" and isinstance(f.value, ast.Name) and f.value.id == "app"


def _command_name(deco: ast.expr, function: str) -> str:
    """The name given to ``@app.command("name")``, else the function's name with ``_`` -> ``-``."""
    if isinstance(deco, ast.Call) and deco.args and isinstance(deco.args[0], ast.Constant):
        return str(deco.args[0].value)
    return function.replace("_", "-")


def load_command(name: str) -> None:
    """Import the module that defines command ``name`` (it registers itself on :data:`app`)."""
    importlib.import_module(command_index()[name][0])


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit-2 exception to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code=2)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        # Without standalone mode click returns the code of ``typer.Exit`` instead of exiting.
        code = app(args=argv, prog_name="vitplast", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into exit code 130
            _interrupted(argv)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except VitplastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        from vitplast.io import WRITE_ERRNOS

        if exc.errno not in WRITE_ERRNOS:
            raise
        print(f"error: cannot write {exc.filename or 'the outputs'}: {exc.strerror}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        if exc.exit_code == 130:
            _interrupted(argv)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted(argv)
    except Exception as exc:
        # Usage errors of the (vendored) click: they carry format_message() and an exit code.
        if type(exc).__name__ == "Abort":
            _interrupted(argv)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            msg = " ".join(exc.format_message().split())
            print(f"error: {msg}", file=sys.stderr)
            sys.exit(2)
        # Errors re-raised from data-loader workers carry the original message on their last line.
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        if lines and "VitplastError: " in lines[-1]:
            print(f"error: {lines[-1].split('VitplastError: ', 1)[1]}", file=sys.stderr)
            sys.exit(2)
        raise


# How each command's interrupted work continues where it stopped (a sweep has no --resume: it resumes by itself).
RESUME_HINTS = {"finetune": "resume with --resume", "pretrain": "resume with --resume",
                "sweep": "re-run the same command to resume", "reproduce": "re-run the same command to resume"}


def _interrupted(argv: list[str] | None) -> None:
    """Ctrl-C: one line that says how to continue, exit code 130."""
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), "")
    hint = f"; {RESUME_HINTS[command]}" if command in RESUME_HINTS else ""
    print(f"interrupted{hint}", file=sys.stderr)
    sys.exit(130)
