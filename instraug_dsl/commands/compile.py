"""``iatc compile``: write requests, validators, manifest and catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import AllowOpt, PathsArg, app, guard, load_sources


def check_output_dir(out: Path) -> None:
    """Refuse a file, or a folder holding files of the artifacts' names that an earlier
    ``iatc compile`` did not write (its ``manifest.json`` carries our format)."""
    from ..contract.compiled import CATALOG, COMPILE_FORMAT, MANIFEST, REQUESTS, VALIDATORS
    from ..errors import OutputError
    from ..fsio import file_format

    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file; -o needs a folder for the artifacts")
    if not out.is_dir():
        return
    ours = (file_format(out / MANIFEST) or "").split("/", 1)[0] == COMPILE_FORMAT.split("/", 1)[0]
    clash = [n for n in (REQUESTS, VALIDATORS, MANIFEST, CATALOG) if (out / n).exists()]
    if clash and not ours:
        raise OutputError(
            f"{out} holds {', '.join(clash)} not written by `iatc compile`; nothing was "
            "written: choose another folder, or move those files away"
        )


def plural(count: int, word: str) -> str:
    """``1 request``, ``2 requests``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


@app.command("compile")
def compile_cmd(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory for the artifacts.")],
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan", help="Plan to compile (default: the `default plan`, or the only one)."
        ),
    ] = None,
    allow_imports: AllowOpt = None,
) -> None:
    """Compile a plan into requests.jsonl, validators.json, manifest.json and catalog.json."""
    from .. import api

    with guard():
        check_output_dir(out)
        result = api.compile(load_sources(paths, allow_imports), plan=plan, out=out)
    counts = result.compiled.manifest.counts
    typer.echo(
        f"compiled plan `{result.plan}`: {plural(counts.requests, 'request')} for "
        f"{plural(counts.instructions, 'instruction')} of {plural(counts.tasks, 'task')} "
        f"({plural(counts.skipped_tasks, 'task')} and "
        f"{plural(counts.skipped_instructions, 'instruction')} skipped, see manifest.json) "
        f"-> {out}"
    )
