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

import difflib
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Literal

from ..compile import Compiled
from ..compile.types import Verdict
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
from ..lang.check import NO_JUDGE
from ..lang.lookup import choose_plan
from ..lang.model import Catalog, JudgeSpec, PlanSpec
from . import compiler_api, llm
from .cache import CachedCall, CallCache, call_key
from .engine import Engine, EngineConfig, MissingCall, attempt_seed
from .estimate import Estimate, estimate_requests
from .judge import JudgeRunner, candidates, kept_only
from .lock import RunLock
from .outcome import AttemptRecord, Outcome
from .outputs import (
    failed_rows,
    generated_id,
    generated_rows,
    original_rows,
    rejected_rows,
    tally,
)
from .progress import Progress
from .secrets import redact_url
from .shards import Shard


@dataclass(frozen=True, slots=True)
class AugmentOptions:
    """Everything ``iatc augment`` can be told besides the sources and the run directory.

    ``force`` allows writing into a non-empty folder that is not a run directory.
    """

    plan: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    fresh: bool = False
    tasks: tuple[str, ...] | None = None
    limit: int | None = None
    force: bool = False
    #: ``--judge``: a declared judge to use instead of the plan's, or ``none`` for no judge.
    judge: str | None = None
    #: ``--shard I/N``: run only the requests of this shard (`shards.Shard`).
    shard: Shard | None = None
    #: ``--workers N``: engine processes sharing the run's cache (see `run_workers`); with
    #: ``executor="ray"`` the parts of the run as Ray tasks (0: one per CPU of the cluster).
    workers: int = 1
    #: ``--executor``: ``local`` (``workers`` processes on this machine) or ``ray`` (Ray
    #: tasks on the cluster at ``ray_address``, or on a local Ray instance; `ray_executor`).
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None


@dataclass
class Prepared:
    """A compiled plan narrowed to the requests this run will send."""

    catalog: Catalog
    plan: PlanSpec
    compiled: Compiled
    requests: list[Request]
    model: str
    #: The judge this run uses (the plan's, or the ``--judge`` override) and its model.
    judge: JudgeSpec | None = None
    judge_model: str | None = None

    @property
    def compiled_count(self) -> int:
        """Requests the compiler produced before ``--tasks``/``--limit``."""
        return len(self.compiled.requests)


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


def prepare(
    catalog: Catalog, options: AugmentOptions, sources: Mapping[str, str] | None = None
) -> Prepared:
    """Compile the plan and apply ``--tasks`` and ``--limit`` (in request order).

    ``sources`` ({path: text} of the loaded files) lets the manifest record their hashes.
    """
    plan = choose_plan(catalog, options.plan)
    compiled = compiler_api.compile_for_run(catalog, plan.name, sources)
    requests = list(compiled.requests)
    if options.tasks:
        present = {r.task for r in requests}
        unknown = [t for t in options.tasks if t not in present]
        if unknown:
            hints = []
            for t in unknown:
                close = difflib.get_close_matches(t, sorted(present | set(catalog.tasks)), n=1)
                hints.append(f"`{t}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
            raise UsageError(
                f"--tasks names tasks plan `{plan.name}` does not augment: " + ", ".join(hints)
            )
        wanted = set(options.tasks)
        requests = [r for r in requests if r.task in wanted]
    if options.limit is not None:
        if options.limit < 1:
            raise UsageError("--limit must be at least 1")
        requests = requests[: options.limit]
    if options.shard is not None:
        shard = options.shard
        requests = [r for r in requests if shard.holds(r.id)]
    model = options.engine.model or plan.model
    judge = _choose_judge(catalog, plan, options.judge)
    judge_model = (judge.model or model) if judge is not None else None
    return Prepared(catalog, plan, compiled, requests, model, judge, judge_model)


def _choose_judge(catalog: Catalog, plan: PlanSpec, override: str | None) -> JudgeSpec | None:
    """The plan's judge, or the one ``--judge`` names (``none``: no judge)."""
    if override is None:
        return plan.judge
    if override == NO_JUDGE:
        return None
    found = catalog.judges.get(override)
    if found is None:
        close = difflib.get_close_matches(override, sorted(catalog.judges), n=1)
        known = ", ".join(f"`{n}`" for n in sorted(catalog.judges)) or "none is declared"
        hint = f"did you mean `{close[0]}`?" if close else f"judges: {known}"
        raise UsageError(f"--judge names an unknown judge `{override}` ({hint})")
    return found


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
                engine = Engine(
                    replace(options.engine, cache_only=True),
                    cache,
                    validators.evaluator(),
                    attempts=prepared.plan.attempts,
                    progress=shown,
                    constraint_of=validators.constraint_of(),
                )
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
                outcomes = await _rounds(prepared, engine, validators, run, judge)
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


async def _rounds(
    prepared: Prepared,
    engine: Engine,
    validators: compiler_api.Validators,
    run: RunDir | None,
    judge: JudgeRunner | None = None,
    *,
    record_rounds: bool = True,
) -> list[Outcome]:
    """Round 0 is the compiled requests; each further round rephrases the last one's output
    (with a judge: the part of it the judge kept).  ``record_rounds`` writes each derived
    round's requests next to the compiled plan (a worker, which sees part of a round, does
    not)."""
    from ..contract.compiled import write_round

    everything: list[Outcome] = []
    requests = prepared.requests
    for iteration in range(prepared.plan.iterations + 1):
        if iteration > 0:
            if engine.stop_reason is not None:
                break
            previous = [o for o in everything if o.request.iteration == iteration - 1]
            if judge is not None:
                previous = kept_only(previous, judge.kept, _row_id)
            requests = compiler_api.derive(prepared.compiled, validators, previous, iteration)
            if record_rounds and run is not None:
                write_round(run.compiled, iteration, requests)
            if not requests:
                break
        engine.progress.start(len(requests), f"round {iteration}")
        done = await engine.run(requests)
        everything.extend(done)
        if judge is not None:
            await judge.run(candidates(generated_rows(done), prepared.catalog))
    return everything


def _say(text: str) -> None:
    print(f"iatc: {text}", file=sys.stderr, flush=True)


def _row_id(outcome: Outcome, attempt: AttemptRecord, index: int, verdict: Verdict) -> str:
    """The ``instructions.jsonl`` id of an accepted rewrite (as `generated_rows` makes it)."""
    req = outcome.request
    template = req.lead + (verdict.restored or "") + req.trail
    return generated_id(req.id, attempt.number, index, template)


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


# ----------------------------------------------------------------- workers


@dataclass(frozen=True, slots=True)
class WorkerFacts:
    """What the worker processes of a ``--workers`` run did, summed."""

    calls_made: int = 0
    cache_hits: int = 0
    spent_usd: float = 0.0
    judge_calls_made: int = 0
    judge_cache_hits: int = 0
    stopped: str | None = None
    #: How many parts (worker processes, Ray tasks) these facts are of.
    parts: int = 1

    def __add__(self, other: WorkerFacts) -> WorkerFacts:
        return WorkerFacts(
            self.calls_made + other.calls_made,
            self.cache_hits + other.cache_hits,
            self.spent_usd + other.spent_usd,
            self.judge_calls_made + other.judge_calls_made,
            self.judge_cache_hits + other.judge_cache_hits,
            self.stopped or other.stopped,
            self.parts + other.parts,
        )


async def run_workers(
    run: RunDir, options: AugmentOptions, notify: Callable[[str], None] | None
) -> WorkerFacts:
    """Run ``options.workers`` engine processes, worker ``i`` sending the requests of shard
    ``i/N`` (of this run's requests: a sharded run's workers split its shard again) into the
    run's one call cache; each worker derives its own later rounds and judges its own
    rewrites.  A budget is split evenly.  The workers write nothing but cache rows; the
    caller replays the run from the cache."""
    import asyncio
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    count = options.workers
    each = part_options(options, count)
    if notify is not None:
        notify(f"{count} worker processes, one cache: {run.cache}")
    loop = asyncio.get_running_loop()
    # spawn: a forked child would inherit this event loop and litellm's clients.
    with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn")) as pool:

        async def one(part: Shard) -> WorkerFacts:
            facts = await loop.run_in_executor(pool, _worker_main, str(run.root), each, part)
            report_part(notify, "worker", part, facts)
            return facts

        done = await asyncio.gather(
            *(one(Shard(i, count)) for i in range(1, count + 1)), return_exceptions=True
        )
    return sum_facts(done)


def part_options(options: AugmentOptions, count: int) -> AugmentOptions:
    """The options of one of ``count`` parts of a run: one process each, and an even share
    of the budget."""
    budget = options.engine.budget_usd
    return replace(
        options,
        workers=1,
        executor="local",
        engine=replace(options.engine, budget_usd=None if budget is None else budget / count),
    )


def report_part(
    notify: Callable[[str], None] | None, what: str, part: Shard, facts: WorkerFacts
) -> None:
    """Say what one part of a run did."""
    if notify is not None:
        notify(
            f"{what} {part}: {facts.calls_made} calls made, {facts.cache_hits} from "
            "the cache" + (f" (stopped: {facts.stopped})" if facts.stopped else "")
        )


def sum_facts(done: Sequence[WorkerFacts | BaseException]) -> WorkerFacts:
    """The parts' facts summed; the first part's failure is raised (the others finished)."""
    total = WorkerFacts(parts=0)
    for facts in done:
        if isinstance(facts, BaseException):
            raise facts
        total = total + facts
    return total


def _worker_main(root: str, options: AugmentOptions, part: Shard) -> WorkerFacts:
    """One worker process: its part of the requests, every round, into the shared cache."""
    from ..contract.compiled import read_snapshot

    run = RunDir(Path(root))
    catalog = read_snapshot(run.compiled).catalog()
    with CallCache(run.cache, fresh=options.fresh) as cache:
        return run_part(catalog, options, part, cache)


def run_part(
    catalog: Catalog, options: AugmentOptions, part: Shard, cache: CallCache
) -> WorkerFacts:
    """One part of a run (a worker process, a Ray task): the requests of ``part``, every
    round and the judge, with its own event loop; the calls go into ``cache``, nothing else
    is written."""
    import asyncio

    prepared = prepare(catalog, options)
    prepared.requests = [r for r in prepared.requests if _worker_holds(part, r.id)]
    validators = compiler_api.Validators(prepared.compiled)
    engine = Engine(
        options.engine,
        cache,
        validators.evaluator(),
        attempts=prepared.plan.attempts,
        constraint_of=validators.constraint_of(),
    )
    judge = None
    if prepared.judge is not None and prepared.judge_model is not None:
        judge = JudgeRunner(prepared.judge, prepared.judge_model, cache, engine)
    # _rounds writes a derived round's requests only with record_rounds, so no run
    # directory is needed here.
    asyncio.run(_rounds(prepared, engine, validators, None, judge, record_rounds=False))
    counters = engine.progress.counters
    return WorkerFacts(
        counters.calls - counters.cached_calls,
        counters.cached_calls,
        engine.spent_usd,
        judge.calls_made if judge else 0,
        judge.cache_hits if judge else 0,
        engine.stop_reason,
    )


def _worker_holds(part: Shard, request_id: str) -> bool:
    """Workers split by their own hash, so that the workers of a shard split it evenly."""
    from .shards import shard_of

    return shard_of("worker:" + request_id, part.count) == part.index
