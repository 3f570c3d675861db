"""Runtime commands: ``iatc augment``, ``iatc bootstrap`` and ``iatc run``.

Thin over :mod:`instraug_dsl.api`; litellm and the engine are imported inside the command
bodies, so ``iatc check`` does not pay for them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import exitcodes
from .app import AllowOpt, PathsArg, app, fail, guard, load_sources

if TYPE_CHECKING:
    from ..api import Backend

PlanOpt = Annotated[
    str | None,
    typer.Option("--plan", help="Plan to run (default: the `default plan`, or the only one)."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Model as provider/name, e.g. embedded/default, embedded/qwen-1.5b, offline/rules, "
        "openai/gpt-4o-mini (default: the plan's model).",
    ),
]
ApiBaseOpt = Annotated[
    str | None,
    typer.Option("--api-base", help="Base URL of an OpenAI-compatible server (with openai/NAME)."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option("--api-key", help="API key (default: the provider's environment variable)."),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency", min=1, help="Calls in flight at most (default: 1 embedded, 16 otherwise)."
    ),
]
TimeoutOpt = Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per call.")]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Ignore cached calls (still records).")]
BudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--budget", min=0.0, help="USD: refuse above the estimate, stop cleanly when reached."
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Write into a non-empty folder that is not iatc's."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Engine processes sharing the run's cache (for remote models whose client "
        "CPU is the limit); the files written are the same as with 1. With --executor ray: "
        "the parts of the run (default: one per CPU of the cluster).",
    ),
]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        help="`local` (processes on this machine) or `ray` (Ray tasks on --ray-address, or "
        "on a local Ray instance; the [ray] extra).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="The Ray cluster for --executor ray (HOST:PORT, auto, ray://HOST:10001); "
        "default: start a local Ray instance.",
    ),
]
ConstrainOpt = Annotated[
    str,
    typer.Option(
        "--constrain",
        help="`auto`: constrain decoding to replies with valid tokens where the model supports "
        "it (embedded, vLLM, llama.cpp server); `off`: never.",
    ),
]
RouterOpt = Annotated[
    Path | None,
    typer.Option(
        "--router",
        help="An endpoint pool: litellm's model_list (JSON or YAML) with weights, retries, "
        "fallbacks and cool-down; --model names one of its model_name groups.",
    ),
]


def _backend(
    model: str | None,
    api_base: str | None,
    api_key: str | None,
    concurrency: int | None,
    timeout: float,
    budget: float | None,
    constrain: str = "auto",
    router: Path | None = None,
) -> Backend:
    from ..api import Backend

    return Backend(model, api_base, api_key, concurrency, timeout, budget, constrain, router)


def _task_list(tasks: str | None) -> tuple[str, ...] | None:
    if tasks is None:
        return None
    names = tuple(t.strip() for t in tasks.split(",") if t.strip())
    if not names:
        fail("--tasks needs at least one task name")
    return names


@app.command("augment")
def augment_cmd(
    paths: PathsArg,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Run directory to write.")] = None,
    plan: PlanOpt = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    api_key: ApiKeyOpt = None,
    concurrency: ConcurrencyOpt = None,
    timeout: TimeoutOpt = 120.0,
    fresh: FreshOpt = False,
    budget: BudgetOpt = None,
    constrain: ConstrainOpt = "auto",
    router: RouterOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be sent.")] = False,
    show: Annotated[int, typer.Option("--show", min=0, help="Requests --dry-run prints.")] = 3,
    tasks: Annotated[str | None, typer.Option("--tasks", help="Only these tasks (a,b,c).")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N requests.")
    ] = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    allow_imports: AllowOpt = None,
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            help="A declared judge to check accepted rewrites with instead of the plan's; "
            "`none` for no judge.",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Run only shard I of N (I/N, a split by request id); put the shards "
            "together with `iatc merge`.",
        ),
    ] = None,
    workers: WorkersOpt = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    from_batch: Annotated[
        list[Path] | None,
        typer.Option(
            "--from-batch",
            help="Batch API results (OpenAI batch output JSONL, repeatable): ingest them, send "
            "nothing, and write the calls still missing as RUN_DIR/batch/round-K.jsonl.",
        ),
    ] = None,
) -> None:
    """Augment the instructions of a plan with a model; write RUN_DIR (resumable)."""
    from .. import api

    if out is None and not dry_run:
        fail("-o/--out RUN_DIR is required (except with --dry-run)")
    if from_batch:
        given = {
            "--dry-run": dry_run,
            "--api-base": api_base,
            "--api-key": api_key,
            "--router": router,
            "--budget": budget is not None,
            "--fresh": fresh,
            "--shard": shard,
            "--workers": workers is not None,
            "--executor ray": executor != "local",
        }
        clash = [flag for flag, value in given.items() if value]
        if clash:
            fail(f"--from-batch sends nothing: {', '.join(clash)} do not go with it")
        assert out is not None
        _ingest(
            paths, out, from_batch, plan, model, tasks, limit, judge, force, quiet, allow_imports
        )
        return
    with guard():
        sources = load_sources(paths, allow_imports)
        names = _task_list(tasks)
        if dry_run:
            from ..runtime.report import dry_run_listing

            seen = api.preview(sources, plan=plan, model=model, tasks=names, limit=limit)
            dry_run_listing(
                list(seen.requests), seen.model, seen.estimate, show, seen.compiled, sys.stdout
            )
            return
        assert out is not None
        result = api.augment(
            sources,
            out,
            plan=plan,
            backend=_backend(
                model, api_base, api_key, concurrency, timeout, budget, constrain, router
            ),
            fresh=fresh,
            tasks=names,
            limit=limit,
            force=force,
            progress=not quiet,
            judge=judge,
            shard=shard,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
        )
    if not quiet:
        from ..runtime.report import summary_table

        summary_table(result.summary, sys.stdout)
    if result.summary.run.stopped == "budget":
        raise typer.Exit(exitcodes.RUNTIME)


def _ingest(
    paths: list[Path],
    out: Path,
    results: list[Path],
    plan: str | None,
    model: str | None,
    tasks: str | None,
    limit: int | None,
    judge: str | None,
    force: bool,
    quiet: bool,
    allow_imports: list[Path] | None,
) -> None:
    """``iatc augment --from-batch``: ingest batch results; say what waits for the next batch."""
    from .. import api
    from ..runtime.batch import SHOWN
    from .app import warn

    with guard():
        done = api.ingest_batch(
            load_sources(paths, allow_imports),
            out,
            results,
            plan=plan,
            model=model,
            tasks=_task_list(tasks),
            limit=limit,
            judge=judge,
            force=force,
            progress=not quiet,
        )
    if not quiet:
        from ..runtime.report import summary_table

        summary_table(done.augment.summary, sys.stdout)
    if done.failures:
        shown = "; ".join(f.describe() for f in done.failures[:SHOWN])
        more = f"; and {len(done.failures) - SHOWN} more" if len(done.failures) > SHOWN else ""
        warn(
            f"{len(done.failures)} results are errors; their calls go to the next batch: "
            f"{shown}{more}"
        )
    if done.unknown:
        shown = "; ".join(f"{r.where} custom_id {r.key}" for r in done.unknown[:SHOWN])
        more = f"; and {len(done.unknown) - SHOWN} more" if len(done.unknown) > SHOWN else ""
        warn(
            f"{len(done.unknown)} results are not calls of this run, ignored (results of "
            f"another run, or of a round this run has not reached yet): {shown}{more}"
        )
    if done.complete:
        typer.echo(
            f"batch: {done.ingested} results ingested; no call is missing: {out} is complete"
        )
        return
    waiting = done.waiting + done.judge_waiting
    files = ", ".join(str(p) for p in done.next_batch)
    judged = f" ({done.judge_waiting} of the judge)" if done.judge_waiting else ""
    typer.echo(
        f"batch: {done.ingested} results ingested; {waiting} calls{judged} wait for the next "
        f"batch: {files}"
    )


@app.command("bootstrap")
def bootstrap_cmd(
    paths: PathsArg,
    prompt: Annotated[str, typer.Option("--prompt", help="The `bootstrap` declaration to use.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="The .iat file to write.")],
    model: ModelOpt = None,
    n: Annotated[
        int | None,
        typer.Option("-n", min=1, help="Strategies to keep (default: the prompt's `take`)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Name of the strategies block.")] = (
        "bootstrapped"
    ),
    api_base: ApiBaseOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = 300.0,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 1,
    temperature: Annotated[float, typer.Option("--temperature")] = 0.7,
    fresh: FreshOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    allow_imports: AllowOpt = None,
) -> None:
    """Ask a model for rewriting strategies; write them as a `strategies` block."""
    from .. import api

    with guard():
        result = api.bootstrap(
            load_sources(paths, allow_imports),
            prompt,
            out,
            backend=_backend(model, api_base, api_key, None, timeout, None),
            n=n,
            name=name,
            seed=seed,
            temperature=temperature,
            fresh=fresh,
            force=force,
        )
    how = "cached answer" if result.cached else f"asked for {result.asked}"
    typer.echo(
        f"wrote {len(result.strategies)} strategies `{name}` to {result.path} "
        f"({how}; raw answer in {result.raw_path})"
    )
    for i, text in enumerate(result.strategies, 1):
        typer.echo(f"  s{i}: {text}")


@app.command("run")
def run_cmd(
    path: Annotated[
        Path, typer.Argument(help="A `.iat` file or directory with a `sampling` block.")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for run/ and data/.")],
    sampling: Annotated[
        str | None,
        typer.Option("--sampling", help="Sampling block to use (default: the only one)."),
    ] = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    api_key: ApiKeyOpt = None,
    concurrency: ConcurrencyOpt = None,
    timeout: TimeoutOpt = 120.0,
    fresh: FreshOpt = False,
    budget: BudgetOpt = None,
    constrain: ConstrainOpt = "auto",
    router: RouterOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    allow_imports: AllowOpt = None,
) -> None:
    """Augment, then materialize MIns+ on the sampling block's instances (OUT/run, OUT/data)."""
    from .. import api
    from .dataset import report_dataset

    with guard():
        result = api.run(
            load_sources([path], allow_imports),
            out,
            sampling=sampling,
            backend=_backend(
                model, api_base, api_key, concurrency, timeout, budget, constrain, router
            ),
            fresh=fresh,
            force=force,
            progress=not quiet,
        )
    if not quiet:
        from ..runtime.report import summary_table

        summary_table(result.augment.summary, sys.stdout)
    report_dataset(result.dataset.manifest, result.dataset.out, skip_warnings=0)


@app.command("merge")
def merge_cmd(
    shards: Annotated[
        list[Path], typer.Argument(help="The run directories of every shard (--shard I/N).")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="The new run directory.")],
    quiet: QuietOpt = False,
) -> None:
    """Merge the run directories of `iatc augment --shard I/N` into one (sends nothing)."""
    from .. import api

    with guard():
        result = api.merge(shards, out, progress=not quiet)
    if not quiet:
        from ..runtime.report import summary_table

        summary_table(result.summary, sys.stdout)
