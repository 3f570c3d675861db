"""``iatc compile``: write requests, validators, manifest and catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import AllowOpt, PathsArg, app, fail, guard, load_sources


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


#: ``--format``: the compiled artifacts (a folder), or a batch API's input file.
FORMATS = ("artifacts", "openai-batch")


@app.command("compile")
def compile_cmd(
    paths: PathsArg,
    out: Annotated[
        Path,
        typer.Option(
            "-o", "--out", help="Directory for the artifacts (openai-batch: the batch file)."
        ),
    ],
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan", help="Plan to compile (default: the `default plan`, or the only one)."
        ),
    ] = None,
    allow_imports: AllowOpt = None,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="`artifacts` (default): the compiled plan's files; `openai-batch`: the OpenAI "
            "Batch input file of the run's first calls (then `iatc augment --from-batch`).",
        ),
    ] = "artifacts",
    model: Annotated[
        str | None,
        typer.Option("--model", help="openai-batch: the model (default: the plan's)."),
    ] = None,
    tasks: Annotated[
        str | None, typer.Option("--tasks", help="openai-batch: only these tasks (a,b,c).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="openai-batch: only the first N requests."),
    ] = None,
) -> None:
    """Compile a plan into requests.jsonl, validators.json, manifest.json and catalog.json,
    or (--format openai-batch) into the batch file of a run's first calls."""
    from .. import api

    if format not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    if format == "openai-batch":
        _batch(paths, out, plan, allow_imports, model, tasks, limit)
        return
    given = [f for f, v in (("--model", model), ("--tasks", tasks), ("--limit", limit)) if v]
    if given:
        fail(f"{', '.join(given)} only go with --format openai-batch")
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


def _batch(
    paths: list[Path],
    out: Path,
    plan: str | None,
    allow_imports: list[Path] | None,
    model: str | None,
    tasks: str | None,
    limit: int | None,
) -> None:
    """``--format openai-batch``: write the batch file of the run's first calls."""
    from .. import api

    names = None
    if tasks is not None:
        names = tuple(t.strip() for t in tasks.split(",") if t.strip())
        if not names:
            fail("--tasks needs at least one task name")
    with guard():
        written = api.compile_batch(
            load_sources(paths, allow_imports),
            out,
            plan=plan,
            model=model,
            tasks=names,
            limit=limit,
        )
    typer.echo(
        f"wrote {plural(written.calls, 'call')} of plan `{written.plan}` for {written.model} "
        f"-> {out} (OpenAI batch input); submit it, then ingest its results with "
        f"`iatc augment ... --model {written.model} --from-batch RESULTS.jsonl -o RUN`"
    )
