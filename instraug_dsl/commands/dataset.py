"""Dataset commands: ``iatc materialize`` and ``iatc stats`` (thin over the API)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .app import app, fail, guard, warn

if TYPE_CHECKING:
    from ..contract.dataset import MaterializeManifest

RunArg = Annotated[Path, typer.Argument(help="The run directory written by `iatc augment`.")]
IatOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--iat",
        help="Task declarations to use instead of those recorded in the run (repeatable).",
    ),
]


def report_dataset(manifest: MaterializeManifest, out: Path, *, skip_warnings: int) -> None:
    """The one-line summary of a written dataset, its warnings, and where errors went."""
    counts = manifest.counts
    test = (
        f"; {counts.test_written} held-out rows in {out / manifest.outputs.test}"
        if manifest.outputs.test
        else ""
    )
    typer.echo(
        f"wrote {counts.written} rows to {out / manifest.outputs.data} "
        f"({counts.original} original, {counts.generated} generated instructions){test}; "
        f"{counts.errors} errors, {counts.unmatched} unmatched, {counts.over_budget} over budget"
    )
    if counts.dropped_instructions:
        dropped = ", ".join(f"{n} {k}" for k, n in sorted(counts.dropped_instructions.items()))
        typer.echo(f"rewrites removed by the corpus filters: {dropped}")
    for message in manifest.warnings[skip_warnings:]:
        warn(message)
    if counts.errors:
        typer.echo(
            f"iatc: {counts.errors} records could not be rendered; see {out / 'errors.jsonl'}",
            err=True,
        )


@app.command("materialize")
def materialize_cmd(
    run_dir: RunArg,
    instances: Annotated[
        Path,
        typer.Option(
            "--instances",
            help="Instance records: JSONL (.jsonl, .jsonl.gz, .jsonl.zst), Parquet (a file "
            "or a folder of shards), Arrow, or a Dataset.save_to_disk folder.",
        ),
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output directory.")],
    format: Annotated[
        str,
        typer.Option(
            "--format", help="`jsonl`, `parquet`, `messages` (TRL chat), `llava` or `ofa-tsv`."
        ),
    ] = "jsonl",
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
    test_instructions: Annotated[
        str,
        typer.Option(
            "--test-instructions",
            help="Held-out tasks: `all` (a row per original instruction), `one`, or `none`.",
        ),
    ] = "all",
    carry: Annotated[
        list[str] | None,
        typer.Option(
            "--carry",
            help="Instance fields copied into every row, comma-separated, each "
            "[NAME=]PATH[:TYPE] (TYPE: string, int64, float64, bool, json). "
            "Default: task_name,image_path; '' carries none.",
        ),
    ] = None,
    image_field: Annotated[
        str,
        typer.Option(
            "--image-field",
            help="Record path of a row's image for messages/llava/ofa-tsv ('' for none).",
        ),
    ] = "image_path",
    iat: IatOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty folder that is not iatc's.")
    ] = False,
) -> None:
    """Sample and render MIns+ rows from a run and an instance file.

    Writes OUT/train.jsonl (or .parquet, .messages.jsonl, .llava.json, .ofa.tsv),
    OUT/test.* (held-out tasks, original instructions), OUT/README.md (dataset card),
    OUT/errors.jsonl, OUT/dropped.jsonl and OUT/manifest.json.  Records that cannot be
    rendered are logged with their line, id and field (exit 0); with --strict the first one
    stops the run (exit 1).
    """
    from .. import api
    from ..contract.dataset import MaterializeOptions
    from ..dataset.carry import DEFAULT_CARRY, split_specs

    with guard():
        # `format` and `test_instructions` are plain strings here; the dataset stage checks
        # them against their allowed values and names the flag when one is wrong.
        options = MaterializeOptions(
            raw_share=raw_share,
            mode="uniform" if uniform else "mixed",
            seed=seed,
            per_task=per_task,
            strict=strict,
            format=format,  # type: ignore[arg-type]
            shuffle_options=shuffle,
            test_instructions=test_instructions,  # type: ignore[arg-type]
            carry=DEFAULT_CARRY if carry is None else split_specs(carry),
            image_field=image_field or None,
        )
        result = api.materialize(run_dir, instances, out, options=options, iat=iat, force=force)
    report_dataset(result.manifest, out, skip_warnings=0)


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
    from .. import api
    from ..contract.codec import encode
    from ..dataset.report import html_report, text_table
    from ..fsio import dumps, write_text

    if format not in ("text", "json"):
        fail("--format must be `text` or `json`")
    if html is not None and html.is_dir():
        fail(f"--html {html} is a folder; give the .html file to write")
    with guard():
        stats = api.stats(run_dir, iat=iat)
        if format == "json":
            typer.echo(dumps(encode(stats)))
        else:
            typer.echo(text_table(stats))
        for message in stats.warnings:
            warn(message)
        if html is not None:
            write_text(html, html_report(stats))
            typer.echo(f"wrote {html}", err=True)
