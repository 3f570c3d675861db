"""``iatc augment``: compile a plan, run it through the engine, write the run directory.

Modes follow from the plan: one temperature is a single run; several temperatures
(MIns+_MT) are already separate requests in the compiled plan, and their accepted rewrites
are merged into one ``instructions.jsonl`` (deduplication is the dataset stage's job);
``iterations N`` (MIns+_Iter) adds N rounds that rephrase the previous round's accepted
rewrites, derived by the compiler.  A plan's ``judge`` (:mod:`.judge`) looks at every round's
accepted rewrites before the next round is derived: only the ones it keeps reach
``instructions.jsonl`` (and the next round); every verdict is in ``judged.jsonl``.

Resume: every completed call is in ``RUN_DIR/cache.sqlite``; re-running the same command
repeats none of them and, because every file is rebuilt from requests and cached replies in
request order, writes the same ``instructions.jsonl``, ``rejected.jsonl`` and ``failed.jsonl``
as an uninterrupted run.  One process writes a run directory at a time (``RUN_DIR/lock``).
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

from ..contract.compiled import Request
from ..contract.run import (
    RUN_FORMAT,
    EstimateFacts,
    InvocationFacts,
    OutputCounts,
    RoundCounts,
    RunDir,
    Selection,
    Summary,
    write_rows,
    write_summary,
)
from ..errors import BudgetExceeded, OutputError, UsageError
from ..lang.model import Catalog
from . import compiler_api, llm
from .cache import CachedCall, CallCache, call_key
from .engine import Engine, EngineConfig, MissingCall, attempt_seed
from .estimate import Estimate, estimate_requests
from .judge import JudgeRunner
from .lock import RunLock
from .outcome import Outcome
from .outputs import (
    failed_rows,
    generated_rows,
    original_rows,
    rejected_rows,
    tally,
)
from .parts import WorkerFacts, run_workers
from .progress import Progress
from .rounds import AugmentOptions as AugmentOptions
from .rounds import Prepared as Prepared
from .rounds import prepare as prepare
from .rounds import run_rounds
from .secrets import redact_url


@dataclass(frozen=True)
class AugmentResult:
    """The finished run: where it is, what its ``summary.json`` says, every outcome."""

    run_dir: Path
    summary: Summary
    outcomes: tuple[Outcome, ...]
    #: With a cache-only engine: the calls the run needed and did not have, in the order met
    #: (a merge of incomplete shards; the next round of a batch).
    missing: tuple[MissingCall, ...] = ()
    #: With a cache-only engine: judge calls it needed and did not have.
    missing_judge: int = 0
    #: Those judge calls (key, call as it would be sent), in the order met: a batch's lines.
    missing_judge_calls: tuple[tuple[str, llm.LLMCall], ...] = ()


def check_output_dir(path: Path, *, force: bool = False) -> RunDir:
    """The run directory at ``path``, refusing a file or a folder of someone else's files."""
    run = RunDir(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file; -o needs a folder for the run directory")
    if path.is_dir() and not force and not run.is_run() and any(path.iterdir()):
        raise OutputError(
            f"{path} is a non-empty folder that is not an iatc run directory; choose a new "
            "folder, or pass --force to write into it anyway"
        )
    return run


def first_call_key(request: Request, config: EngineConfig) -> str:
    """The cache key of a request's first attempt (to tell what a resume still has to send)."""
    messages = tuple({"role": m.role, "content": m.content} for m in request.messages)
    return call_key(
        request=request.id,
        model=config.model or request.model,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        seed=attempt_seed(request.seed, 1),
        attempt=1,
        messages=messages,
    )


def preflight(
    prepared: Prepared, options: AugmentOptions, cache: CallCache, engine: Engine | None = None
) -> Estimate:
    """Estimate what is left to send; refuse to start when it is above the budget.

    With the run's `engine`, first calls are looked up under the keys it will use (a
    constrained call has its own key)."""
    key = engine.first_key if engine is not None else lambda r: first_call_key(r, options.engine)
    todo = [r for r in prepared.requests if not cache.contains(key(r))]
    est = estimate_requests(todo, prepared.model, options.engine.router)
    budget = options.engine.budget_usd
    if budget is not None and est.cost_usd > budget:
        raise BudgetExceeded(
            f"estimated cost ${est.cost_usd:.4f} for {len(todo)} requests "
            f"({est.prompt_tokens} prompt + {est.completion_tokens} completion tokens, "
            f"one attempt each) is above --budget ${budget:g}; nothing was sent. "
            "Raise --budget, or narrow the run with --tasks/--limit."
        )
    return est


async def augment_async(
    catalog: Catalog,
    run_dir: Path,
    options: AugmentOptions,
    progress: Progress | None = None,
    sources: Mapping[str, str] | None = None,
    *,
    supplied: Mapping[str, CachedCall] | None = None,
    judge_supplied: Mapping[str, CachedCall] | None = None,
) -> AugmentResult:
    """Compile, pre-flight, run every round, and write the run directory (in this loop).

    ``supplied``/``judge_supplied``: replies obtained elsewhere (a batch API's results), by
    cache key, for generation and judge calls (`Engine.supplied`, `JudgeRunner.supplied`).
    """
    started = time.monotonic()
    if options.workers < (0 if options.executor == "ray" else 1):
        raise UsageError("--workers must be at least 1")
    run = check_output_dir(run_dir, force=options.force)
    prepared = prepare(catalog, options, sources)
    shown = progress or Progress()
    with RunLock(run.lock):
        prepared.compiled.write(run.compiled)
        with CallCache(run.cache, fresh=options.fresh) as cache:
            if cache.set_aside is not None:
                print(
                    f"iatc: warning: {run.cache} was damaged: set aside as "
                    f"{cache.set_aside.name}; starting a new call cache",
                    file=sys.stderr,
                )
            validators = compiler_api.Validators(prepared.compiled)
            engine = Engine(
                options.engine,
                cache,
                validators.evaluator(),
                attempts=prepared.plan.attempts,
                progress=shown,
                constraint_of=validators.constraint_of(),
                supplied=supplied or {},
            )
            estimate = preflight(prepared, options, cache, engine)
            workers: WorkerFacts | None = None
            if (options.workers > 1 or options.executor == "ray") and not options.engine.cache_only:
                # The workers make every call into the run's cache (Ray tasks: into their
                # own, absorbed here); this process then replays the run from it (sending
                # nothing), which writes the same files as one process would.
                notify = None if type(shown) is Progress else _say
                if options.executor == "ray":
                    from .ray_executor import run_on_ray

                    workers = await run_on_ray(run, options, cache, notify)
                else:
                    workers = await run_workers(run, options, notify)
                cache.fresh = False  # the workers' calls are this run's, fresh or not
                engine.config = replace(options.engine, cache_only=True)
            judge = None
            if prepared.judge is not None and prepared.judge_model is not None:
                judge = JudgeRunner(
                    prepared.judge,
                    prepared.judge_model,
                    cache,
                    engine,
                    notify=None if type(shown) is Progress else _say,
                    supplied=judge_supplied or {},
                )
            try:
                outcomes = await run_rounds(prepared, engine, validators, run, judge)
            finally:
                shown.stop()
            summary = _write_outputs(
                prepared,
                options,
                run,
                outcomes,
                engine,
                estimate,
                time.monotonic() - started,
                judge,
                workers,
            )
    return AugmentResult(
        run_dir,
        summary,
        tuple(outcomes),
        tuple(engine.missing),
        len(judge.missing) if judge is not None else 0,
        tuple(judge.missing_calls()) if judge is not None else (),
    )


def _say(text: str) -> None:
    print(f"iatc: {text}", file=sys.stderr, flush=True)


def _versions() -> dict[str, str]:
    from .._version import __version__

    try:
        litellm_version = metadata.version("litellm")
    except metadata.PackageNotFoundError:
        litellm_version = "not installed"
    return {"iatc": __version__, "litellm": litellm_version, "python": platform.python_version()}


def _write_outputs(
    prepared: Prepared,
    options: AugmentOptions,
    run: RunDir,
    outcomes: Sequence[Outcome],
    engine: Engine,
    estimate: Estimate,
    wall: float,
    judge: JudgeRunner | None = None,
    workers: WorkerFacts | None = None,
) -> Summary:
    augmented = {r.task for r in prepared.requests}
    originals = original_rows(prepared.catalog, augmented)
    generated = generated_rows(outcomes, compiler_api.rewrite_id)
    n_judged = 0
    if judge is not None:
        kept = judge.kept
        generated = [g for g in generated if g.id in kept]
        n_judged = write_rows(run.judged, judge.rows)
    else:
        run.judged.unlink(missing_ok=True)  # left by an earlier run of this folder with a judge
    n_instr = write_rows(run.instructions, [*originals, *generated])
    n_rej = write_rows(run.rejected, rejected_rows(outcomes))
    n_fail = write_rows(run.failed, failed_rows(outcomes))
    totals = tally(outcomes)
    plan = prepared.plan
    modes = ["single"] if len(plan.temperatures) == 1 else ["multi-temperature"]
    if plan.iterations:
        modes.append("iterative")
    counters = engine.progress.counters
    api_base = options.engine.api_base
    summary = Summary(
        format=RUN_FORMAT,
        plan=plan.name,
        model=prepared.model,
        api_base=redact_url(api_base) if api_base else None,
        mode="+".join(modes),
        temperatures=plan.temperatures,
        attempts_per_request=plan.attempts,
        iterations=plan.iterations,
        requests_compiled=prepared.compiled_count,
        selection=Selection(
            options.tasks,
            options.limit,
            len(prepared.requests),
            str(options.shard) if options.shard else None,
        ),
        totals=totals,
        reconciliation=(
            f"{totals.accepted} accepted + {totals.rejected} rejected + "
            f"{totals.failed} failed = {totals.requests} requests"
            + ("" if totals.reconciled else "  (MISMATCH: a bug in iatc)")
        ),
        rounds=tuple(
            _round_counts(outcomes, i)
            for i in range(plan.iterations + 1)
            if any(o.request.iteration == i for o in outcomes)
        ),
        outputs=OutputCounts(n_instr, len(originals), len(generated), n_rej, n_fail, n_judged),
        skipped=compiler_api.skipped(prepared.compiled),
        run=InvocationFacts(
            estimate=EstimateFacts(
                estimate.requests,
                estimate.prompt_tokens,
                estimate.completion_tokens,
                round(estimate.cost_usd, 6),
            ),
            wall_time_s=round(wall, 3),
            calls_made=workers.calls_made if workers else counters.calls - counters.cached_calls,
            cache_hits=workers.cache_hits if workers else counters.cached_calls,
            spent_usd=round(workers.spent_usd if workers else engine.spent_usd, 6),
            stopped=(workers.stopped if workers else None) or engine.stop_reason,
            budget_usd=options.engine.budget_usd,
            concurrency=options.engine.concurrency,
            rate_limit_cuts=engine.limiter.cuts,
            fresh=options.fresh,
            judge_calls_made=(
                workers.judge_calls_made if workers else judge.calls_made if judge else 0
            ),
            judge_cache_hits=(
                workers.judge_cache_hits if workers else judge.cache_hits if judge else 0
            ),
            judge_wall_time_s=round(judge.wall_time_s, 3) if judge else 0.0,
            constrain=options.engine.constrain,
            reask=options.engine.reask,
            workers=workers.parts if workers else options.workers,
            executor=options.executor,
        ),
        versions=_versions(),
        judge=judge.summary() if judge is not None else None,
        router=options.engine.router.summary() if options.engine.router else None,
    )
    write_summary(run.summary, summary)
    return summary


def _round_counts(outcomes: Sequence[Outcome], iteration: int) -> RoundCounts:
    mine = [o for o in outcomes if o.request.iteration == iteration]
    return RoundCounts(
        iteration,
        len(mine),
        sum(1 for o in mine if o.status == "accepted"),
        sum(1 for o in mine if o.status == "rejected"),
        sum(1 for o in mine if o.status == "failed"),
    )
