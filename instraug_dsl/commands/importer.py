"""Import commands: ``iatc import jsonl|flan|promptsource|natural-instructions ... -o DIR``.

``import`` is a Python keyword, so the group is registered by name and the
functions are called ``import_*``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import exitcodes
from .app import app, fail, guard, warn

if TYPE_CHECKING:
    from ..importers.emit import CollectionResult

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
    for note in result.notes:
        warn(note)
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
    _outcome(out, check, counts, result.written, len(result.unchanged), len(result.warnings))


def _outcome(
    out: Path, check: bool, counts: str, written: list[str], unchanged: int, warnings: int
) -> None:
    """The last line of an import: what was (or, with ``--check``, would be) written, and
    with ``--check`` the exit (1 when a file is out of date)."""
    if check:
        for name in written:
            typer.echo(f"would change: {out / name}", err=True)
        state = f"{len(written)} file(s) out of date" if written else "up to date"
        typer.echo(f"{out}: {state}; {counts}")
        raise typer.Exit(exitcodes.DIAGNOSTICS if written else exitcodes.OK)
    warned = f"; {warnings} warning(s) from `iatc check`" if warnings else ""
    typer.echo(f"wrote {len(written)} file(s), {unchanged} unchanged, in {out}: {counts}{warned}")


# --------------------------------------------------------------- collections

_SHOWN = 20

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Directory for the `.iat` files.")]
CheckOption = Annotated[
    bool, typer.Option("--check", help="Write nothing; exit 1 if any file would change.")
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Overwrite files that an import did not generate.")
]


def _collection_summary(result: CollectionResult, out: Path, check: bool) -> None:
    """The summary of a FLAN/promptsource/Natural Instructions import, and its exit."""
    from ..importers.emit import REPORT_FILE

    for name in result.stale:
        warn(f"{out / name} was generated earlier but not now (left in place)")
    skipped = result.report.ordered()
    for item in skipped[:_SHOWN]:
        warn(f"not imported: {item.line()}")
    if len(skipped) > _SHOWN:
        warn(f"... and {len(skipped) - _SHOWN} more not imported (see {out / REPORT_FILE})")
    renamed = f"; {len(result.renamed)} task name(s) normalized" if result.renamed else ""
    left_out = f"{len(skipped)} not imported" if skipped else "nothing left out"
    counts = (
        f"{len(result.tasks)} tasks, {result.instructions} instructions; "
        f"{left_out} (report: {out / REPORT_FILE}){renamed}"
    )
    _outcome(out, check, counts, result.written, len(result.unchanged), len(result.warnings))


def _run_collection(run: Callable[[], CollectionResult], out: Path, check: bool) -> None:
    from ..errors import DataError

    with guard():
        try:
            result = run()
        except DataError as exc:  # bad input is the user's data, as for `import jsonl`
            fail(str(exc), exitcodes.DIAGNOSTICS)
    _collection_summary(result, out, check)


@import_app.command("flan")
def import_flan_cmd(
    file: Annotated[Path, typer.Argument(help="FLAN's templates.py (read, never run).")],
    out: OutOption,
    variable: Annotated[
        str, typer.Option("--variable", help="The module-level dict of templates.")
    ] = "PATTERNS",
    options: Annotated[
        str,
        typer.Option(
            "--options",
            help="FLAN's options block: `dash` (OPTIONS:\\n- a\\n- b, FLAN's default) or "
            "`letters` (OPTIONS:\\n(A) a\\n(B) b, answer `(A)`).",
        ),
    ] = "dash",
    check: CheckOption = False,
    force: ForceOption = False,
) -> None:
    """Write one `.iat` file per FLAN task of FILE into OUT, with OUT/import-report.json."""
    from ..importers.flan import import_flan

    if not file.is_file():
        fail(f"no such file: {file}")
    _run_collection(
        lambda: import_flan(
            file, out, variable=variable, options=options, write=not check, force=force
        ),
        out,
        check,
    )


@import_app.command("promptsource")
def import_promptsource_cmd(
    path: Annotated[
        Path,
        typer.Argument(help="promptsource's templates/ folder (or one templates.yaml)."),
    ],
    out: OutOption,
    check: CheckOption = False,
    force: ForceOption = False,
) -> None:
    """Write one `.iat` file per promptsource dataset (subset) into OUT, with
    OUT/import-report.json listing every template that could not be translated."""
    from ..importers.promptsource import import_promptsource

    if not path.exists():
        fail(f"no such file or folder: {path}")
    _run_collection(
        lambda: import_promptsource(path, out, write=not check, force=force), out, check
    )


@import_app.command("natural-instructions")
def import_natural_instructions_cmd(
    path: Annotated[
        Path, typer.Argument(help="A folder of Natural Instructions task*.json files (or one).")
    ],
    out: OutOption,
    instances: Annotated[
        Path | None,
        typer.Option(
            "--instances",
            help="Also write the tasks' instances here as JSON Lines records for "
            "`iatc materialize` (task_name, unique_id, input, output).",
        ),
    ] = None,
    check: CheckOption = False,
    force: ForceOption = False,
) -> None:
    """Write one `.iat` file per Natural Instructions task into OUT (the definition is the
    instruction; target `output[0]`)."""
    from ..importers.natural_instructions import import_natural_instructions

    if not path.exists():
        fail(f"no such file or folder: {path}")
    _run_collection(
        lambda: import_natural_instructions(
            path, out, instances=instances, write=not check, force=force
        ),
        out,
        check,
    )
