"""Runtime commands: ``iatc augment``, ``iatc bootstrap`` and ``iatc run``.

litellm and the engine are imported inside the command bodies: ``iatc check`` must not pay
for them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from . import exitcodes
from .app import PathsArg, app, fail

if TYPE_CHECKING:
    from ..lang.model import Catalog
    from ..runtime.engine import EngineConfig

T = TypeVar("T")

OutOpt = Annotated[Path, typer.Option("-o", "--out", help="Run directory to write.")]
PlanOpt = Annotated[str | None, typer.Option("--plan", help="Plan to run (default: the only one).")]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Model as provider/name, e.g. embedded/qwen-0.5b, offline/rules, "
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
TasksOpt = Annotated[str | None, typer.Option("--tasks", help="Only these tasks (a,b,c).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N requests.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn expected failures into a message and an exit code (never a traceback)."""
    from ..errors import DataError, IatCheckError, IatCompileError, IatRuntimeError

    try:
        yield
    except IatCheckError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(exitcodes.DIAGNOSTICS) from None
    except IatCompileError as exc:
        fail(str(exc), exitcodes.DIAGNOSTICS)
    except DataError as exc:
        fail(str(exc), exitcodes.USAGE)
    except IatRuntimeError as exc:
        fail(str(exc), exitcodes.RUNTIME)
    except FileNotFoundError as exc:
        fail(f"no such file or directory: {exc.filename or exc.args[0]}", exitcodes.USAGE)
    except KeyboardInterrupt:
        typer.echo(
            "iatc: interrupted; completed calls are kept in the run directory's "
            "cache.sqlite: run the same command again to resume",
            err=True,
        )
        raise typer.Exit(exitcodes.INTERRUPTED) from None


def _catalog(paths: list[Path]) -> tuple[Catalog, dict[str, str]]:
    """The checked catalog and the loaded files' texts (warnings are printed)."""
    from ..lang.frontend import check

    result = check(paths)
    if result.diagnostics:
        typer.echo(result.render(), err=True)
    return result.raise_for_errors(), {p: src.text for p, src in result.sources.items()}


def _engine_config(
    model: str | None,
    plan_model: str,
    api_base: str | None,
    api_key: str | None,
    concurrency: int | None,
    timeout: float,
    budget: float | None,
) -> EngineConfig:
    from ..runtime.engine import EngineConfig, default_concurrency

    effective = model or plan_model
    return EngineConfig(
        model=model,
        api_base=api_base,
        api_key=api_key,
        concurrency=concurrency or default_concurrency(effective),
        timeout=timeout,
        budget_usd=budget,
    )


def _task_list(tasks: str | None) -> tuple[str, ...] | None:
    if tasks is None:
        return None
    names = tuple(t.strip() for t in tasks.split(",") if t.strip())
    if not names:
        fail("--tasks needs at least one task name")
    return names


def _guard(fn: Callable[[], T]) -> T:
    with _user_errors():
        return fn()
    raise AssertionError("unreachable")  # pragma: no cover  (_user_errors always re-raises)


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
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be sent.")] = False,
    show: Annotated[int, typer.Option("--show", min=0, help="Requests --dry-run prints.")] = 3,
    tasks: TasksOpt = None,
    limit: LimitOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Augment the instructions of a plan with a model; write RUN_DIR (resumable)."""
    if out is None and not dry_run:
        fail("-o/--out RUN_DIR is required (except with --dry-run)")
    summary = _guard(
        lambda: _augment(
            paths,
            out,
            plan,
            model,
            api_base,
            api_key,
            concurrency,
            timeout,
            fresh,
            budget,
            dry_run,
            show,
            tasks,
            limit,
            quiet,
        )
    )
    if summary is not None and summary["run"]["stopped"] == "budget":
        raise typer.Exit(exitcodes.RUNTIME)


def _augment(
    paths: list[Path],
    out: Path | None,
    plan: str | None,
    model: str | None,
    api_base: str | None,
    api_key: str | None,
    concurrency: int | None,
    timeout: float,
    fresh: bool,
    budget: float | None,
    dry_run: bool,
    show: int,
    tasks: str | None,
    limit: int | None,
    quiet: bool,
) -> dict[str, Any] | None:
    from ..runtime.augment import AugmentOptions, choose_plan, prepare, run_augment
    from ..runtime.estimate import estimate_requests
    from ..runtime.progress import make_progress
    from ..runtime.report import dry_run_listing, summary_table

    catalog, sources = _catalog(paths)
    plan_spec = choose_plan(catalog, plan)
    config = _engine_config(model, plan_spec.model, api_base, api_key, concurrency, timeout, budget)
    options = AugmentOptions(
        plan=plan_spec.name, engine=config, fresh=fresh, tasks=_task_list(tasks), limit=limit
    )
    if dry_run:
        prepared = prepare(catalog, options, sources)
        estimate = estimate_requests(prepared.requests, prepared.model)
        dry_run_listing(
            prepared.requests, prepared.model, estimate, show, prepared.compiled_count, sys.stdout
        )
        return None
    assert out is not None
    progress = make_progress(config.model or plan_spec.model, quiet=quiet)
    result = run_augment(catalog, out, options, progress, sources)
    if not quiet:
        summary_table(result.summary, sys.stdout)
    return result.summary


@app.command("bootstrap")
def bootstrap_cmd(
    paths: PathsArg,
    prompt: Annotated[str, typer.Option("--prompt", help="The `bootstrap` declaration to use.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="The .iat file to write.")],
    model: Annotated[str, typer.Option("--model", help="Model as provider/name.")] = (
        "embedded/qwen-0.5b"
    ),
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
) -> None:
    """Ask a model for rewriting strategies; write them as a `strategies` block."""

    def go() -> None:
        from ..runtime.bootstrap import bootstrap
        from ..runtime.engine import EngineConfig

        catalog, _ = _catalog(paths)
        config = EngineConfig(api_base=api_base, api_key=api_key, timeout=timeout)
        result = bootstrap(
            catalog,
            prompt,
            out,
            model=model,
            n=n,
            name=name,
            config=config,
            temperature=temperature,
            seed=seed,
            fresh=fresh,
        )
        how = "cached answer" if result.cached else f"asked {model} for {result.asked}"
        typer.echo(
            f"wrote {len(result.strategies)} strategies `{name}` to {result.path} "
            f"({how}; raw answer in {result.raw_path})"
        )
        for i, text in enumerate(result.strategies, 1):
            typer.echo(f"  s{i}: {text}")

    _guard(go)


@app.command("run")
def run_cmd(
    path: Annotated[
        Path, typer.Argument(help="A `.iat` file or directory with a `sampling` block.")
    ],
    out: OutOpt,
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
    quiet: QuietOpt = False,
) -> None:
    """Augment, then materialize MIns+ on the sampling block's instances (OUT/run, OUT/data)."""

    def go() -> None:
        from ..runtime.pipeline import run_pipeline

        run_pipeline(
            path,
            out,
            sampling=sampling,
            model=model,
            api_base=api_base,
            api_key=api_key,
            concurrency=concurrency,
            timeout=timeout,
            fresh=fresh,
            budget=budget,
            quiet=quiet,
            stream=sys.stdout,
        )

    _guard(go)
