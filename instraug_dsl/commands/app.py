"""The ``iatc`` typer application, the options shared by several commands, and ``fail``.

Command modules (one per pipeline stage) import this module and register their commands on
:data:`app`; :mod:`.main` imports them in :data:`STAGES` order, so ``iatc --help`` lists
commands as the pipeline runs.  Nothing here imports a command module: no import cycle.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from . import exitcodes

app = typer.Typer(
    name="iatc",
    help="Compile .iat instruction-augmentation programs and run them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

PathsArg = Annotated[list[Path], typer.Argument(help="`.iat` files or directories.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Diagnostics as `text` or `json`.")]

#: Command modules in pipeline order: ``iatc --help`` lists commands in this order.
STAGES = ("lang", "fmt", "importer", "compile", "runtime", "dataset")


def fail(message: str, code: int = exitcodes.USAGE) -> NoReturn:
    """Print an error for humans and exit."""
    typer.echo(f"iatc: error: {message}", err=True)
    raise typer.Exit(code)


def register_commands() -> None:
    """Import every command module (cheap: heavy imports happen inside command bodies)."""
    for stage in STAGES:
        importlib.import_module(f"{__package__}.{stage}")
