"""Bounded replies: a reply body is never read past a size derived from ``max_tokens``.

A model's reply is at most ``max_tokens`` tokens, so a body much larger than that is a broken
or hostile server, and an endless one would otherwise grow memory until the process dies.
:func:`reply_limit` is the bound (``REPLY_BYTES_PER_TOKEN`` bytes per token plus
``REPLY_MARGIN_BYTES`` for the JSON envelope).

For HTTP models of provider ``openai`` (the OpenAI API and every OpenAI-compatible server
given with ``--api-base``) the bound is enforced *while reading*: litellm is handed an
``AsyncOpenAI`` client (its documented ``client=`` argument) whose httpx client checks the
declared ``Content-Length`` before reading and counts the body's bytes as they arrive
(compressed bodies are decoded here, in bounded steps, so a compression bomb counts at its
decoded size).  Past the bound the connection is dropped and :class:`ReplyTooLarge` ends the
call.  For every other provider the size of the reply text is checked once it has arrived
(:mod:`instraug_dsl.runtime.llm`), so nothing oversize is ever kept or written.

The bound applies only inside :func:`bounded` (a context variable), so the clients are
shared by every call of one event loop whatever its ``max_tokens``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
import zlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any, cast

import httpx

#: Bytes of reply body allowed per requested token (JSON escapes make a token up to ~12).
REPLY_BYTES_PER_TOKEN = 16
#: Bytes allowed on top for the JSON envelope (ids, usage, headers of a proxy...).
REPLY_MARGIN_BYTES = 64 * 1024

_LIMIT: ContextVar[int | None] = ContextVar("iatc_reply_limit", default=None)
_DECODED = ("gzip", "x-gzip", "deflate")


def reply_limit(max_tokens: int) -> int:
    """The largest reply body (and reply text) accepted for ``max_tokens``, in bytes."""
    return max(0, max_tokens) * REPLY_BYTES_PER_TOKEN + REPLY_MARGIN_BYTES


class ReplyTooLarge(Exception):
    """A reply body is larger than the bound; reading stopped at ``seen`` bytes."""

    def __init__(self, limit: int, seen: int, *, declared: bool = False) -> None:
        if declared:
            text = f"reply body declares {seen} bytes, over the limit of {limit} bytes"
        else:
            text = f"reply body went past the limit of {limit} bytes"
        super().__init__(text)
        self.limit = limit
        self.seen = seen
        self.declared = declared


@contextlib.contextmanager
def bounded(limit: int) -> Iterator[None]:
    """Apply ``limit`` to every reply read by this task inside the block."""
    token = _LIMIT.set(limit)
    try:
        yield
    finally:
        _LIMIT.reset(token)


class _CappedStream(httpx.AsyncByteStream):
    """The body of one response, decoded if compressed, cut off past ``limit`` bytes."""

    def __init__(self, inner: Any, limit: int, decoder: Any = None) -> None:
        self._inner = inner
        self._limit = limit
        self._decoder = decoder
        self._seen = 0

    def _count(self, data: bytes) -> bytes:
        self._seen += len(data)
        if self._seen > self._limit:
            raise ReplyTooLarge(self._limit, self._seen)
        return data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            if self._decoder is None:
                yield self._count(chunk)
                continue
            data = chunk
            while data:
                try:  # never more than one byte past the limit per step
                    out = self._decoder.decompress(data, self._limit - self._seen + 1)
                except zlib.error as exc:
                    raise httpx.DecodingError(
                        f"cannot decode the compressed reply: {exc}"
                    ) from None
                if out:
                    yield self._count(out)
                tail = self._decoder.unconsumed_tail
                if not out and tail == data:  # pragma: no cover  (zlib always progresses)
                    break
                data = tail
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                yield self._count(rest)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _on_request(request: httpx.Request) -> None:
    if _LIMIT.get() is not None:
        # Ask for the body as it is: what arrives is then what is counted.
        request.headers["Accept-Encoding"] = "identity"


async def _on_response(response: httpx.Response) -> None:
    limit = _LIMIT.get()
    if limit is None:
        return
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise ReplyTooLarge(limit, int(declared), declared=True)  # httpx closes the response
    encoding = response.headers.get("content-encoding", "").strip().lower()
    decoder = None
    if encoding and encoding != "identity":
        if encoding not in _DECODED:
            raise httpx.DecodingError(
                f"the server compressed its reply with {encoding!r} although iatc asked for "
                "none; iatc decodes only gzip and deflate"
            )
        decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib header, detected
        del response.headers["content-encoding"]  # decoded here, in bounded steps
    response.stream = _CappedStream(response.stream, limit, decoder)


# One AsyncOpenAI client per event loop and (base URL, key): httpx connections belong to the
# loop that opened them, and every run (``run_async``) has its own loop.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str | None, ...], Any]]
_clients = weakref.WeakKeyDictionary()


def openai_client(api_base: str | None, api_key: str | None, timeout: float) -> Any:
    """The bounded ``AsyncOpenAI`` client for this loop, base URL and key (made once)."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    base = (
        api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or None
    )
    key = (base, api_key)
    client = per_loop.get(key)
    if client is None:
        import openai

        http = httpx.AsyncClient(
            event_hooks={"request": [_on_request], "response": [_on_response]},
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            # aiohttp refuses credentials in the URL next to the Authorization header;
            # httpx sends them as Basic credentials, as before.
            transport=None if "@" in (base or "") else _transport(),
        )
        # The SDK takes an httpx client as well as its own (httpx2) kind: litellm does the same.
        client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base,
            http_client=cast(Any, http),
            max_retries=0,
            timeout=timeout,
        )
        per_loop[key] = client
    return client


def _transport() -> Any:
    """litellm's own aiohttp transport, the one its default client uses (None: httpx's).

    httpx's connection pool spends milliseconds of CPU per request at a few dozen calls in
    flight (measured: bare calls at C=64 went from ~60 to ~20 per second on 2 cores with
    it), while litellm's aiohttp transport does not; the bound on replies is applied by the
    response hook above, whatever the transport."""
    try:
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

        return AsyncHTTPHandler.create_aiohttp_transport()
    except (ImportError, AttributeError):  # pragma: no cover  (another litellm layout)
        return None


async def aclose_clients() -> None:
    """Close the clients of the running loop (call before the loop closes)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # pragma: no cover
        return
    for client in _clients.pop(loop, {}).values():
        with contextlib.suppress(Exception):
            await client.close()
