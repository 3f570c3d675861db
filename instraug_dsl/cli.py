"""The ``iatc`` command line: one command per pipeline stage.

Commands import heavy libraries (litellm, pyarrow) only inside their own
bodies, so ``iatc check`` stays fast.  Every user error ends in a message and
an exit code from :mod:`instraug_dsl.exitcodes`, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from . import exitcodes

app = typer.Typer(
    name="iatc",
    help="Compile .iat instruction-augmentation programs and run them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

PathsArg = Annotated[list[Path], typer.Argument(help="`.iat` files or directories.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Diagnostics as `text` or `json`.")]


def fail(message: str, code: int = exitcodes.USAGE) -> NoReturn:
    """Print an error for humans and exit."""
    typer.echo(f"iatc: error: {message}", err=True)
    raise typer.Exit(code)


def _register_commands() -> None:
    # Each stage owns one module under commands/; importing them is cheap
    # because every heavy import happens inside the command functions.
    import importlib
    import pkgutil

    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}")


def main() -> None:
    """Console-script entry point."""
    _register_commands()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("iatc: interrupted; completed work is kept", err=True)
        sys.exit(exitcodes.INTERRUPTED)
    except Exception as exc:  # the last line of defence: never a bare traceback
        if os.environ.get("IATC_DEBUG"):
            raise
        from .errors import IatError

        if isinstance(exc, IatError):
            typer.echo(f"iatc: error: {exc}", err=True)
            sys.exit(exitcodes.RUNTIME)
        typer.echo(
            f"iatc: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in iatc; set IATC_DEBUG=1 to see the traceback.",
            err=True,
        )
        sys.exit(exitcodes.INTERNAL)
