"""The asyncio engine: run compiled requests against a model, validate, re-ask, retry.

For each request the engine makes up to ``attempts`` validated attempts. Attempt ``k`` uses its
own deterministic seed (`attempt_seed`); when a reply fails validation, the next attempt sends
the original messages plus the bad reply (as the assistant) and the validator's targeted
``reask`` message (as the user). Each attempt is one *call*, and a call that fails in transport
is retried with exponential back-off and jitter (rate limits honour ``Retry-After`` and also
shrink the AIMD concurrency window). Completed calls are committed to the `CallCache` as they
finish, so an interrupted run resumes without repeating any of them.

Constrained decoding: where the provider can take it (`constrain.capability`) and the config
does not say ``constrain="off"``, every call of a request, re-asks included, carries the
grammar/regex of the request's validator (`ConstraintOf`), and its cache key records which
constraint was sent.

Every request ends as exactly one `Outcome` (accepted, rejected or failed), returned in the
order the requests were given, whatever order they completed in.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..compile import GENERIC_REASK
from ..compile.types import Verdict
from ..contract.compiled import Request
from ..errors import ProviderError
from . import llm
from .cache import CachedCall, CallCache, call_key
from .constrain import Capability, ConstrainMode, Constraint, capability, provider_of
from .limiter import AIMDLimiter
from .outcome import AttemptRecord, Outcome
from .progress import Progress
from .router import RouterSpec

#: Validates one reply of one request (the compiler's ``evaluate_reply`` with its validator).
Evaluator = Callable[[Request, str], tuple[Verdict, ...]]
#: The decoding constraint of one request (its validator's exported grammar and regex).
ConstraintOf = Callable[[Request], Constraint | None]
#: ``auto``: the best order and worker count for the model (see `Engine._schedule`);
#: ``fifo``: request order and twice the workers for every model (the behaviour before
#: in-process models were scheduled apart; kept for benchmarks).
Schedule = Literal["auto", "fifo"]
#: What the attempt after a rejected reply sends: ``correct`` the original messages, the bad
#: reply and the validator's correction (a re-ask); ``resample`` the original messages again
#: (its own seed: a fresh draw); ``auto`` resamples for embedded (llama.cpp) models and
#: corrects elsewhere (see `Engine.reask_mode`).
Reask = Literal["auto", "correct", "resample"]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """How to drive the model (the CLI flags of ``iatc augment``).

    ``model`` overrides each request's plan model when set. ``timeout`` is the per-call
    deadline in seconds; ``max_retries`` bounds transport retries of one call.
    ``constrain`` is ``auto`` (constrained decoding where the provider supports it) or
    ``off``; ``schedule`` see `Schedule`; ``reask`` see `Reask`.  ``cache_only``: send
    nothing; a call that is neither in the cache nor in `Engine.supplied` is recorded in
    `Engine.missing` and its request ends ``failed`` (kind ``missing``): merging shards and
    ingesting batch results replay a run this way.
    """

    model: str | None = None
    api_base: str | None = None
    api_key: str | None = None
    concurrency: int = 8
    timeout: float = 120.0
    max_retries: int = 6
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    budget_usd: float | None = None
    constrain: ConstrainMode = "auto"
    schedule: Schedule = "auto"
    reask: Reask = "auto"
    cache_only: bool = False
    #: ``--router FILE``: calls to one of its groups go through that endpoint pool.
    router: RouterSpec | None = None


@dataclass(frozen=True, slots=True)
class MissingCall:
    """A call a cache-only engine needed and did not have: the call itself (what a batch
    file asks for), its cache key, and the request and attempt it belongs to."""

    key: str
    request: Request
    attempt: int
    call: llm.LLMCall


def default_concurrency(model: str) -> int:
    """Default ``--concurrency``: llama.cpp serializes generation, so 1 for embedded models."""
    return 1 if model.split("/", 1)[0] == "embedded" else 16


def attempt_seed(seed: int, attempt: int) -> int:
    """The seed of attempt ``attempt`` (1-based): the request's seed first, then derived ones."""
    if attempt <= 1:
        return seed
    digest = hashlib.sha256(f"iatc-attempt:{seed}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def backoff_delay(tries: int, error: llm.BackendError, config: EngineConfig) -> float:
    """Exponential back-off with jitter; a server's Retry-After is a lower bound."""
    delay = min(config.backoff_max, config.backoff_base * 2.0 ** (tries - 1))
    delay *= random.uniform(0.5, 1.5)  # desynchronise retries of concurrent calls
    if error.kind == "rate_limit" and error.retry_after:
        delay = max(delay, min(error.retry_after, config.backoff_max))
    return delay


def reask_messages(
    request: Request, bad_reply: str, verdicts: Sequence[Verdict]
) -> tuple[dict[str, str], ...]:
    """The messages of a re-ask: the original ones, the bad reply, the targeted correction.

    Only the latest failed exchange is kept (not every earlier one) so prompts stay bounded
    for small local models with short contexts.
    """
    rejected = [v for v in verdicts if not v.accepted]
    text = next((v.reask for v in rejected if v.reask), None)
    if text is None:
        reasons = "; ".join(r.detail or r.code for v in rejected for r in v.reasons) or "no rewrite"
        text = GENERIC_REASK.replace("{reasons}", reasons)
    base = tuple({"role": m.role, "content": m.content} for m in request.messages)
    return (
        *base,
        {"role": "assistant", "content": bad_reply or "(no answer)"},
        {"role": "user", "content": text},
    )


class _Stop(Exception):
    """Internal: the run stops taking new calls (budget reached or fatal backend error)."""


class _Missing(Exception):
    """Internal: a cache-only engine does not have the call (see `MissingCall`)."""


class _CallFailed(Exception):
    """Internal: a call failed for good; carries the last error and the calls made."""

    def __init__(self, error: llm.BackendError, tries: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.tries = tries


@dataclass
class Engine:
    """Runs requests with bounded adaptive concurrency, retries, re-asks and a call cache."""

    config: EngineConfig
    cache: CallCache
    evaluate: Evaluator
    attempts: int = 3
    progress: Progress = field(default_factory=Progress)
    constraint_of: ConstraintOf | None = None
    constrained_calls: int = 0
    spent_usd: float = 0.0
    stop_reason: str | None = None
    fatal: llm.BackendError | None = None
    #: Replies obtained elsewhere (a batch API's results), by cache key: a call found here is
    #: stored in the cache as if it had just been made.
    supplied: Mapping[str, CachedCall] = field(default_factory=dict)
    #: With ``cache_only``: the calls the run needed and did not have, in the order met.
    missing: list[MissingCall] = field(default_factory=list)
    _any_success: bool = False
    _in_process: bool = False

    def __post_init__(self) -> None:
        self.limiter = AIMDLimiter(max(1, self.config.concurrency))

    def model_for(self, request: Request) -> str:
        """The model a request is sent to (the ``--model`` override wins)."""
        return self.config.model or request.model

    async def run(self, requests: Sequence[Request]) -> list[Outcome]:
        """Run every request; outcomes come back in the order of ``requests``.

        Raises `ProviderError` when the backend fails fatally before any call succeeded
        (missing key, unknown model, unreachable server): nothing useful could be done.
        """
        outcomes: list[Outcome | None] = [None] * len(requests)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in self._schedule(requests):
            queue.put_nowait(index)

        async def worker() -> None:
            while True:
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                outcome = await self._request(requests[index])
                outcomes[index] = outcome
                self.progress.request_done(outcome)

        n_workers = min(len(requests), self._workers()) or 1
        workers = [asyncio.ensure_future(worker()) for _ in range(n_workers)]
        try:
            await asyncio.gather(*workers)
        except Exception:
            # A worker failed for good (the cache cannot be written): the others take no
            # new call and finish the one in flight, so none runs on after the caller
            # closes the cache; then the error goes up.
            self.stop_reason = self.stop_reason or "error"
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        except BaseException:  # cancelled (Ctrl-C): stop everything now
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        if self.fatal is not None and not self._any_success:
            raise ProviderError(self.fatal.message)
        return [o for o in outcomes if o is not None]

    def _local(self, requests: Sequence[Request]) -> bool:
        return bool(requests) and all(
            self.model_for(r).split("/", 1)[0] == "embedded" for r in requests
        )

    def reask_mode(self, model: str, temperature: float = 1.0) -> Reask:
        """How a rejected reply of `model` sampled at `temperature` is followed up.

        ``auto``: for embedded models at a temperature above 0 (greedy decoding would draw the
        same reply again) a fresh draw of the same prompt (measured on the
        embedded 0.5B model: a re-ask mostly gets the rejected reply back, since the model
        copies the assistant turn it is shown: 2 of 46 re-asks accepted against 12 of 42
        redraws, bench/bench_embedded.py), and the prompt is still in llama.cpp's cache, so
        a redraw evaluates no prompt at all; a correcting re-ask for every other model.
        """
        if self.config.reask != "auto":
            return self.config.reask
        local = provider_of(model) == "embedded"
        return "resample" if local and temperature > 0 else "correct"

    def _workers(self) -> int:
        if self._in_process and self.config.schedule == "auto":
            # llama.cpp computes one sequence at a time and keeps the last prompt's KV cache:
            # exactly `concurrency` workers, so a re-ask is sent right after its own attempt
            # (and reuses that attempt's prompt prefix) instead of queueing behind another
            # request's call.
            return self.limiter.ceiling
        # Twice the ceiling: workers sleeping in back-off must not starve the window.
        return 2 * self.limiter.ceiling

    def _schedule(self, requests: Sequence[Request]) -> list[int]:
        """The order calls are made in (outcomes keep the order of ``requests``).

        For an in-process model, requests that share a meta-prompt run back to back, so
        consecutive prompts share everything up to the instruction and llama.cpp evaluates
        only the new tail; elsewhere, request order.
        """
        self._in_process = self._local(requests)
        order = list(range(len(requests)))
        if self._in_process and self.config.schedule == "auto":
            order.sort(
                key=lambda i: (
                    requests[i].iteration,
                    requests[i].metaprompt,
                    requests[i].temperature,
                    requests[i].task,
                    requests[i].instruction,
                    requests[i].sample,
                )
            )
        return order

    async def _request(self, request: Request) -> Outcome:
        model = self.model_for(request)
        records: list[AttemptRecord] = []
        messages = tuple({"role": m.role, "content": m.content} for m in request.messages)
        for number in range(1, max(1, self.attempts) + 1):
            seed = attempt_seed(request.seed, number)
            try:
                result, cached, tries = await self._call(request, model, messages, number, seed)
            except _Stop:
                return self._stopped(request, model, records)
            except _Missing:
                return Outcome(
                    request,
                    model,
                    "failed",
                    tuple(records),
                    f"attempt {number} is not in the call cache (nothing is sent: cache only)",
                    "missing",
                    0,
                )
            except _CallFailed as exc:
                return Outcome(
                    request,
                    model,
                    "failed",
                    tuple(records),
                    exc.error.message,
                    exc.error.kind,
                    exc.tries,
                )
            verdicts = self.evaluate(request, result.text)
            record = AttemptRecord(
                number,
                seed,
                result.text,
                verdicts,
                result.prompt_tokens,
                result.completion_tokens,
                result.cost_usd,
                cached,
            )
            records.append(record)
            if record.accepted:
                return Outcome(request, model, "accepted", tuple(records), tries=tries)
            if self.reask_mode(model, request.temperature) == "correct":
                messages = reask_messages(request, result.text, verdicts)
        return Outcome(request, model, "rejected", tuple(records))

    def _stopped(self, request: Request, model: str, records: list[AttemptRecord]) -> Outcome:
        if self.stop_reason == "budget":
            message = f"not run: the budget of ${self.config.budget_usd:g} was reached"
            return Outcome(request, model, "failed", tuple(records), message, "budget", 0)
        error = self.fatal.message if self.fatal else "run stopped"
        return Outcome(request, model, "failed", tuple(records), error, "fatal", 0)

    async def _call(
        self,
        request: Request,
        model: str,
        messages: tuple[dict[str, str], ...],
        attempt: int,
        seed: int,
    ) -> tuple[CachedCall, bool, int]:
        """One call, from the cache or the model with transport retries."""
        cfg = self.config
        constraint, able = self.constraint(request, model)
        key = self._key(request, model, messages, attempt, seed, constraint, able)
        hit = self.cache.get(key)
        if hit is not None:
            self.progress.call_done(hit.prompt_tokens, hit.completion_tokens, hit.cost_usd, True)
            return hit, True, 0
        call = llm.LLMCall(
            model=model,
            messages=messages,
            temperature=request.temperature,
            top_p=request.top_p,
            max_tokens=_max_tokens(request, constraint),
            seed=seed,
            timeout=cfg.timeout,
            api_base=cfg.api_base,
            api_key=cfg.api_key,
            constraint=constraint,
            router=cfg.router,
        )
        supplied = self.supplied.get(key)
        if supplied is not None:
            self.cache.put(key, request=request.id, attempt=attempt, model=model, call=supplied)
            self._any_success = True
            self._charge(supplied.cost_usd)
            self.progress.call_done(
                supplied.prompt_tokens, supplied.completion_tokens, supplied.cost_usd, False
            )
            return supplied, False, 1
        if cfg.cache_only:
            self.missing.append(MissingCall(key, request, attempt, call))
            raise _Missing
        tries = 0
        while True:
            if self.stop_reason is not None:
                raise _Stop
            tries += 1
            error: llm.BackendError | None = None
            async with self.limiter.slot() as slot:
                if self.stop_reason is not None:
                    slot.neutral()
                    raise _Stop
                try:
                    result = await llm.acomplete(call)
                except llm.BackendError as exc:
                    if exc.kind == "rate_limit":
                        slot.rate_limited()
                    else:
                        slot.neutral()
                    error = exc
            if error is None:
                self.constrained_calls += constraint is not None
                stored = CachedCall(
                    result.text,
                    result.prompt_tokens,
                    result.completion_tokens,
                    result.cost_usd,
                    result.latency_s,
                )
                self.cache.put(key, request=request.id, attempt=attempt, model=model, call=stored)
                self._any_success = True
                self._charge(result.cost_usd)
                self.progress.call_done(
                    result.prompt_tokens, result.completion_tokens, result.cost_usd, False
                )
                return stored, False, tries
            if error.kind == "oversize":  # paid, and asking again would likely pay again
                raise _CallFailed(error, tries)
            if error.kind == "fatal":
                if able is not None and not self._any_success and "rejected" in error.message:
                    # e.g. a server that refuses unknown body fields
                    error = llm.BackendError(
                        "fatal",
                        f"{error.message} (the call was constrained with {able.name} fields; "
                        "--constrain off sends none)",
                    )
                if not self._any_success:  # nothing has worked: the setup is wrong, stop all
                    self.fatal = self.fatal or error
                    self.stop_reason = self.stop_reason or "fatal"
                raise _CallFailed(error, tries)
            if tries > cfg.max_retries:
                raise _CallFailed(error, tries)
            await asyncio.sleep(backoff_delay(tries, error, cfg))

    def constraint(
        self, request: Request, model: str
    ) -> tuple[Constraint | None, Capability | None]:
        """The constraint the calls of `request` carry, and the provider capability sending it
        (both None when unconstrained: ``constrain="off"``, no `ConstraintOf`, a provider
        without the capability, or a request without a constraint)."""
        if self.config.constrain == "off" or self.constraint_of is None:
            return None, None
        pool = self.config.router
        if pool is not None and pool.serves(model):  # what every deployment it reaches takes
            able = pool.capability(model)
        else:
            able = capability(provider_of(model), self.config.api_base)
        if able is None:
            return None, None
        constraint = self.constraint_of(request)
        return (constraint, able) if constraint is not None else (None, None)

    def first_key(self, request: Request) -> str:
        """The cache key of a request's first attempt (what a resume still has to send)."""
        model = self.model_for(request)
        messages = tuple({"role": m.role, "content": m.content} for m in request.messages)
        constraint, able = self.constraint(request, model)
        seed = attempt_seed(request.seed, 1)
        return self._key(request, model, messages, 1, seed, constraint, able)

    def _key(
        self,
        request: Request,
        model: str,
        messages: tuple[dict[str, str], ...],
        attempt: int,
        seed: int,
        constraint: Constraint | None,
        able: Capability | None,
    ) -> str:
        return call_key(
            request=request.id,
            model=model,
            temperature=request.temperature,
            top_p=request.top_p,
            max_tokens=_max_tokens(request, constraint),
            seed=seed,
            attempt=attempt,
            messages=messages,
            constraint=able.tag(constraint) if constraint is not None and able else None,
        )

    def _charge(self, cost: float) -> None:
        self.spent_usd += cost
        budget = self.config.budget_usd
        if budget is not None and self.spent_usd >= budget and self.stop_reason is None:
            self.stop_reason = "budget"


def _max_tokens(request: Request, constraint: Constraint | None) -> int:
    """The reply bound of a call: the request's, or the constraint's if lower."""
    if constraint is None or constraint.max_tokens is None:
        return request.max_tokens
    return max(1, min(request.max_tokens, constraint.max_tokens))


async def complete_with_retries(call: llm.LLMCall, config: EngineConfig) -> llm.LLMResult:
    """One call outside a run (e.g. ``iatc bootstrap``), with the engine's retry policy.

    Raises `ProviderError` with the backend's message when the call fails for good.
    """
    tries = 0
    while True:
        tries += 1
        try:
            return await llm.acomplete(call)
        except llm.BackendError as exc:
            if exc.kind in ("fatal", "oversize") or tries > config.max_retries:
                raise ProviderError(exc.message) from None
            await asyncio.sleep(backoff_delay(tries, exc, config))
