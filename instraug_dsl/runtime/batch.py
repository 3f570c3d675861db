"""Batch files: a run's calls as an OpenAI Batch input file, and the results read back.

A provider's batch API (OpenAI's, and the others that read its format; ``vllm run-batch``
offline) answers a file of requests within hours at a lower price.  A run goes through it in
*batch rounds*, each one a cache-only replay of the run (`EngineConfig.cache_only`: nothing is
sent) over the replies obtained so far:

1. ``iatc compile SRC --format openai-batch -o round-1.jsonl`` writes the first attempt of
   every request: exactly the calls a replay with an empty cache misses (`first_batch_async`).
2. ``iatc augment SRC --from-batch RESULTS.jsonl -o RUN`` reads the results
   (`read_results`), replays the run with them as `Engine.supplied` (each one used is stored
   in ``RUN/cache.sqlite`` as if the call had just been made) and writes the run directory
   and the calls the replay still misses (re-asks, next attempts, MIns+_Iter's derived rounds,
   the judge) as ``RUN/batch/round-K.jsonl`` (`ingest_async`).  When nothing is missing, the
   run is complete: its files are those of a direct run whose model answered the same.

A line's ``custom_id`` is the call's cache key, so a result answers the one call it was asked
for, whatever order the lines come back in.  Batch calls carry no decoding constraint
(``--constrain off``: a batch body has no ``extra_body``): their keys are those of a direct
run with ``--constrain off``.  Results are data: each reply is bounded like a direct reply
(:mod:`.replycap`), never evaluated.  An error line (or a non-200 status) is a record: its
call stays missing and goes to the next round; a malformed line stops the ingest with a
`DataError` naming ``file:line`` and the field, before anything is written.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..contract.run import RunDir
from ..errors import DataError, OutputError, UsageError
from ..fsio import describe_os_error, json_kind, json_line, scratch_dir, write_text
from ..lang.model import Catalog
from . import llm
from .augment import AugmentOptions, AugmentResult, augment_async, prepare
from .cache import CachedCall, CallCache
from .constrain import provider_of
from .judge import TOP_LOGPROBS, score_choices
from .progress import Progress
from .replycap import REPLY_MARGIN_BYTES, reply_limit
from .secrets import env_secrets, mask_known, redact

#: The endpoint every line asks (OpenAI's Batch API and ``vllm run-batch``).
BATCH_URL = "/v1/chat/completions"
#: Where a run directory keeps the batch files it writes (``round-K.jsonl``).
BATCH_FOLDER = "batch"
#: The round of the file ``iatc compile --format openai-batch`` writes; a run directory's
#: rounds follow it (2, 3, ...).
FIRST_ROUND = 1
#: Result lines shown (with their message) when some are errors or unknown.
SHOWN = 3
#: Characters kept of a result's error message.
_MESSAGE_CHARS = 300
#: A results line may be this many times the reply bound (JSON escapes, the envelope,
#: log-probabilities), plus the margin.
_LINE_FACTOR = 8
_ROUND = re.compile(r"^round-(\d+)(\.judge)?\.jsonl$")
_CUSTOM_ID = re.compile(rb'"custom_id"\s*:\s*"([^"\\]{1,512})"')


@dataclass(frozen=True, slots=True)
class BatchCall:
    """One line of a batch file: the call's cache key and the call as it would be sent;
    ``top_logprobs`` asks for log-probabilities (a judge call)."""

    key: str
    call: llm.LLMCall
    top_logprobs: int | None = None


@dataclass(frozen=True, slots=True)
class BatchReply:
    """One successful result: the reply text and usage, and (a judge's) log-probabilities."""

    key: str
    where: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    choices: tuple[llm.TokenChoices, ...] | None = None


@dataclass(frozen=True, slots=True)
class BatchFailure:
    """A result line that is an error (or a reply that cannot be kept): its call stays
    missing and goes to the next round."""

    key: str | None
    where: str
    message: str

    def describe(self) -> str:
        """``file:line custom_id KEY: message``."""
        name = f" custom_id {self.key}" if self.key else ""
        return f"{self.where}{name}: {self.message}"


@dataclass(frozen=True)
class BatchResults:
    """Every results file of one ingest, read: replies by key (the first success of a key
    wins) and the error lines whose key got no reply."""

    replies: dict[str, BatchReply]
    failures: tuple[BatchFailure, ...]
    lines: int


@dataclass(frozen=True)
class BatchFile:
    """A batch input file written by ``iatc compile --format openai-batch``."""

    path: Path
    calls: int
    plan: str
    model: str


@dataclass(frozen=True)
class BatchRound:
    """What one ``iatc augment --from-batch`` did.

    ``augment`` is the run written (requests still waiting for their call are ``failed``
    with kind ``missing``); ``next_batch`` the files of the calls still missing (empty when
    the run is complete); ``ingested`` how many results were used and stored in the cache;
    ``failures`` the error lines; ``unknown`` results that are no call of this run."""

    augment: AugmentResult
    next_batch: tuple[Path, ...]
    waiting: int
    judge_waiting: int
    ingested: int
    failures: tuple[BatchFailure, ...]
    unknown: tuple[BatchReply, ...]

    @property
    def complete(self) -> bool:
        """True when no call is missing: the run is the same as a direct run's."""
        return not self.waiting and not self.judge_waiting


# ------------------------------------------------------------------ writing


def provider_model(model: str) -> str:
    """The model name a provider knows: the litellm name without its provider prefix
    (``openai/gpt-4o-mini`` -> ``gpt-4o-mini``, ``hosted_vllm/Qwen/Qwen2.5-7B`` ->
    ``Qwen/Qwen2.5-7B``)."""
    return model.split("/", 1)[1] if "/" in model else model


def batch_line(entry: BatchCall) -> dict[str, Any]:
    """The batch input line of one call (``custom_id`` is its cache key)."""
    call = entry.call
    if call.constraint is not None:  # pragma: no cover  (batch options turn constraints off)
        raise ValueError("a batch line carries no decoding constraint")
    body: dict[str, Any] = {
        "model": provider_model(call.model),
        "messages": [{"role": m["role"], "content": m["content"]} for m in call.messages],
        "temperature": call.temperature,
        "top_p": call.top_p,
        "max_tokens": call.max_tokens,
    }
    if call.seed is not None:
        body["seed"] = call.seed
    if entry.top_logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = entry.top_logprobs
    return {"custom_id": entry.key, "method": "POST", "url": BATCH_URL, "body": body}


def batch_text(calls: Sequence[BatchCall]) -> str:
    """A batch file's text: one line per call, sorted keys, in the order given."""
    return "".join(json_line(batch_line(c)) + "\n" for c in calls)


def calls_of(result: AugmentResult) -> list[BatchCall]:
    """The calls a cache-only run missed, as batch lines: the generation calls in the order
    the run met them, then the judge's (asked with log-probabilities)."""
    calls = [BatchCall(m.key, m.call) for m in result.missing]
    calls += [BatchCall(key, call, TOP_LOGPROBS) for key, call in result.missing_judge_calls]
    return calls


def write_batch(path: Path, calls: Sequence[BatchCall]) -> None:
    """Write a batch input file atomically."""
    if path.is_dir():
        raise OutputError(f"{path} is a folder; -o needs the batch file's name")
    write_text(path, batch_text(calls))


# ------------------------------------------------------------------ reading


def read_results(paths: Sequence[Path], *, max_tokens: int) -> BatchResults:
    """Read OpenAI batch output files (``vllm run-batch`` writes the same lines).

    A reply is bounded like a direct one (`reply_limit` of ``max_tokens``, the largest a
    call of the run asks for) and its lines while they are read; known credentials are
    masked.  A malformed line is a `DataError` naming ``file:line`` and the field.
    """
    replies: dict[str, BatchReply] = {}
    failures: list[BatchFailure] = []
    lines = 0
    limit = reply_limit(max_tokens)
    secrets = env_secrets()
    cap = _LINE_FACTOR * limit + REPLY_MARGIN_BYTES
    for path in paths:
        for where, raw, head in _lines(path, cap):
            lines += 1
            if raw is None:
                found = _CUSTOM_ID.search(head)
                key = found.group(1).decode("utf-8", "replace") if found else None
                failures.append(BatchFailure(key, where, f"line over {cap} bytes; not kept"))
                continue
            outcome = _parse(where, raw, limit, secrets)
            if isinstance(outcome, BatchFailure):
                failures.append(outcome)
            elif outcome.key not in replies:
                replies[outcome.key] = outcome
    kept = tuple(f for f in failures if f.key is None or f.key not in replies)
    return BatchResults(replies, kept, lines)


def _lines(path: Path, cap: int) -> Iterator[tuple[str, str | None, bytes]]:
    """``(file:line, text, b"")`` of each non-blank line; ``(file:line, None, head)`` for a
    line over ``cap`` bytes, skipped (never held whole) but for its first bytes (``head``,
    where its custom_id is)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise UsageError(f"--from-batch {path}: no such file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({describe_os_error(exc)})") from None
    with handle:
        number = 0
        while True:
            chunk = handle.readline(cap + 1)
            if not chunk:
                return
            number += 1
            where = f"{path}:{number}"
            if len(chunk) > cap:
                head = chunk[:4096]
                while chunk and not chunk.endswith(b"\n"):
                    chunk = handle.readline(cap + 1)
                yield where, None, head
                continue
            if not chunk.strip():
                continue
            try:
                yield where, chunk.decode("utf-8"), b""
            except UnicodeDecodeError:
                raise DataError(f"{where}: not UTF-8 text") from None


def _bad(where: str, field: str, expected: str, value: object) -> DataError:
    return DataError(f"{where}: {field}: expected {expected}, found {json_kind(value)}")


def _message(error: object) -> str:
    """A short message from an error object or text (OpenAI ``{code, message}``, vLLM text)."""
    if isinstance(error, Mapping):
        inner = error.get("error")
        if isinstance(inner, Mapping):  # an error body: {"error": {...}}
            return _message(inner)
        text = error.get("message")
        code = error.get("code")
        parts = [str(p) for p in (code, text) if isinstance(p, str | int) and str(p)]
        return ": ".join(parts) or json.dumps(error, sort_keys=True)[:_MESSAGE_CHARS]
    return str(error)


def _parse(where: str, raw: str, limit: int, secrets: list[str]) -> BatchReply | BatchFailure:
    """One results line: a reply, a failure record, or a `DataError` (malformed)."""
    try:
        line = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply") from None
    if not isinstance(line, dict):
        raise DataError(
            f"{where}: expected a JSON object (a batch result), found {json_kind(line)}"
        )
    key = line.get("custom_id")
    if not isinstance(key, str) or not key:
        raise _bad(where, "custom_id", "a non-empty string", key)
    response = line.get("response")
    error = line.get("error")

    def failed(message: str) -> BatchFailure:
        return BatchFailure(key, where, redact(message, secrets)[:_MESSAGE_CHARS])

    if response is not None and not isinstance(response, dict):
        raise _bad(where, "response", "an object or null", response)
    if error is not None:
        return failed(_message(error))
    if response is None:
        raise DataError(f"{where}: response: missing, and the line has no error either")
    status = response.get("status_code", 200)
    if not isinstance(status, int) or isinstance(status, bool):
        raise _bad(where, "response.status_code", "an integer", status)
    body = response.get("body")
    if status != 200:
        detail = _message(body) if body is not None else "no body"
        return failed(f"HTTP {status}: {detail}")
    if not isinstance(body, dict):
        raise _bad(where, "response.body", "an object (a chat.completion)", body)
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise _bad(where, "response.body.choices", "a list", choices)
    if not choices:
        return failed("reply had no choices")
    first = choices[0]
    if not isinstance(first, dict):
        raise _bad(where, "response.body.choices[0]", "an object", first)
    message = first.get("message")
    if not isinstance(message, dict):
        raise _bad(where, "response.body.choices[0].message", "an object", message)
    text = message.get("content")
    if text is None:
        return failed("reply had no message content")
    if not isinstance(text, str):
        raise _bad(where, "response.body.choices[0].message.content", "a string", text)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        return failed(f"reply of {size} bytes is over the limit of {limit} bytes; not kept")
    usage = body.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise _bad(where, "response.body.usage", "an object or null", usage)
    tokens = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = (usage or {}).get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _bad(where, f"response.body.usage.{name}", "a non-negative integer", value)
        tokens.append(value)
    found = llm.token_choices(body)
    if found is not None:
        found = tuple(
            llm.TokenChoices(
                mask_known(c.token, secrets),
                tuple((mask_known(tok, secrets), lp) for tok, lp in c.top),
            )
            for c in found
        )
    return BatchReply(key, where, mask_known(text, secrets), tokens[0], tokens[1], found)


# ------------------------------------------------------------------ supplying


class _Supply(Mapping[str, CachedCall]):
    """The results as a run's calls see them, converted when asked for (and remembered)."""

    def __init__(
        self, replies: Mapping[str, BatchReply], convert: Callable[[BatchReply], CachedCall]
    ) -> None:
        self._replies = replies
        self._convert = convert
        self.used: dict[str, CachedCall] = {}

    def __getitem__(self, key: str) -> CachedCall:
        found = self.used.get(key)
        if found is None:
            found = self.used[key] = self._convert(self._replies[key])
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._replies)

    def __len__(self) -> int:
        return len(self._replies)


def _generation(model: str) -> Callable[[BatchReply], CachedCall]:
    def convert(reply: BatchReply) -> CachedCall:
        cost = llm.batch_cost(model, reply.prompt_tokens, reply.completion_tokens)
        return CachedCall(reply.text, reply.prompt_tokens, reply.completion_tokens, cost, 0.0)

    return convert


def _judged(model: str) -> Callable[[BatchReply], CachedCall]:
    def convert(reply: BatchReply) -> CachedCall:
        cost = llm.batch_cost(model, reply.prompt_tokens, reply.completion_tokens)
        result = llm.LLMResult(
            reply.text, reply.prompt_tokens, reply.completion_tokens, cost, model, 0.0
        )
        score = score_choices(result, reply.choices)
        return CachedCall(score.payload(), reply.prompt_tokens, reply.completion_tokens, cost, 0.0)

    return convert


# ------------------------------------------------------------------ rounds


def batch_options(options: AugmentOptions) -> AugmentOptions:
    """``options`` for a batch round: cache only (nothing is sent), no decoding constraint
    (a batch body carries none), one process, the cache kept."""
    engine = replace(
        options.engine,
        cache_only=True,
        constrain="off",
        api_base=None,
        api_key=None,
        router=None,
        budget_usd=None,
    )
    return replace(options, engine=engine, workers=1, fresh=False)


def _batchable(model: str, what: str) -> None:
    if provider_of(model) == "embedded":
        raise UsageError(
            f"{what} {model} runs in process and has no batch API; run `iatc augment` "
            "without --from-batch (or name a remote model with --model)"
        )


async def first_batch_async(
    catalog: Catalog, out: Path, options: AugmentOptions, sources: Mapping[str, str] | None = None
) -> BatchFile:
    """Write the first batch file of a run: the calls a cache-only replay with an empty
    cache misses (every request's first attempt), replayed in a scratch folder."""
    options = batch_options(options)
    prepared = prepare(catalog, options, sources)
    _batchable(prepared.model, "the model")
    if out.is_dir():
        raise OutputError(f"{out} is a folder; -o needs the batch file's name")
    folder = scratch_dir("batch")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {describe_os_error(exc)}") from None
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        result = await augment_async(catalog, Path(scratch) / "run", options, Progress(), sources)
    calls = calls_of(result)
    write_batch(out, calls)
    return BatchFile(out, len(calls), prepared.plan.name, prepared.model)


async def ingest_async(
    catalog: Catalog,
    run_dir: Path,
    options: AugmentOptions,
    results: Sequence[Path],
    progress: Progress | None = None,
    sources: Mapping[str, str] | None = None,
) -> BatchRound:
    """Replay the run with the batch results ``results``; write the run directory and the
    next round's batch file(s) into ``RUN/batch/``.

    Results that are no call of this run (another run's, or a later round's given before
    the round it follows) are returned in ``unknown`` and not used; when *none* of the
    results is a call of the run, that is a `DataError` (and no batch file is written)."""
    if not results:
        raise UsageError("--from-batch needs at least one results file")
    options = batch_options(options)
    prepared = prepare(catalog, options, sources)
    _batchable(prepared.model, "the model")
    if prepared.judge is not None and prepared.judge_model is not None:
        _batchable(
            prepared.judge_model,
            f"judge `{prepared.judge.name}` (pass --judge none for the batch rounds) runs on",
        )
    largest = max((r.max_tokens for r in prepared.compiled.requests), default=0)
    read = read_results(results, max_tokens=max(largest, prepared.plan.max_tokens))
    generation = _Supply(read.replies, _generation(prepared.model))
    judged = _Supply(read.replies, _judged(prepared.judge_model or prepared.model))
    result = await augment_async(
        catalog,
        run_dir,
        options,
        progress,
        sources,
        supplied=generation,
        judge_supplied=judged,
    )
    used = set(generation.used) | set(judged.used)
    with CallCache(RunDir(run_dir).cache) as cache:
        unknown = tuple(
            r for k, r in read.replies.items() if k not in used and not cache.contains(k)
        )
    if read.replies and len(unknown) == len(read.replies):
        first = unknown[0]
        raise DataError(
            f"{first.where}: custom_id {first.key} is not a call of this run, nor is any of "
            f"the {len(unknown)} results: results of another run? --model, --plan, --tasks, "
            "--limit and the sources must be those the batch file was made with"
        )
    calls = calls_of(result)
    files = write_round(run_dir / BATCH_FOLDER, calls, prepared.model)
    return BatchRound(
        result,
        files,
        len(result.missing),
        len(result.missing_judge_calls),
        len(used),
        read.failures,
        unknown,
    )


def write_round(folder: Path, calls: Sequence[BatchCall], model: str) -> tuple[Path, ...]:
    """Write the next round's batch file(s) into ``folder``; returns their paths (none when
    nothing is missing).  One model per file (a provider's batch takes one): judge calls on
    another model than ``model`` go to ``round-K.judge.jsonl``.  When the latest round
    already holds exactly these calls (the same results ingested again), it is kept as it
    is and its paths returned."""
    if not calls:
        return ()
    main: list[BatchCall] = []
    judge: list[BatchCall] = []
    for c in calls:
        (main if c.call.model == model or c.top_logprobs is None else judge).append(c)
    wanted = {name: batch_text(group) for name, group in (("", main), (".judge", judge)) if group}
    rounds: dict[int, dict[str, Path]] = {}
    if folder.is_dir():
        for path in folder.iterdir():
            found = _ROUND.match(path.name)
            if found:
                rounds.setdefault(int(found.group(1)), {})[found.group(2) or ""] = path
    if rounds:
        latest = max(rounds)
        have = rounds[latest]
        if set(have) == set(wanted) and all(
            _read(have[name]) == text for name, text in wanted.items()
        ):
            return tuple(have[name] for name in sorted(have))
    number = max(rounds) + 1 if rounds else FIRST_ROUND + 1
    paths = []
    for name, text in sorted(wanted.items()):
        path = folder / f"round-{number}{name}.jsonl"
        write_text(path, text)
        paths.append(path)
    return tuple(paths)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
