"""Dataset commands: ``iatc materialize`` and ``iatc stats``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import exitcodes
from .app import app, fail

if TYPE_CHECKING:
    from ..dataset.run import Run

RunArg = Annotated[Path, typer.Argument(help="The run directory written by `iatc augment`.")]
IatOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--iat", help="Task declarations to use instead of the run's compiled sources (repeatable)."
    ),
]


def _load(run_dir: Path, iat: list[Path] | None) -> Run:
    from ..dataset.run import load_run
    from ..errors import DataError, IatCheckError

    try:
        run = load_run(run_dir, iat or None)
    except IatCheckError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(exitcodes.DIAGNOSTICS) from None
    except (DataError, FileNotFoundError) as exc:
        fail(str(exc))
    for warning in run.warnings:
        typer.echo(f"iatc: warning: {warning}", err=True)
    return run


@app.command("materialize")
def materialize_cmd(
    run_dir: RunArg,
    instances: Annotated[Path, typer.Option("--instances", help="Instance records (JSONL).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output directory.")],
    format: Annotated[str, typer.Option("--format", help="`jsonl` or `parquet`.")] = "jsonl",
    raw_share: Annotated[float, typer.Option(help="Probability of an original.")] = 0.5,
    uniform: Annotated[bool, typer.Option("--uniform", help="Uniform over all.")] = False,
    seed: Annotated[int, typer.Option(help="Equal seeds give identical bytes.")] = 0,
    per_task: Annotated[
        int | None, typer.Option(help="Keep the first N rendered instances of each task.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad record.")] = False,
    shuffle: Annotated[
        bool, typer.Option("--shuffle/--no-shuffle", help="Shuffle options per instance.")
    ] = True,
    iat: IatOpt = None,
) -> None:
    """Sample and render MIns+ rows from a run and an instance file.

    Writes OUT/train.jsonl (or .parquet), OUT/errors.jsonl, OUT/dropped.jsonl and
    OUT/manifest.json.  Records that cannot be rendered are logged with their id and field
    (exit 0); with --strict the first one stops the run (exit 1).
    """
    from ..dataset.materialize import MaterializeOptions, materialize
    from ..errors import DataError, ProviderError

    if not instances.is_file():
        fail(f"{instances}: no such instance file")
    run = _load(run_dir, iat)
    options = MaterializeOptions(
        raw_share=raw_share,
        mode="uniform" if uniform else "mixed",
        seed=seed,
        per_task=per_task,
        strict=strict,
        format=format,
        shuffle_options=shuffle,
    )
    try:
        options.validate()
        manifest = materialize(run, instances, out, options)
    except ValueError as exc:
        fail(str(exc))
    except ProviderError as exc:
        fail(str(exc), exitcodes.RUNTIME)
    except DataError as exc:
        fail(str(exc), exitcodes.DIAGNOSTICS)
    counts = manifest["counts"]
    typer.echo(
        f"wrote {counts['written']} rows to {out / manifest['outputs']['data']} "
        f"({counts['original']} original, {counts['generated']} generated instructions); "
        f"{counts['errors']} errors, {counts['held_out']} held-out, "
        f"{counts['unmatched']} unmatched, "
        f"{counts['over_budget']} over budget"
    )
    for warning in manifest["warnings"][len(run.warnings) :]:
        typer.echo(f"iatc: warning: {warning}", err=True)
    if counts["errors"]:
        typer.echo(
            f"iatc: {counts['errors']} records could not be rendered; see {out / 'errors.jsonl'}",
            err=True,
        )


@app.command("stats")
def stats_cmd(
    run_dir: RunArg,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report with plots.")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="`text` or `json`.")] = "text",
    iat: IatOpt = None,
) -> None:
    """Per-task statistics of a run after the corpus filters."""
    from ..dataset.report import html_report, text_table
    from ..dataset.stats import run_stats

    if format not in ("text", "json"):
        fail("--format must be `text` or `json`")
    run = _load(run_dir, iat)
    stats = run_stats(run)
    if format == "json":
        typer.echo(json.dumps(stats, indent=2, ensure_ascii=False))
    else:
        typer.echo(text_table(stats))
    if html is not None:
        html.write_text(html_report(stats), encoding="utf-8")
        typer.echo(f"wrote {html}", err=True)
