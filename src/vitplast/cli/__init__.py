"""The ``vitplast`` command line. Each sub-command lives in its own module of this package.

User errors (:class:`~vitplast.errors.VitplastError`, bad option values) end with one ``error: ...`` line
on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from vitplast.errors import VitplastError

app = typer.Typer(
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


def _load_commands() -> None:
    for mod in COMMAND_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit-2 exception to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code=2)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    _load_commands()
    try:
        # Without standalone mode click returns the code of ``typer.Exit`` instead of exiting.
        code = app(args=argv, prog_name="vitplast", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except VitplastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        # Usage errors of the (vendored) click: they carry format_message() and an exit code.
        if type(exc).__name__ == "Abort":
            sys.exit(130)
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
