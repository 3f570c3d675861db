"""``iatc augment``: compile a plan, run it through the engine, write the run directory.

Modes follow from the plan: one temperature is a single run; several temperatures
(MIns+_MT) are already separate requests in the compiled plan, and their accepted rewrites
are merged into one ``instructions.jsonl`` (deduplication is the dataset stage's job);
``iterations N`` (MIns+_Iter) adds N rounds that rephrase the previous round's accepted
rewrites, derived by the compiler.

Resume: every completed call is in ``RUN_DIR/cache.sqlite``; re-running the same command
repeats none of them and, because every file is rebuilt from requests and cached replies in
request order, writes the same ``instructions.jsonl``, ``rejected.jsonl`` and ``failed.jsonl``
as an uninterrupted run.
"""

from __future__ import annotations

import difflib
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..compile import Compiled
from ..contract.compiled import Request
from ..errors import IatRuntimeError
from ..lang.model import Catalog, PlanSpec
from . import compiler_api, llm
from .cache import CallCache, call_key
from .engine import Engine, EngineConfig, attempt_seed
from .estimate import Estimate, estimate_requests
from .outcome import Outcome
from .outputs import (
    failed_rows,
    generated_rows,
    original_rows,
    rejected_rows,
    tally,
    write_json,
    write_jsonl,
)
from .progress import Progress

CACHE_FILE = "cache.sqlite"


class BudgetExceeded(IatRuntimeError):
    """The pre-flight cost estimate is above ``--budget``: nothing was sent."""


@dataclass(frozen=True, slots=True)
class AugmentOptions:
    """Everything ``iatc augment`` can be told besides the sources and the run directory."""

    plan: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    fresh: bool = False
    tasks: tuple[str, ...] | None = None
    limit: int | None = None


@dataclass
class Prepared:
    """A compiled plan narrowed to the requests this run will send."""

    catalog: Catalog
    plan: PlanSpec
    compiled: Compiled
    requests: list[Request]
    model: str

    @property
    def compiled_count(self) -> int:
        """Requests the compiler produced before ``--tasks``/``--limit``."""
        return len(self.compiled.requests)


@dataclass
class AugmentResult:
    """The finished run: where it is, what it says, and every outcome."""

    run_dir: Path
    summary: dict[str, Any]
    outcomes: list[Outcome]


def choose_plan(catalog: Catalog, name: str | None) -> PlanSpec:
    """The plan to run: the named one, else the only one, else the sampling block's."""
    if name is not None:
        if name not in catalog.plans:
            close = difflib.get_close_matches(name, list(catalog.plans), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(catalog.plans) or "none declared"
            raise IatRuntimeError(f"no plan named {name!r} (known: {known}){hint}")
        return catalog.plans[name]
    if len(catalog.plans) == 1:
        return next(iter(catalog.plans.values()))
    named = {s.plan for s in catalog.samplings.values() if s.plan}
    if len(named) == 1:
        return catalog.plans[named.pop()]
    if not catalog.plans:
        raise IatRuntimeError("the sources declare no `plan`: nothing to run")
    raise IatRuntimeError(
        "several plans are declared; choose one with --plan (" + ", ".join(catalog.plans) + ")"
    )


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
                hints.append(f"{t!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise IatRuntimeError(
                "--tasks names tasks this plan does not augment: " + ", ".join(hints)
            )
        wanted = set(options.tasks)
        requests = [r for r in requests if r.task in wanted]
    if options.limit is not None:
        if options.limit < 1:
            raise IatRuntimeError("--limit must be at least 1")
        requests = requests[: options.limit]
    model = options.engine.model or plan.model
    return Prepared(catalog, plan, compiled, requests, model)


def first_call_key(request: Request, config: EngineConfig) -> str:
    """The cache key of a request's first attempt (to tell what a resume still has to send)."""
    messages = tuple({"role": m.role, "content": m.content} for m in request.messages)
    return call_key(
        request=request.id,
        model=config.model or request.model,
        api_base=config.api_base,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        seed=attempt_seed(request.seed, 1),
        attempt=1,
        messages=messages,
    )


def preflight(prepared: Prepared, options: AugmentOptions, cache: CallCache) -> Estimate:
    """Estimate what is left to send; refuse to start when it is above the budget."""
    todo = [r for r in prepared.requests if not cache.contains(first_call_key(r, options.engine))]
    est = estimate_requests(todo, prepared.model)
    budget = options.engine.budget_usd
    if budget is not None and est.cost_usd > budget:
        raise BudgetExceeded(
            f"estimated cost ${est.cost_usd:.4f} for {len(todo)} requests "
            f"({est.prompt_tokens} prompt + {est.completion_tokens} completion tokens, "
            f"one attempt each) is above --budget ${budget:g}; nothing was sent. "
            "Raise --budget, or narrow the run with --tasks/--limit."
        )
    return est


def run_augment(
    catalog: Catalog,
    run_dir: Path,
    options: AugmentOptions,
    progress: Progress | None = None,
    sources: Mapping[str, str] | None = None,
) -> AugmentResult:
    """Compile, pre-flight, run every round, and write the run directory."""
    started = time.monotonic()
    prepared = prepare(catalog, options, sources)
    run_dir.mkdir(parents=True, exist_ok=True)
    prepared.compiled.write(run_dir / "compiled")
    shown = progress or Progress()
    with CallCache(run_dir / CACHE_FILE, fresh=options.fresh) as cache:
        estimate = preflight(prepared, options, cache)
        validators = compiler_api.Validators(prepared.compiled)
        engine = Engine(
            options.engine,
            cache,
            validators.evaluator(),
            attempts=prepared.plan.attempts,
            progress=shown,
        )
        try:
            outcomes = llm.run_async(_rounds(prepared, engine, validators, run_dir))
        finally:
            shown.stop()
        summary = _write_outputs(
            prepared, options, run_dir, outcomes, engine, estimate, time.monotonic() - started
        )
    return AugmentResult(run_dir, summary, outcomes)


async def _rounds(
    prepared: Prepared, engine: Engine, validators: compiler_api.Validators, run_dir: Path
) -> list[Outcome]:
    """Round 0 is the compiled requests; each further round rephrases the last one's output."""
    everything: list[Outcome] = []
    requests = prepared.requests
    for iteration in range(prepared.plan.iterations + 1):
        if iteration > 0:
            if engine.stop_reason is not None:
                break
            previous = [o for o in everything if o.request.iteration == iteration - 1]
            requests = compiler_api.derive(prepared.compiled, validators, previous, iteration)
            compiler_api.write_round(run_dir / "compiled", iteration, requests)
            if not requests:
                break
        engine.progress.start(len(requests), f"round {iteration}")
        everything.extend(await engine.run(requests))
    return everything


def _versions() -> dict[str, str]:
    from .. import __version__

    try:
        litellm_version = metadata.version("litellm")
    except metadata.PackageNotFoundError:
        litellm_version = "not installed"
    return {"iatc": __version__, "litellm": litellm_version, "python": platform.python_version()}


def _write_outputs(
    prepared: Prepared,
    options: AugmentOptions,
    run_dir: Path,
    outcomes: Sequence[Outcome],
    engine: Engine,
    estimate: Estimate,
    wall: float,
) -> dict[str, Any]:
    augmented = {r.task for r in prepared.requests}
    originals = original_rows(prepared.catalog, augmented)
    generated = generated_rows(outcomes, compiler_api.rewrite_id)
    n_instr = write_jsonl(run_dir / "instructions.jsonl", [*originals, *generated])
    n_rej = write_jsonl(run_dir / "rejected.jsonl", rejected_rows(outcomes))
    n_fail = write_jsonl(run_dir / "failed.jsonl", failed_rows(outcomes))
    totals = tally(outcomes)
    plan = prepared.plan
    modes = ["single"] if len(plan.temperatures) == 1 else ["multi-temperature"]
    if plan.iterations:
        modes.append("iterative")
    summary: dict[str, Any] = {
        "plan": plan.name,
        "model": prepared.model,
        "api_base": options.engine.api_base,
        "mode": "+".join(modes),
        "temperatures": list(plan.temperatures),
        "attempts_per_request": plan.attempts,
        "iterations": plan.iterations,
        "requests_compiled": prepared.compiled_count,
        "selection": {
            "tasks": list(options.tasks) if options.tasks else None,
            "limit": options.limit,
            "requests": len(prepared.requests),
        },
        "totals": totals,
        "reconciliation": (
            f"{totals['accepted']} accepted + {totals['rejected']} rejected + "
            f"{totals['failed']} failed = {totals['requests']} requests"
            + ("" if totals["reconciled"] else "  (MISMATCH: a bug in iatc)")
        ),
        "rounds": [
            _round_counts(outcomes, i)
            for i in range(plan.iterations + 1)
            if any(o.request.iteration == i for o in outcomes)
        ],
        "outputs": {
            "instructions": n_instr,
            "originals": len(originals),
            "generated": len(generated),
            "rejected_rows": n_rej,
            "failed_rows": n_fail,
        },
        "skipped": compiler_api.skipped(prepared.compiled),
        "run": {
            # Facts of this invocation (they differ between a resumed and a straight run).
            "estimate": {
                "requests": estimate.requests,
                "prompt_tokens": estimate.prompt_tokens,
                "completion_tokens": estimate.completion_tokens,
                "cost_usd": round(estimate.cost_usd, 6),
            },
            "wall_time_s": round(wall, 3),
            "calls_made": engine.progress.counters.calls - engine.progress.counters.cached_calls,
            "cache_hits": engine.progress.counters.cached_calls,
            "spent_usd": round(engine.spent_usd, 6),
            "stopped": engine.stop_reason,
            "budget_usd": options.engine.budget_usd,
            "concurrency": options.engine.concurrency,
            "rate_limit_cuts": engine.limiter.cuts,
            "fresh": options.fresh,
        },
        "versions": _versions(),
    }
    write_json(run_dir / "summary.json", summary)
    return summary


def _round_counts(outcomes: Sequence[Outcome], iteration: int) -> dict[str, Any]:
    mine = [o for o in outcomes if o.request.iteration == iteration]
    counts = {s: sum(1 for o in mine if o.status == s) for s in ("accepted", "rejected", "failed")}
    return {"iteration": iteration, "requests": len(mine), **counts}
