"""``iatc fmt``: rewrite `.iat` files in the canonical layout (see :mod:`instraug_dsl.lang.fmt`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import exitcodes
from .app import PathsArg, app, fail


@app.command("fmt")
def fmt_cmd(
    paths: PathsArg,
    check: Annotated[
        bool, typer.Option("--check", help="Change nothing; list files that would change.")
    ] = False,
) -> None:
    """Format `.iat` files in place (comments kept); `--check` exits 1 if any would change."""
    from ..errors import IatCheckError
    from ..lang.fmt import format_source
    from ..lang.loader import expand_paths

    try:
        files = expand_paths(paths)
    except FileNotFoundError as exc:
        fail(f"no such file or directory: {exc.args[0]}")
    changed: list[Path] = []
    broken = unreadable = 0
    for path in files:
        try:
            raw = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            typer.echo(f"iatc: error: cannot read {path}: {reason}", err=True)
            unreadable += 1
            continue
        # Read line breaks as `iatc check` does (universal newlines), so the
        # meaning of a multi-line string never differs; \r\n files still change.
        text = raw.replace("\r\n", "\n").replace("\r", "\n")
        try:
            formatted = format_source(text, str(path))
        except IatCheckError as exc:
            typer.echo(exc.render(), err=True)
            broken += 1
            continue
        if formatted == raw:
            continue
        changed.append(path)
        if check:
            typer.echo(str(path))
            continue
        try:
            path.write_text(formatted, encoding="utf-8", newline="")
        except OSError as exc:
            typer.echo(f"iatc: error: cannot write {path}: {exc.strerror or exc}", err=True)
            unreadable += 1
    verb = "would reformat" if check else "reformatted"
    summary = f"{verb} {len(changed)} of {len(files)} file{'s' * (len(files) != 1)}"
    if broken:
        summary += f"; {broken} with syntax errors left unchanged"
    typer.echo(summary, err=True)
    if unreadable:
        raise typer.Exit(exitcodes.USAGE)
    if broken or (check and changed):
        raise typer.Exit(exitcodes.DIAGNOSTICS)
    raise typer.Exit(exitcodes.OK)
