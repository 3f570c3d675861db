"""The one door to litellm: one chat completion in, one `LLMResult` or `BackendError` out.

litellm is imported lazily (it costs ~5 s) and only here. The in-process providers
``offline/...`` and ``embedded/...`` are registered in ``litellm.custom_provider_map`` so every
model, local or remote, goes through the same litellm routing and error mapping.
`acomplete` makes exactly one attempt: retries and backoff belong to the engine, which decides
by `BackendError.kind`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import re
import socket
import sys
import threading
import time
import typing
import warnings
import weakref
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..lang.model import DEFAULT_MODEL  # the one default model, declared with the plans
from .backend_error import BackendError as BackendError
from .backend_error import Kind as Kind
from .constrain import Constraint, capability
from .router import RouterSpec

T = TypeVar("T")


LOCAL_PROVIDERS = ("offline", "embedded")
"""Providers implemented in this package (no network, no cost)."""

# Local OpenAI-compatible servers (llama.cpp server, vLLM, FakeServer) ignore the key, but the
# OpenAI client refuses to send a request without one.
_PLACEHOLDER_KEY = "sk-no-key-required"
_MAX_DETAIL = 300
# litellm stacks class names in front of provider messages:
# "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached".
_PREFIXES = re.compile(r"^(?:(?:litellm\.)?\w*(?:Error|Exception)\s*[:-]\s*)+")


@dataclass(frozen=True, slots=True)
class LLMCall:
    """One chat-completion request, fully specified (the engine builds these)."""

    model: str
    messages: tuple[dict[str, str], ...]
    temperature: float
    top_p: float
    max_tokens: int
    seed: int | None
    timeout: float
    api_base: str | None = None
    api_key: str | None = None
    #: The reply's shape for constrained decoding (set by the engine only for providers
    #: with a capability in `constrain.CAPABILITIES`).
    constraint: Constraint | None = None
    #: ``--router FILE``: when `model` is one of its groups, the call goes through that pool
    #: (a ``litellm.Router``) instead of to `api_base`.
    router: RouterSpec | None = None

    @property
    def pooled(self) -> bool:
        """True when this call goes through the endpoint pool of `router`."""
        return self.router is not None and self.router.serves(self.model)

    def secrets(self) -> list[str]:
        """Every credential this call may carry, the router file's keys included."""
        from .secrets import call_secrets

        found = call_secrets(self.api_key, self.api_base)
        return found + self.router.secrets() if self.router is not None else found


@dataclass(frozen=True, slots=True)
class LLMResult:
    """The reply text of one successful call, with usage, cost and wall-clock latency."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    model: str
    latency_s: float


_registry_lock = threading.Lock()


def _litellm() -> Any:
    """Import litellm once, offline (no price-list download) and quiet."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def ensure_providers_registered() -> None:
    """Register the ``offline`` and ``embedded`` providers with litellm (idempotent)."""
    litellm = _litellm()
    with _registry_lock:
        present = {entry.get("provider") for entry in litellm.custom_provider_map}
        missing = [name for name in LOCAL_PROVIDERS if name not in present]
        if not missing:
            return
        handler_class = _handler_class(litellm)
        litellm.custom_provider_map = [
            *litellm.custom_provider_map,
            *({"provider": name, "custom_handler": handler_class(name)} for name in missing),
        ]


def _handler_class(litellm: Any) -> Any:
    """Build the CustomLLM subclass lazily: its base class exists only once litellm is loaded."""

    class LocalProvider(litellm.CustomLLM):  # type: ignore[misc]
        def __init__(self, provider: str) -> None:
            super().__init__()
            self.provider = provider

        def completion(self, *args: Any, **kwargs: Any) -> Any:
            reply = _local_generate_sync(self.provider, kwargs)
            return _fill_response(litellm, kwargs, self.provider, reply)

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            reply = await _local_generate_async(self.provider, kwargs)
            return _fill_response(litellm, kwargs, self.provider, reply)

    return LocalProvider


def _seconds(timeout: Any) -> float | None:
    """litellm hands over a float or an httpx.Timeout; we need seconds."""
    if timeout is None or isinstance(timeout, int | float):
        return None if timeout is None else float(timeout)
    read = getattr(timeout, "read", None)
    return float(read) if isinstance(read, int | float) else None


def _local_generate_sync(provider: str, kwargs: Mapping[str, Any]) -> Any:
    params = kwargs.get("optional_params") or {}
    if provider == "offline":
        from instraug_dsl.runtime import offline

        return offline.generate(kwargs["model"], kwargs["messages"], params.get("seed"))
    from instraug_dsl.runtime import embedded

    return embedded.generate(
        kwargs["model"], kwargs["messages"], _sampling(params), _seconds(kwargs.get("timeout"))
    )


async def _local_generate_async(provider: str, kwargs: Mapping[str, Any]) -> Any:
    if provider == "offline":  # pure Python and instant: no thread needed
        return _local_generate_sync(provider, kwargs)
    from instraug_dsl.runtime import embedded

    params = kwargs.get("optional_params") or {}
    return await embedded.agenerate(
        kwargs["model"], kwargs["messages"], _sampling(params), _seconds(kwargs.get("timeout"))
    )


def _sampling(params: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("temperature", "top_p", "max_tokens", "seed")
    sampling = {key: params[key] for key in keys if params.get(key) is not None}
    extra = params.get("extra_body")  # constrained decoding (`constrain.EMBEDDED`)
    if isinstance(extra, Mapping):
        sampling.update((k, extra[k]) for k in ("grammar", "max_words") if k in extra)
    return sampling


def _fill_response(litellm: Any, kwargs: Mapping[str, Any], provider: str, reply: Any) -> Any:
    response = kwargs["model_response"]
    response.choices[0].message.content = reply.text
    response.choices[0].finish_reason = "stop"
    response.model = f"{provider}/{kwargs['model']}"
    response.usage = litellm.Usage(
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        total_tokens=reply.prompt_tokens + reply.completion_tokens,
    )
    return response


def estimate_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Price of a call in USD from litellm's bundled cost map; 0.0 for local or unknown models."""
    if model.split("/", 1)[0] in LOCAL_PROVIDERS:
        return 0.0
    litellm = _litellm()
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
        return float(prompt_cost) + float(completion_cost)
    except Exception:  # unknown model: litellm raises; we simply don't know its price
        return 0.0


def batch_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Price in USD of a call answered through a provider's batch API: litellm's batch prices
    (``*_cost_per_token_batches`` of its bundled list, else half the regular price, as
    litellm's ``batch_cost_calculator`` does); 0.0 for local or unknown models."""
    if model.split("/", 1)[0] in LOCAL_PROVIDERS:
        return 0.0
    litellm = _litellm()
    try:
        from litellm.cost_calculator import batch_cost_calculator

        usage = litellm.Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )
        prompt_cost, completion_cost = batch_cost_calculator(usage=usage, model=model)
        total = float(prompt_cost) + float(completion_cost)
    except Exception:  # an unknown model, or a litellm without batch prices
        return estimate_cost(model, prompt_tokens, completion_tokens) / 2
    return total if math.isfinite(total) and total >= 0 else 0.0


def token_choices(body: Mapping[str, Any]) -> tuple[TokenChoices, ...] | None:
    """The per-token choices of a ``chat.completion`` body read from a file (a batch
    result), as `acomplete_logprobs` reads them from a reply; None when it has none."""

    class _Reply:
        choices = body.get("choices")

    return _token_choices(_Reply())


async def ashutdown() -> None:
    """Stop litellm's background logging worker before the event loop closes.

    litellm starts a worker task on the running loop at the first call; if
    the loop closes with it pending, Python reports a never-awaited
    coroutine at exit.  Call this last inside every ``asyncio.run``.  The loop's bounded
    HTTP clients (:mod:`.replycap`) are closed too.
    """
    if "instraug_dsl.runtime.replycap" in sys.modules:
        from .replycap import aclose_clients

        await aclose_clients()
    with contextlib.suppress(RuntimeError):
        _retire_routers(asyncio.get_running_loop())
    if "litellm" not in sys.modules:
        return
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    await GLOBAL_LOGGING_WORKER.stop(timeout=2.0)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, wherever that code is called.

    Without a running event loop this is ``asyncio.run`` plus a clean shutdown of
    litellm's logging worker.  Inside a running loop (a Jupyter cell, an async web
    service), where ``asyncio.run`` refuses to start, the coroutine runs on its own loop
    in a worker thread and this call blocks until it is done; its result or exception is
    passed through unchanged.
    """

    async def main() -> T:
        try:
            return await coro
        finally:
            await ashutdown()

    try:
        asyncio.get_running_loop()
        inside_a_loop = True
    except RuntimeError:
        inside_a_loop = False
    if not inside_a_loop:
        # Outside the except block: an exception raised in the run must not carry the
        # "no running event loop" error as its context (error classification reads it).
        return asyncio.run(main())
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["result"] = asyncio.run(main())
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=worker, name="iatc-run", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return typing.cast(T, box["result"])


async def aprepare(model: str) -> None:
    """Get `model` ready before timed calls: an ``embedded/...`` model is assembled, verified
    and loaded in a worker thread (seconds the first time) so no call's deadline pays for it.
    Other models need nothing. Raises `BackendError` (fatal) when the model cannot be used."""
    if model.split("/", 1)[0] != "embedded":
        return
    from instraug_dsl.runtime import embedded

    await asyncio.to_thread(embedded.load, model)


async def acomplete(call: LLMCall) -> LLMResult:
    """Run one chat completion (one attempt, no retries).

    Raises `BackendError` for every failure; no litellm, httpx or provider exception escapes.
    Its message never carries a credential: the key, user-info and query tokens of the
    server address, credentials from the environment, and secret-looking strings a server
    echoes back are masked.  A reply that repeats one of those known credentials has it
    masked too, so it is never stored or written.  A reply larger than `reply_limit`
    allows fails with kind ``oversize``.
    """
    result, _ = await _masked(call)
    return result


async def _masked(call: LLMCall, extra: Mapping[str, Any] | None = None) -> tuple[LLMResult, Any]:
    """`_acomplete`, with the known credentials masked in its error or its reply text."""
    from .secrets import mask_known, redact

    try:
        result, response = await _acomplete(call, extra)
    except BackendError as exc:
        # URLs in the message lose their user-info and query values; the keys go too.
        clean = redact(exc.message, call.secrets())
        raise BackendError(exc.kind, clean, exc.retry_after) from None
    text = mask_known(result.text, call.secrets())
    if text != result.text:
        result = dataclasses.replace(result, text=text)
    return result, response


async def _acomplete(
    call: LLMCall, extra: Mapping[str, Any] | None = None
) -> tuple[LLMResult, Any]:
    """One call through litellm (``extra``: more request parameters): the result and
    litellm's response."""
    from . import replycap

    try:
        litellm = _litellm()
        ensure_providers_registered()
        sending = _send(litellm, call, extra)
        start = time.monotonic()  # after the one-off import: latency is the call's own
        # litellm does not enforce `timeout` for custom providers, and a wedged connection
        # must not hang the engine either: the deadline is ours.  The reply bound is set
        # before wait_for makes its task, which copies it.
        with replycap.bounded(replycap.reply_limit(call.max_tokens)):
            response = await asyncio.wait_for(sending, timeout=_deadline(call))
        return _result(response, call, time.monotonic() - start), response
    except BackendError:
        raise
    except TimeoutError:
        raise BackendError(
            "timeout", f"{call.model}: no reply within the {_deadline(call):g} s deadline"
        ) from None
    except Exception as exc:
        raise _classify(exc, call) from None


def _send(litellm: Any, call: LLMCall, extra: Mapping[str, Any] | None = None) -> Any:
    """The awaitable of `call`: through its endpoint pool, or straight to litellm."""
    if call.router is not None and call.pooled:
        kwargs = _pool_request(call, call.router)
        kwargs.update(extra or {})
        return _router(litellm, call.router).acompletion(**kwargs)
    kwargs = _request(litellm, call)
    kwargs.update(extra or {})
    return litellm.acompletion(**kwargs)


def _deadline(call: LLMCall) -> float:
    """Our deadline of the whole call: ``timeout``, or for a pooled call every attempt the
    router may make (each attempt has ``timeout``, so a stalled deployment costs one)."""
    if call.router is not None and call.pooled:
        return call.router.deadline(call.model, call.timeout)
    return call.timeout


def _request(litellm: Any, call: LLMCall) -> dict[str, Any]:
    """litellm keyword arguments for `call`, after checking provider and credentials."""
    provider = _provider(litellm, call.model)
    kwargs: dict[str, Any] = {
        "model": call.model,
        "messages": [dict(m) for m in call.messages],
        "temperature": call.temperature,
        "top_p": call.top_p,
        "max_tokens": call.max_tokens,
        "timeout": call.timeout,
        "num_retries": 0,  # the engine retries; litellm must not multiply attempts
        "max_retries": 0,  # ...nor the OpenAI client underneath it
        "drop_params": True,  # e.g. providers without `seed` support
    }
    if call.seed is not None:
        kwargs["seed"] = call.seed
    if call.api_base:
        kwargs["api_base"] = call.api_base
    if call.constraint is not None:
        kwargs["extra_body"] = _constraint_body(provider, call, call.constraint)
    if provider in LOCAL_PROVIDERS:
        return kwargs
    if not _is_priced(litellm, call.model):
        # litellm prices every reply; for a model missing from its price list it runs a
        # fuzzy search (~13 % of a call's CPU) only to find nothing. litellm's documented
        # per-call custom pricing of 0 skips about half of it: same 0.0 cost as before.
        kwargs["input_cost_per_token"] = 0.0
        kwargs["output_cost_per_token"] = 0.0
    if call.api_key:
        kwargs["api_key"] = call.api_key
    else:
        missing = _missing_keys(litellm, call.model)
        if missing and call.api_base and provider == "openai":
            kwargs["api_key"] = _PLACEHOLDER_KEY
        elif missing:
            raise BackendError(
                "fatal",
                f"missing API key for {call.model}: set the environment variable "
                + " and ".join(missing),
            )
    if provider == "openai":
        from .replycap import openai_client

        # litellm's documented `client=`: an AsyncOpenAI whose HTTP client stops reading a
        # reply past the bound (OpenAI and every OpenAI-compatible server).
        kwargs["client"] = openai_client(call.api_base, kwargs.get("api_key"), call.timeout)
    return kwargs


def _constraint_body(provider: str, call: LLMCall, constraint: Constraint) -> dict[str, Any]:
    """The ``extra_body`` fields carrying `constraint` (see :mod:`.constrain`)."""
    able = capability(provider, call.api_base)
    if able is None:
        raise BackendError("fatal", f"{call.model}: this provider takes no decoding constraint")
    return able.extra_body(constraint)


# ------------------------------------------------------------------ endpoint pools


def _pool_request(call: LLMCall, pool: RouterSpec) -> dict[str, Any]:
    """``Router.acompletion`` keyword arguments of a pooled `call`.

    No address, key or client: each attempt takes its deployment's (the router merges its
    ``litellm_params`` under these, so anything given here would override every deployment).
    ``timeout`` is one attempt's; the router's ``num_retries`` apply (not ours: 0), so a
    failed or stalled deployment is followed at once by another one of the group.
    """
    kwargs: dict[str, Any] = {
        "model": call.model,
        "messages": [dict(m) for m in call.messages],
        "temperature": call.temperature,
        "top_p": call.top_p,
        "max_tokens": call.max_tokens,
        "timeout": pool.attempt_timeout(call.timeout),
        "drop_params": True,
    }
    if call.seed is not None:
        kwargs["seed"] = call.seed
    if call.constraint is not None:
        able = pool.capability(call.model)
        if able is None:
            raise BackendError(
                "fatal",
                f"{call.model}: the deployments of this pool take no common decoding constraint",
            )
        kwargs["extra_body"] = able.extra_body(call.constraint)
    return kwargs


# One litellm.Router per event loop and router file: its clients belong to the loop that
# opened them, and every run (``run_async``) has its own loop.  Built at the first pooled call.
_routers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[RouterSpec, Any]]
_routers = weakref.WeakKeyDictionary()


def _router(litellm: Any, pool: RouterSpec) -> Any:
    """The ``litellm.Router`` of `pool` for the running loop (built once, lazily)."""
    per_loop = _routers.setdefault(asyncio.get_running_loop(), {})
    router = per_loop.get(pool)
    if router is None:
        router = per_loop[pool] = _build_router(litellm, pool)
    return router


def _build_router(litellm: Any, pool: RouterSpec) -> Any:
    """Check every deployment's provider and key like a direct call's, then build the router.
    Raises `BackendError` (fatal) naming the file and the deployment's field."""
    keys: dict[int, str] = {}
    for index, deployment in enumerate(pool.deployments):
        where = f"{pool.source}: {deployment.where}.litellm_params"
        try:
            provider = _provider(litellm, deployment.model)
        except BackendError as exc:
            raise BackendError("fatal", f"{where}.model: {exc.message}") from None
        if deployment.api_key or provider in LOCAL_PROVIDERS:
            continue
        missing = _missing_keys(litellm, deployment.model)
        if missing and deployment.api_base and provider == "openai":
            keys[index] = _PLACEHOLDER_KEY  # a local OpenAI-compatible server
        elif missing:
            raise BackendError(
                "fatal",
                f"{where}.api_key: missing API key for {deployment.model}: give api_key "
                "(e.g. os.environ/NAME) or set the environment variable " + " and ".join(missing),
            )
    try:
        with warnings.catch_warnings():  # litellm's own (pydantic) warnings are not the user's
            warnings.simplefilter("ignore")
            return litellm.Router(**pool.router_arguments(keys))
    except Exception as exc:  # litellm validates the model list its own way
        raise BackendError(
            "fatal", f"{pool.source}: litellm's Router refused the file: {_detail(exc)}"
        ) from None


def _retire_routers(loop: asyncio.AbstractEventLoop) -> None:
    """Drop the loop's routers and their global registrations (litellm's ``retire()``)."""
    for router in _routers.pop(loop, {}).values():
        retire = getattr(router, "retire", None)
        if callable(retire):
            with contextlib.suppress(Exception):
                retire()


# Per-process memos of litellm lookups that depend only on the model name: the engine asks
# the same questions for every one of thousands of calls.
_providers: dict[str, str] = {}
_priced: dict[str, bool] = {}


def _provider(litellm: Any, model: str) -> str:
    cached = _providers.get(model)
    if cached is not None:
        return cached
    try:
        _, provider, _, _ = litellm.get_llm_provider(model=model)
    except Exception:
        raise BackendError(
            "fatal",
            f"unknown model or provider {model!r}: write it as provider/model, e.g. "
            f"{DEFAULT_MODEL}, offline/rules or openai/gpt-4o-mini",
        ) from None
    _providers[model] = str(provider)
    return str(provider)


def _is_priced(litellm: Any, model: str) -> bool:
    """Whether litellm's bundled price list knows `model` (asked once per model)."""
    known = _priced.get(model)
    if known is None:
        try:
            litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=1)
            known = True
        except Exception:  # litellm raises for a model it has no price for
            known = False
        _priced[model] = known
    return known


def _missing_keys(litellm: Any, model: str) -> list[str]:
    # Not memoised: it is cheap (~10 us) and a key exported or removed later must be seen.
    try:
        env = litellm.validate_environment(model=model)
    except Exception:  # litellm cannot tell for this provider: let the call itself decide
        return []
    return [str(key) for key in env.get("missing_keys", [])]


def _result(response: Any, call: LLMCall, latency: float) -> LLMResult:
    choices = getattr(response, "choices", None)
    if not choices:
        raise BackendError("transient", f"{call.model}: reply had no choices")
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if not isinstance(text, str):
        raise BackendError("transient", f"{call.model}: reply had no message content")
    from .replycap import reply_limit

    limit = reply_limit(call.max_tokens)
    if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise BackendError(
            "oversize",
            f"{call.model}: reply of {len(text.encode('utf-8', 'surrogatepass'))} bytes is over "
            f"the limit of {limit} bytes for max_tokens {call.max_tokens}; not kept",
        )
    usage = getattr(response, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    return LLMResult(
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=_cost(response, call.model, prompt_tokens, completion_tokens),
        model=call.model,
        latency_s=latency,
    )


def _cost(response: Any, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """litellm's own price of this reply (documented ``_hidden_params["response_cost"]``,
    computed once per call anyway; ``None`` for an unpriced model); `estimate_cost` only
    when litellm left no such entry."""
    hidden = getattr(response, "_hidden_params", None)
    if isinstance(hidden, dict) and "response_cost" in hidden:
        cost = hidden["response_cost"]
        if cost is None:
            return 0.0
        if isinstance(cost, int | float) and math.isfinite(cost) and cost >= 0:
            return float(cost)
    return estimate_cost(model, prompt_tokens, completion_tokens)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _detail(exc: BaseException) -> str:
    """First line of an exception message, without litellm's class prefix and debug tail."""
    text = str(getattr(exc, "message", None) or exc or type(exc).__name__)
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return _PREFIXES.sub("", line)[:_MAX_DETAIL] or type(exc).__name__


def _classify(exc: Exception, call: LLMCall) -> BackendError:
    """Map any exception raised under litellm to a `BackendError` kind and a clear message."""
    import httpx
    import openai

    from .replycap import ReplyTooLarge

    pool = call.router if call.pooled else None
    where = call.api_base or "the provider"
    if pool is not None:
        where = f"a deployment of the pool in {os.path.basename(pool.source)}"
    for inner in _chain(exc):
        if isinstance(inner, BackendError):  # raised by our own providers, wrapped by litellm
            return inner
        if isinstance(inner, ReplyTooLarge):
            return BackendError(
                "oversize",
                f"{call.model}: {inner} for max_tokens {call.max_tokens} from {where}; "
                "stopped reading, not kept",
            )
        if pool is not None and type(inner).__name__ == "RouterRateLimitError":
            # litellm.types.router.RouterRateLimitError: every deployment is cooling down.
            wait = getattr(inner, "cooldown_time", None)
            wait = float(wait) if isinstance(wait, int | float) and wait >= 0 else None
            return BackendError(
                "rate_limit",
                f"{call.model}: every deployment of the pool is cooling down"
                + (f" (for up to {wait:g} s)" if wait is not None else ""),
                wait,
            )
    chain = list(_chain(exc))
    if any(
        isinstance(e, httpx.ConnectError | ConnectionRefusedError | socket.gaierror) for e in chain
    ):
        if pool is not None:  # one deployment is down: the router cools it down, others serve
            return BackendError("transient", f"{call.model}: cannot reach {where}")
        return BackendError("fatal", f"{call.model}: cannot reach the server at {where}")
    if any(isinstance(e, openai.APITimeoutError | httpx.TimeoutException) for e in chain):
        return BackendError("timeout", f"{call.model}: {where} did not answer in time")
    # litellm reports unparsable or cut-off bodies as status 500: look at the cause first.
    if any(isinstance(e, json.JSONDecodeError) for e in chain):
        return BackendError("transient", f"{call.model}: malformed JSON reply from {where}")
    if any(
        isinstance(e, httpx.ReadError | httpx.RemoteProtocolError | ConnectionError) for e in chain
    ):
        return BackendError(
            "transient", f"{call.model}: connection to {where} broke mid-reply (truncated body)"
        )
    status = getattr(exc, "status_code", None)
    detail = _detail(exc)
    if isinstance(exc, openai.RateLimitError) or status == 429:
        return BackendError(
            "rate_limit", f"{call.model}: rate limited by {where}: {detail}", _retry_after(exc)
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError) or status in (
        401,
        403,
    ):
        return BackendError(
            "fatal", f"{call.model}: authentication failed at {where} (check the API key): {detail}"
        )
    if isinstance(exc, openai.NotFoundError) or status == 404:
        return BackendError("fatal", f"{call.model}: model not found at {where}: {detail}")
    if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError) or status in (
        400,
        413,
        422,
    ):
        return BackendError("fatal", f"{call.model}: request rejected by {where}: {detail}")
    if isinstance(status, int) and status >= 500:
        return BackendError("transient", f"{call.model}: server error {status} at {where}")
    if any(isinstance(e, httpx.HTTPError) for e in chain):
        return BackendError("transient", f"{call.model}: HTTP error talking to {where}: {detail}")
    if isinstance(exc, openai.OpenAIError):
        return BackendError("transient", f"{call.model}: {detail}")
    # Not a provider error at all: a bug or misuse, and retrying would not help.
    return BackendError("fatal", f"{call.model}: unexpected {type(exc).__name__}: {detail}")


def _retry_after(exc: Exception) -> float | None:
    for source in (
        getattr(exc, "headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    ):
        if not source:
            continue
        try:
            value = source.get("retry-after") or source.get("Retry-After")
            return float(value) if value is not None else None
        except (TypeError, ValueError, AttributeError):
            continue
    return None


# ------------------------------------------------------- log-probabilities of reply tokens
# Used by the judge (runtime/judge.py), kept apart from `acomplete` on purpose.


@dataclass(frozen=True, slots=True)
class TokenChoices:
    """One position of a reply: the token generated there and the most likely tokens at that
    position with their log-probabilities (most likely first)."""

    token: str
    top: tuple[tuple[str, float], ...]


async def acomplete_logprobs(
    call: LLMCall, top: int = 5
) -> tuple[LLMResult, tuple[TokenChoices, ...] | None]:
    """`acomplete` asking for log-probabilities (``logprobs=True, top_logprobs=top``).

    Returns the result and the choices at every position of the reply, or ``None`` when the
    provider sent none (litellm drops the parameters for providers without them, and the
    in-process providers have none).  Errors, credential masking and the reply bound are those
    of `acomplete`.
    """
    from .secrets import mask_known

    secrets = call.secrets()
    result, response = await _masked(call, {"logprobs": True, "top_logprobs": top})
    choices = _token_choices(response)
    if choices is not None:
        choices = tuple(
            TokenChoices(
                mask_known(c.token, secrets),
                tuple((mask_known(tok, secrets), lp) for tok, lp in c.top),
            )
            for c in choices
        )
    return result, choices


def _field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``: litellm hands over objects or plain dicts."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _token_choices(response: Any) -> tuple[TokenChoices, ...] | None:
    """The per-token choices of the first choice of `response`, or None if there are none."""
    try:
        logprobs = _field(response.choices[0], "logprobs")
    except (AttributeError, IndexError, TypeError):
        return None
    content = _field(logprobs, "content") if logprobs is not None else None
    if not content:
        return None
    out = []
    for position in content:
        token = _field(position, "token")
        if not isinstance(token, str):
            continue
        top = []
        for entry in _field(position, "top_logprobs") or ():
            tok, lp = _field(entry, "token"), _field(entry, "logprob")
            if isinstance(tok, str) and isinstance(lp, int | float) and math.isfinite(lp):
                top.append((tok, float(lp)))
        lp_own = _field(position, "logprob")
        if not top and isinstance(lp_own, int | float) and math.isfinite(lp_own):
            top.append((token, float(lp_own)))
        top.sort(key=lambda kv: -kv[1])
        out.append(TokenChoices(token, tuple(top)))
    return tuple(out) or None
