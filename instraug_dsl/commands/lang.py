"""Language commands: ``iatc check``, ``iatc parse`` (and ``fmt``, ``import``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ..lang.diagnostics import Diagnostic, Diagnostics, render_all
from ..lang.source import SourceFile
from . import exitcodes
from .app import AllowOpt, PathsArg, app, fail, guard


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


#: What ``iatc check --format`` accepts.
CHECK_FORMATS = ("text", "json", "sarif", "github")

CheckFormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="Diagnostics as `text`, `json`, `sarif` (SARIF 2.1.0) or `github` "
        "(GitHub Actions workflow commands).",
    ),
]
TogetherOpt = Annotated[
    bool,
    typer.Option(
        "--together",
        help="Check every path as one program (one namespace); by default each path given "
        "is a program of its own.",
    ),
]


@dataclass
class Checked:
    """Several programs checked separately, their diagnostics merged (each once)."""

    diagnostics: list[Diagnostic]
    sources: dict[str, SourceFile]
    error_count: int
    warning_count: int

    def render(self) -> str:
        """Every diagnostic shown, rendered with its source excerpt."""
        return render_all(self.diagnostics, self.sources)


def check_programs(
    paths: Sequence[Path], allow_imports: Sequence[Path] = (), *, together: bool = False
) -> Checked:
    """Check each path as its own program (all of them as one with ``together``).

    A directory is one program (every `.iat` file below it and what they import); so is a
    file (with what it imports).  A file that several programs load reports a problem once:
    identical diagnostics are merged, then sorted and capped per file as usual.
    """
    from .. import api

    groups = [list(paths)] if together else [[p] for p in dict.fromkeys(paths)]
    seen: dict[Diagnostic, None] = {}
    sources: dict[str, SourceFile] = {}
    for group in groups:
        result = api.load(group, allow_imports=allow_imports)
        seen.update(dict.fromkeys(result.context.diagnostics))
        sources.update(result.sources)
    merged = Diagnostics(seen)
    errors = len(merged.errors)
    return Checked(merged.sorted(), sources, errors, len(merged) - errors)


@app.command("check")
def check_cmd(
    paths: PathsArg,
    format: CheckFormatOpt = "text",
    allow_imports: AllowOpt = None,
    together: TogetherOpt = False,
) -> None:
    """Parse and check `.iat` files; exit 1 if there is any error.

    Each path is a program of its own; `--together` checks all paths as one program.
    """
    if format not in CHECK_FORMATS:
        fail(f"--format must be one of {', '.join(f'`{f}`' for f in CHECK_FORMATS)}")
    with guard():
        result = check_programs(paths, allow_imports or (), together=together)
    summary = (
        f"checked {_plural(len(result.sources), 'file')}: "
        f"{_plural(result.error_count, 'error')}, {_plural(result.warning_count, 'warning')}"
    )
    if format == "json":
        typer.echo(json.dumps([d.to_json() for d in result.diagnostics], indent=2, sort_keys=True))
    elif format == "sarif":
        from .._version import __version__
        from ..lang.report_formats import to_sarif

        log = to_sarif(result.diagnostics, version=__version__)
        typer.echo(json.dumps(log, indent=2, ensure_ascii=False))
    elif format == "github":
        from ..lang.report_formats import to_github

        if result.diagnostics:
            typer.echo(to_github(result.diagnostics))
        typer.echo(summary, err=True)
    else:
        if result.diagnostics:
            typer.echo(result.render(), err=True)
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
