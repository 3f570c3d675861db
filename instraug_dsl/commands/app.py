"""The ``iatc`` typer application, the options shared by several commands, and ``fail``.

Command modules (one per pipeline stage) import this module and register their commands on
:data:`app`; :mod:`.main` imports them in :data:`STAGES` order, so ``iatc --help`` lists
commands as the pipeline runs.  Nothing here imports a command module: no import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ..errors import IatCheckError, IatError
from ..lang.frontend import CheckResult
from . import exitcodes

app = typer.Typer(
    name="iatc",
    help="Compile .iat instruction-augmentation programs and run them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

PathsArg = Annotated[list[Path], typer.Argument(help="`.iat` files or directories.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Diagnostics as `text` or `json`.")]
AllowOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--allow-imports",
        help="A folder imports may also point into (repeatable); by default they stay inside "
        "the folders given and the shipped libraries (`@common/...`).",
    ),
]


def load_sources(paths: list[Path], allow_imports: list[Path] | None) -> CheckResult:
    """Check the sources once and print their warnings; the result feeds any stage."""
    from .. import api

    result = api.load(paths, allow_imports=allow_imports or ())
    if result.diagnostics and result.ok:
        typer.echo(result.render(), err=True)
    return result


#: Command modules in pipeline order: ``iatc --help`` lists commands in this order.
STAGES = ("init", "lang", "fmt", "lsp", "importer", "compile", "runtime", "dataset")


def fail(message: str, code: int = exitcodes.USAGE) -> NoReturn:
    """Print an error for humans and exit."""
    typer.echo(f"iatc: error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def guard() -> Iterator[None]:
    """Report an :class:`IatError` for humans and exit with its code from the one table."""
    try:
        yield
    except IatCheckError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(exitcodes.exit_code(exc)) from None
    except IatError as exc:
        fail(str(exc), exitcodes.exit_code(exc))


def warn(message: str) -> None:
    """Print a warning for humans."""
    typer.echo(f"iatc: warning: {message}", err=True)


def _show_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"iatc {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Compile .iat instruction-augmentation programs and run them."""


def register_commands() -> None:
    """Import every command module (cheap: heavy imports happen inside command bodies)."""
    for stage in STAGES:
        importlib.import_module(f"{__package__}.{stage}")
