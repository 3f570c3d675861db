"""``iatc``'s entry point: the fast ``check`` path, command registration, last-resort errors.

Commands import heavy libraries (litellm, pyarrow) only inside their own
bodies, so ``iatc check`` stays fast.  Every user error ends in a message and
an exit code from :mod:`instraug_dsl.commands.exitcodes`, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from . import exitcodes
from .app import app, register_commands


def _fast_check(argv: list[str]) -> int | None:
    """Run the plain form ``check PATH... [--format F] [--together]`` without typer's parsing.

    Recent typer builds a pydantic TypeAdapter for every parameter of the
    invoked command, which imports pydantic: about 0.1 s, as much as checking
    75 files.  ``check`` is what editors and pre-commit hooks run on every
    save, so its plain form is parsed here; anything else (``--help``, an
    unknown option, no path) returns ``None`` and goes through typer.
    """
    if not argv or argv[0] != "check":
        return None
    paths: list[Path] = []
    fmt = "text"
    together = False
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--format":
            fmt = next(rest, "")
        elif arg.startswith("--format="):
            fmt = arg.partition("=")[2]
        elif arg == "--together":
            together = True
        elif arg.startswith("-"):
            return None
        else:
            paths.append(Path(arg))
    from .lang import CHECK_FORMATS, check_cmd

    if not paths or fmt not in CHECK_FORMATS:
        return None
    try:
        check_cmd(paths, fmt, None, together)
    except typer.Exit as done:
        return int(done.exit_code)
    return exitcodes.OK


def main() -> None:
    """Console-script entry point."""
    from ..lang.diagnostics import set_color

    # Colour only for a person at a terminal (https://no-color.org is honoured).
    set_color(
        sys.stderr.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    )
    try:
        code = _fast_check(sys.argv[1:])  # needs only commands.lang, not every command
        if code is not None:
            sys.exit(code)
        register_commands()
        app(prog_name="iatc")
    except KeyboardInterrupt:
        typer.echo("iatc: interrupted; completed work is kept", err=True)
        sys.exit(exitcodes.INTERRUPTED)
    except Exception as exc:  # the last line of defence: never a bare traceback
        if os.environ.get("IATC_DEBUG"):
            raise
        from ..errors import IatError

        if isinstance(exc, IatError):
            typer.echo(f"iatc: error: {exc}", err=True)
            sys.exit(exitcodes.exit_code(exc))
        typer.echo(
            f"iatc: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in iatc; set IATC_DEBUG=1 to see the traceback.",
            err=True,
        )
        sys.exit(exitcodes.INTERNAL)
