"""Import commands: ``iatc import jsonl FILE -o DIR``.

``import`` is a Python keyword, so the group is registered by name and the
functions are called ``import_*``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import exitcodes
from .app import app, fail

import_app = typer.Typer(
    name="import",
    help="Import instruction sets from other formats into `.iat` files.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")


@import_app.command("jsonl")
def import_jsonl_cmd(
    file: Annotated[Path, typer.Argument(help="JSONL records with `task` and `template` fields.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the `.iat` files.")],
    overrides: Annotated[
        Path | None,
        typer.Option(help="JSON overrides (default: OUT/overrides.json when it exists)."),
    ] = None,
    no_overrides: Annotated[
        bool, typer.Option("--no-overrides", help="Ignore OUT/overrides.json.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if any file would change.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Overwrite `.iat` files that an import did not generate."),
    ] = False,
) -> None:
    """Write one `.iat` file per task of FILE into OUT (checked before writing)."""
    from ..errors import DataError, IatCheckError, OutputError
    from ..importers.jsonl import import_jsonl

    if not file.is_file():
        fail(f"no such file: {file}")
    if overrides is not None and not overrides.is_file():
        fail(f"no such overrides file: {overrides}")
    try:
        result = import_jsonl(
            file,
            out,
            overrides=overrides,
            default_overrides=not no_overrides,
            write=not check,
            force=force,
        )
    except OutputError as exc:
        fail(str(exc), exitcodes.exit_code(exc))
    except DataError as exc:
        fail(str(exc), exitcodes.DIAGNOSTICS)
    except IatCheckError as exc:
        typer.echo(exc.render(), err=True)
        fail(
            "the generated files do not pass `iatc check`; nothing was written",
            exitcodes.DIAGNOSTICS,
        )
    for name in result.stale:
        typer.echo(
            f"iatc: warning: {out / name} was generated earlier but not now (left in place)",
            err=True,
        )
    using = f" using {result.overrides}" if result.overrides else ""
    counts = (
        f"{result.tasks} tasks, {result.instructions} instructions "
        f"({result.test_tasks} tasks / {result.test_instructions} instructions held out){using}"
    )
    if check:
        for name in result.written:
            typer.echo(f"would change: {out / name}", err=True)
        state = f"{len(result.written)} file(s) out of date" if result.written else "up to date"
        typer.echo(f"{out}: {state}; {counts}")
        raise typer.Exit(exitcodes.DIAGNOSTICS if result.written else exitcodes.OK)
    warned = f"; {len(result.warnings)} warning(s) from `iatc check`" if result.warnings else ""
    typer.echo(
        f"wrote {len(result.written)} file(s), {len(result.unchanged)} unchanged, "
        f"in {out}: {counts}{warned}"
    )
