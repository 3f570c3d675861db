"""A plan narrowed to the requests of one run, and its rounds through an engine.

Shared by ``iatc augment`` (:mod:`.augment`, which writes the run directory), by the parts
of a split run (:mod:`.parts`: worker processes, Ray tasks) and by replays (merge, batch).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..compile import Compiled
from ..compile.types import Verdict
from ..contract.compiled import Request
from ..contract.run import RunDir
from ..errors import UsageError
from ..lang.check import NO_JUDGE
from ..lang.lookup import choose_plan
from ..lang.model import Catalog, JudgeSpec, PlanSpec
from . import compiler_api
from .engine import Engine, EngineConfig
from .judge import JudgeRunner, candidates, kept_only
from .outcome import AttemptRecord, Outcome
from .outputs import generated_id, generated_rows
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
    judge = choose_judge(catalog, plan, options.judge)
    judge_model = (judge.model or model) if judge is not None else None
    return Prepared(catalog, plan, compiled, requests, model, judge, judge_model)


def choose_judge(catalog: Catalog, plan: PlanSpec, override: str | None) -> JudgeSpec | None:
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


async def run_rounds(
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
                previous = kept_only(previous, judge.kept, row_id)
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


def row_id(outcome: Outcome, attempt: AttemptRecord, index: int, verdict: Verdict) -> str:
    """The ``instructions.jsonl`` id of an accepted rewrite (as `generated_rows` makes it)."""
    req = outcome.request
    template = req.lead + (verdict.restored or "") + req.trail
    return generated_id(req.id, attempt.number, index, template)
