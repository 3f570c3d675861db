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
        str | None,
        typer.Option(
            "--format",
            help="`jsonl` (the default), `parquet` (the only one, and the default, with "
            "--executor ray), `messages` (TRL chat), `llava` or `ofa-tsv`.",
        ),
    ] = None,
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
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="`local` (this process) or `ray` (Ray Data on --ray-address, or on a local "
            "Ray instance; Parquet shards in OUT/train/ and OUT/test/; the [ray] extra).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="The Ray cluster for --executor ray (HOST:PORT, auto, ray://HOST:10001); "
            "default: start a local Ray instance.",
        ),
    ] = None,
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
            format=(format or ("parquet" if executor == "ray" else "jsonl")),  # type: ignore[arg-type]
            shuffle_options=shuffle,
            test_instructions=test_instructions,  # type: ignore[arg-type]
            carry=DEFAULT_CARRY if carry is None else split_specs(carry),
            image_field=image_field or None,
        )
        result = api.materialize(
            run_dir,
            instances,
            out,
            options=options,
            iat=iat,
            force=force,
            executor=executor,
            ray_address=ray_address,
        )
    report_dataset(result.manifest, out, skip_warnings=0)


@app.command("stats")
def stats_cmd(
    run_dir: RunArg,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML report with plots.")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="`text` or `json`.")] = "text",
    iat: IatOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an --html file that is not iatc's report.")
    ] = False,
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
    if html is not None and html.exists() and not force and not _our_report(html):
        fail(
            f"--html {html} exists and is not a report of `iatc stats`; nothing was written: "
            "choose another file, or pass --force to replace it"
        )
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


def _our_report(path: Path) -> bool:
    """True when ``path`` is an HTML report an earlier ``iatc stats --html`` wrote."""
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and b"<title>iatc stats: " in head
