"""``iatc compile``: write requests, validators and manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import exitcodes
from .app import PathsArg, app, fail

DEFAULT_PLAN = "paper"


@app.command("compile")
def compile_cmd(
    paths: PathsArg,
    out: Annotated[Path, typer.Option("-o", "--out", help="Directory for the artifacts.")],
    plan: Annotated[
        str | None,
        typer.Option("--plan", help="Plan to compile (default: `paper`, or the only plan)."),
    ] = None,
) -> None:
    """Compile a plan into requests.jsonl, validators.json and manifest.json."""
    from ..compile import compile_plan
    from ..errors import IatCompileError
    from ..lang.frontend import check

    try:
        result = check(paths)
    except FileNotFoundError as exc:
        fail(f"no such file or directory: {exc.args[0]}")
    if not result.ok or result.catalog is None:
        typer.echo(result.render(), err=True)
        raise typer.Exit(exitcodes.DIAGNOSTICS)
    if result.diagnostics:
        typer.echo(result.render(), err=True)  # warnings only
    catalog = result.catalog
    if plan is None:
        if DEFAULT_PLAN in catalog.plans:
            plan = DEFAULT_PLAN
        elif len(catalog.plans) == 1:
            plan = next(iter(catalog.plans))
        else:
            known = ", ".join(sorted(catalog.plans)) or "none declared"
            fail(f"choose a plan with --plan (plans: {known})")
    try:
        compiled = compile_plan(
            catalog, plan, sources={p: s.text for p, s in result.sources.items()}
        )
        compiled.write(out)
    except IatCompileError as exc:
        fail(str(exc), exitcodes.DIAGNOSTICS)
    counts = compiled.manifest["counts"]
    assert isinstance(counts, dict)

    def n(key: str, word: str) -> str:
        return f"{counts[key]} {word}{'' if counts[key] == 1 else 's'}"

    typer.echo(
        f"compiled plan `{plan}`: {n('requests', 'request')} for "
        f"{n('instructions', 'instruction')} of {n('tasks', 'task')} "
        f"({n('skipped_tasks', 'task')} and {n('skipped_instructions', 'instruction')} skipped, "
        f"see manifest.json) -> {out}"
    )
