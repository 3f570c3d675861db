"""The parts of a split run: ``--workers N`` processes on this machine, and what a Ray task
runs (:mod:`.ray_executor`).  A part sends the requests of its share (a hash of the request
id), every round and the judge, into a call cache, and writes nothing else; the caller then
replays the whole run from the cache (:mod:`.augment`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..contract.run import RunDir
from ..lang.model import Catalog
from . import compiler_api
from .cache import CallCache
from .engine import Engine
from .judge import JudgeRunner
from .rounds import AugmentOptions, prepare, run_rounds
from .shards import Shard


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
    # run_rounds writes a derived round's requests only with record_rounds, so no run
    # directory is needed here.
    asyncio.run(run_rounds(prepared, engine, validators, None, judge, record_rounds=False))
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
