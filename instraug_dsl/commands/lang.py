"""Language commands: ``iatc check``, ``iatc parse`` (and ``fmt``, ``import``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from . import exitcodes
from .app import AllowOpt, FormatOpt, PathsArg, app, fail, guard


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


@app.command("check")
def check_cmd(paths: PathsArg, format: FormatOpt = "text", allow_imports: AllowOpt = None) -> None:
    """Parse and check `.iat` files; exit 1 if there is any error."""
    from .. import api

    if format not in ("text", "json"):
        fail("--format must be `text` or `json`")
    with guard():
        result = api.load(paths, allow_imports=allow_imports or ())
    if format == "json":
        typer.echo(json.dumps([d.to_json() for d in result.diagnostics], indent=2, sort_keys=True))
    else:
        if result.diagnostics:
            typer.echo(result.render(), err=True)
        summary = (
            f"checked {_plural(len(result.sources), 'file')}: "
            f"{_plural(result.error_count, 'error')}, {_plural(result.warning_count, 'warning')}"
        )
        typer.echo(summary, err=bool(result.error_count))
    raise typer.Exit(exitcodes.DIAGNOSTICS if result.error_count else exitcodes.OK)


@app.command("parse")
def parse_cmd(
    path: Annotated[Path, typer.Argument(help="A `.iat` file.")],
    emit: Annotated[str, typer.Option(help="What to print: `ir`.")] = "ir",
    spans: Annotated[bool, typer.Option(help="Include source spans.")] = True,
) -> None:
    """Print the IR of a file (and what it imports) as JSON."""
    from ..lang.irjson import program_json
    from ..lang.loader import load

    if emit != "ir":
        fail("--emit must be `ir`")
    try:
        loaded = load([path])
    except FileNotFoundError as exc:
        fail(f"no such file or directory: {exc.args[0]}")
    if loaded.diagnostics.errors:
        from ..lang.diagnostics import render_all

        typer.echo(render_all(loaded.diagnostics.sorted(), loaded.sources), err=True)
        raise typer.Exit(exitcodes.DIAGNOSTICS)
    typer.echo(program_json(loaded.program, spans=spans))
