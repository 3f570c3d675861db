"""An OpenAI-compatible chat-completions server on 127.0.0.1 for tests and benchmarks.

    with FakeServer(latency=0.1, fault_rate=0.2, seed=0) as srv:
        call = LLMCall(model="openai/fake", api_base=srv.base_url, ...)

It runs an asyncio server (stdlib only) in a background thread, so latency sleeps never block
other requests and hundreds of requests can be in flight. Replies are JSON arrays holding one
rewrite of the text between ``<instruction>`` tags, made by the offline rewriter with the
request's ``seed``.

Faults are picked deterministically per chat request: request ``n`` (0-based) uses
``script[n]`` when ``n < len(script)`` (``None`` or ``"ok"`` = no fault), otherwise
``Random(f"{seed}:{n}")`` draws a fault from ``faults`` with probability ``fault_rate``.
Fault names: see `HTTP_FAULTS`, `FATAL_FAULTS`, `HOSTILE_FAULTS` and `CONTENT_FAULTS`.

``mode="scripted"`` answers with a function of the request instead: ``reply(instruction,
reask)`` gets the protected instruction of the request's *first* user message (the text
between ``<instruction>`` tags, else the whole message) and, on a re-ask, the re-ask text
(``None`` on a first attempt), and returns the message content, or a `Fault` to answer
with that fault.  Replies then depend on the request alone, never on arrival order, so a
run against the scripted server is deterministic at any concurrency.

``judge=`` answers judge requests (any mode): ``judge(messages)`` returns the log-probabilities
of the first reply token's alternatives (``{"Yes": -0.2, "No": -1.7}``), or ``None`` for a
request that is not a judge's.  The reply's content is the most likely of them, and a request
with ``logprobs: true`` gets them back as OpenAI does (``choices[0].logprobs.content[0]``, its
``top_logprobs`` cut to the requested ``top_logprobs``); ``logprobs=False`` makes a server that
ignores the parameter (``"logprobs": null``, as many providers do).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from instraug_dsl.runtime import offline

HTTP_FAULTS = (
    "rate_limit",  # 429 with Retry-After
    "server_error",  # 500
    "timeout",  # sleeps `hang_s` (longer than any sane client timeout) before answering
    "malformed_json",  # 200 with a body that is not JSON
    "truncated",  # Content-Length larger than the bytes sent, then the connection closes
    "empty_choices",  # 200, valid JSON, "choices": []
)
# Never drawn by default; name them in `faults` or `script` to test fatal-error mapping.
FATAL_FAULTS = ("unauthorized", "bad_request")  # 401, 400
# A hostile or broken server; never drawn by default either.
HOSTILE_FAULTS = (
    "huge",  # 200, a valid completion whose content is `huge_bytes` long (Content-Length set)
    "endless",  # 200, chunked body that never ends (until the client hangs up)
    "echo_key",  # 401 whose error message repeats the Authorization header and the URL
)
CONTENT_FAULTS = offline.CHAOS_MODES  # a valid HTTP reply whose content is a broken rewrite
DEFAULT_FAULTS = HTTP_FAULTS + (
    "drop_token",
    "duplicate_token",
    "invent_token",
    "python_payload",
    "template_payload",
)
MODES = ("rewrite", "echo", "fixed", "scripted")


@dataclass(frozen=True)
class Fault:
    """A scripted reply that is a fault (any name of `HTTP_FAULTS` or `FATAL_FAULTS`)."""

    name: str


#: ``reply(instruction, reask)`` of ``mode="scripted"``: the message content or a `Fault`.
Script = Callable[[str, str | None], str | Fault]
#: ``judge(messages)``: the first token's alternatives with log-probabilities, or None.
JudgeScript = Callable[[list[dict[str, Any]]], dict[str, float] | None]
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class FakeServer:
    """A background OpenAI-compatible server; use as a context manager.

    Args:
        latency: seconds every request waits before its reply (non-blocking).
        fault_rate: probability that a request (beyond `script`) gets a fault.
        seed: makes the fault sequence reproducible.
        faults: the fault names drawn from (`DEFAULT_FAULTS`; any of `HTTP_FAULTS` or
            `CONTENT_FAULTS`, or `FATAL_FAULTS`).
        script: explicit faults for the first requests, e.g. ``["rate_limit", None]``.
        mode: ``rewrite`` (default), ``echo`` (instruction unchanged), ``fixed`` (`content`
            verbatim as the message content) or ``scripted`` (`reply` decides).
        content: the message content for ``mode="fixed"``.
        reply: the `Script` of ``mode="scripted"``.
        hang_s: how long the ``timeout`` fault sleeps.
        retry_after: the Retry-After value (seconds) sent with 429.
        huge_bytes: the content length of the ``huge`` fault.
        hold: while true, every chat request waits before its reply (set the attribute to
            False to release them): a run that is certainly in the middle of a call.
        judge: answers judge requests with log-probabilities (see the module docstring).
        logprobs: whether log-probabilities are sent back when a request asks for them.

    Attributes after start: ``base_url`` (``http://127.0.0.1:PORT/v1``), ``requests`` (chat
    requests received), ``log`` (one dict per chat request: ``n``, ``body``, ``fault``,
    ``headers``), ``body_bytes`` (bytes of reply bodies written so far).
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        seed: int = 0,
        faults: Sequence[str] = DEFAULT_FAULTS,
        script: Sequence[str | None] = (),
        mode: str = "rewrite",
        content: str | None = None,
        reply: Script | None = None,
        hang_s: float = 30.0,
        retry_after: float = 1.0,
        huge_bytes: int = 10_000_000,
        hold: bool = False,
        judge: JudgeScript | None = None,
        logprobs: bool = True,
    ) -> None:
        unknown = [
            f
            for f in [*faults, *script]
            if f not in (*HTTP_FAULTS, *FATAL_FAULTS, *HOSTILE_FAULTS, *CONTENT_FAULTS, None, "ok")
        ]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}")
        if mode not in MODES or (mode == "fixed") != (content is not None):
            raise ValueError(f"mode must be one of {MODES}; content is given iff mode='fixed'")
        if (mode == "scripted") != (reply is not None):
            raise ValueError("reply is given iff mode='scripted'")
        self.latency, self.fault_rate, self.seed = latency, fault_rate, seed
        self.faults, self.script = tuple(faults), tuple(script)
        self.mode, self.content, self.reply = mode, content, reply
        self.hang_s, self.retry_after, self.huge_bytes = hang_s, retry_after, huge_bytes
        self.hold = hold
        self.judge, self.logprobs = judge, logprobs
        self.requests = 0
        self.body_bytes = 0
        self.log: list[dict[str, Any]] = []
        self.port = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving in a daemon thread; returns once the port is bound."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                server = loop.run_until_complete(
                    asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
                )
                self.port = server.sockets[0].getsockname()[1]
            except BaseException as exc:  # report bind failures to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                server.close()
                for task in list(self._tasks):
                    task.cancel()
                loop.run_until_complete(self._drain())
                loop.run_until_complete(server.wait_closed())
                loop.close()

        self._thread = threading.Thread(target=run, name="FakeServer", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]

    def stop(self) -> None:
        """Stop the server, cancelling requests still in flight."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = self._thread = None

    async def _drain(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def fault_for(self, n: int) -> str | None:
        """The fault that chat request number ``n`` gets (deterministic)."""
        if n < len(self.script):
            fault = self.script[n]
            return None if fault in (None, "ok") else fault
        rng = random.Random(f"{self.seed}:{n}")
        if self.faults and rng.random() < self.fault_rate:
            return rng.choice(self.faults)
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            # Only stop() cancels. Returning normally avoids asyncio 3.11's stream callback
            # calling task.exception() on a cancelled task and logging a spurious traceback.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; False when the connection must close."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        raw = await reader.readexactly(int(headers.get("content-length", "0")))
        keep_alive = headers.get("connection", "").lower() != "close"
        if method == "GET" and path.rstrip("/").endswith("/models"):
            body = {
                "object": "list",
                "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "fakeserver"}],
            }
            await self._send(writer, 200, json.dumps(body).encode())
            return keep_alive
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            # Like many servers, the error repeats the path it was asked for (query included).
            message = {"error": {"message": f"not found: {method} {path}"}}
            await self._send(writer, 404, json.dumps(message).encode())
            return keep_alive
        with self._lock:
            n = self.requests
            self.requests += 1
        try:
            request = json.loads(raw)
        except ValueError:
            await self._send(writer, 400, b'{"error": {"message": "body is not JSON"}}')
            return keep_alive
        fault = self.fault_for(n)
        scripted: str | None = None
        if self.mode == "scripted" and fault is None:
            answer = self._scripted(request)
            if isinstance(answer, Fault):
                if answer.name not in (*HTTP_FAULTS, *FATAL_FAULTS, *HOSTILE_FAULTS):
                    raise ValueError(f"unknown scripted fault {answer.name!r}")
                fault = answer.name
            else:
                scripted = answer
        with self._lock:
            self.log.append({"n": n, "body": request, "fault": fault, "headers": headers})
        await asyncio.sleep(self.latency)
        while self.hold:
            await asyncio.sleep(0.01)
        if fault == "echo_key":  # a careless server: its error repeats what it was sent
            message = (
                f"Incorrect API key provided: {headers.get('authorization', '')}; "
                f"request was POST http://{headers.get('host', '')}{path}"
            )
            await self._send(writer, 401, json.dumps({"error": {"message": message}}).encode())
            return keep_alive
        if fault == "endless":
            await self._endless(writer)
            return False
        return await self._reply(writer, request, n, fault, scripted) and keep_alive

    async def _endless(self, writer: asyncio.StreamWriter) -> None:
        """A 200 reply whose chunked body never ends: stops only when the client hangs up."""
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        writer.write(head.encode("latin-1"))
        start = b'{"id": "chatcmpl-endless", "choices": [{"index": 0, "message": {"content": "'
        chunk = b"x" * 65536
        for data in (start, *(chunk for _ in range(1 << 20))):  # 64 GB: "never"
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()  # raises once the client has gone
            with self._lock:
                self.body_bytes += len(data)

    def _scripted(self, request: dict[str, Any]) -> str | Fault:
        """Ask the script: the first user message's instruction, and the re-ask if any."""
        assert self.reply is not None
        messages = request.get("messages") or []
        users = [m for m in messages if m.get("role") == "user"]
        instruction = offline.extract_instruction(users[:1])
        asked_again = any(m.get("role") == "assistant" for m in messages)
        reask = str(users[-1].get("content", "")) if asked_again and users else None
        return self.reply(instruction, reask)

    async def _reply(
        self,
        writer: asyncio.StreamWriter,
        request: dict[str, Any],
        n: int,
        fault: str | None,
        scripted: str | None = None,
    ) -> bool:
        if fault == "rate_limit":
            error = {
                "error": {
                    "message": "Rate limit reached",
                    "type": "rate_limit_error",
                    "code": "rate_limit_exceeded",
                }
            }
            await self._send(
                writer, 429, json.dumps(error).encode(), {"Retry-After": f"{self.retry_after:g}"}
            )
            return True
        if fault == "server_error":
            error = {"error": {"message": "internal error", "type": "server_error"}}
            await self._send(writer, 500, json.dumps(error).encode())
            return True
        if fault in FATAL_FAULTS:
            status = 401 if fault == "unauthorized" else 400
            error = {"error": {"message": f"fake {fault}", "type": "invalid_request_error"}}
            await self._send(writer, status, json.dumps(error).encode())
            return True
        if fault == "timeout":
            await asyncio.sleep(self.hang_s)
        if fault == "malformed_json":
            await self._send(writer, 200, b'{"id": "chatcmpl-broken", "choices": [{"index": 0,')
            return True
        body = json.dumps(self._completion(request, n, fault, scripted)).encode()
        if fault == "truncated":
            await self._send(writer, 200, body[: len(body) // 2], content_length=len(body))
            return False  # closing mid-body is the fault
        await self._send(writer, 200, body)
        return True

    def _completion(
        self, request: dict[str, Any], n: int, fault: str | None, scripted: str | None = None
    ) -> dict[str, Any]:
        messages = request.get("messages") or []
        instruction = offline.extract_instruction(messages)
        seed = request.get("seed")
        seed = seed if isinstance(seed, int) else n
        judged = self.judge(list(messages)) if self.judge is not None else None
        token_logprobs: dict[str, Any] | None = None
        if judged is not None and fault not in CONTENT_FAULTS and fault != "huge":
            ranked = sorted(judged.items(), key=lambda kv: -kv[1])
            scripted = ranked[0][0]
            if request.get("logprobs") and self.logprobs:
                k = int(request.get("top_logprobs") or 0)
                token_logprobs = {
                    "content": [
                        {
                            "token": ranked[0][0],
                            "logprob": ranked[0][1],
                            "bytes": None,
                            "top_logprobs": [
                                {"token": t, "logprob": lp, "bytes": None} for t, lp in ranked[:k]
                            ],
                        }
                    ]
                }
        if fault in CONTENT_FAULTS:
            content = offline.corrupt(instruction, seed, fault)
        elif scripted is not None:
            content = scripted
        elif fault == "huge":
            content = "x" * self.huge_bytes
        elif self.mode == "fixed":
            content = self.content or ""
        elif self.mode == "echo":
            content = json.dumps([instruction], ensure_ascii=False)
        else:
            content = json.dumps([offline.rewrite(instruction, seed)], ensure_ascii=False)
        choices = (
            []
            if fault == "empty_choices"
            else [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": token_logprobs,
                }
            ]
        )
        prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion = len(content.split())
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(request.get("model", "fake")),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        extra: dict[str, str] | None = None,
        content_length: int | None = None,
    ) -> None:
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(body) if content_length is None else content_length),
            **(extra or {}),
        }
        self.body_bytes += len(body)
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
