"""The judge: a second model pass over the rewrites the validators accepted.

A plan's ``judge NAME`` (docs/language.md) asks a model, once per accepted rewrite, whether the
rewrite asks for exactly the same task as its original: what word-level rules cannot see (a task
change, a flipped polarity, swapped roles, an added constraint).  The decision is a number:

* **log-probabilities** (``method: logprob``): ``score = log P(yes) - log P(no)`` of the first
  answer token (every spelling of the word: ``yes``, ``Yes``, `` yes``...), and the rewrite is
  kept when ``score >= threshold``.  Embedded models are scored in process: the prompt is
  evaluated once and the next-token distribution read from llama.cpp's logits (no token is
  generated).  Other models are asked through litellm with ``logprobs=True, top_logprobs=5``;
  a word missing from the top 5 gets the 5th log-probability (an upper bound).
* **a generated answer** (``method: generated``) when the backend gives no log-probabilities:
  the reply's first word decides (``no``: judged out; ``yes`` or anything else: kept, since the
  judge only removes what it says is another task).  The threshold is not used.

Judge calls are cached in the run's ``cache.sqlite`` like generation calls (keyed by the model
and the exact messages, not the server's address, so the same pair is judged once per run and
never again on resume), and the verdicts are rebuilt from the cache in request order: a resumed
run writes the same ``judged.jsonl`` and ``instructions.jsonl``. A rewrite the judge could not
be asked about (transport errors after the retries, a budget stop) is held back as
``judge_failed``; a re-run asks again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..compile.judge import NO, YES, answer_word, render_judge
from ..contract.compiled import Message
from ..contract.run import (
    InstructionRow,
    JudgedRow,
    JudgeMethod,
    JudgeSummary,
    JudgeTaskCounts,
)
from ..errors import ProviderError
from ..lang.model import Catalog, JudgeSpec
from . import llm
from .cache import CachedCall, CallCache
from .limiter import AIMDLimiter
from .outcome import Outcome
from .router import RouterSpec

#: Bump when the judge's key recipe or stored payload changes: old entries then simply miss.
JUDGE_CACHE_VERSION = 2  # 2: the server's address left the key
#: Tokens a remote judge may generate: enough for "Yes." when log-probabilities are missing.
JUDGE_MAX_TOKENS = 4
#: Alternatives asked for at each position (OpenAI allows up to 20).
TOP_LOGPROBS = 5
#: Decimals kept of a score (so the files do not carry float noise).
SCORE_DECIMALS = 4
#: Characters kept of a generated answer.
ANSWER_CHARS = 40


@dataclass(frozen=True, slots=True)
class JudgeScore:
    """What one judge call said: a score (``logprob``) or a word (``generated``)."""

    method: JudgeMethod
    score: float | None
    answer: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0

    def keeps(self, threshold: float) -> bool:
        """Whether the rewrite is kept: score at least ``threshold``, or no "no" answer."""
        if self.score is not None:
            return self.score >= threshold
        return answer_word(self.answer) != NO

    def payload(self) -> str:
        """The cached form (JSON)."""
        return json.dumps(
            {"method": self.method, "score": self.score, "answer": self.answer},
            sort_keys=True,
            ensure_ascii=False,
        )

    @classmethod
    def from_cache(cls, hit: CachedCall) -> JudgeScore | None:
        """The score stored in ``hit``, or None if it is not a judge payload of ours."""
        try:
            data = json.loads(hit.text)
            method = data["method"]
            score = data["score"]
            answer = str(data["answer"])
        except (ValueError, KeyError, TypeError):
            return None
        if method not in ("logprob", "generated"):
            return None
        if score is not None and not (isinstance(score, int | float) and math.isfinite(score)):
            return None
        return cls(
            method,
            None if score is None else float(score),
            answer,
            hit.prompt_tokens,
            hit.completion_tokens,
            hit.cost_usd,
            hit.latency_s,
        )


# ------------------------------------------------------------------ scoring


def _word(token: str) -> str | None:
    """``yes``/``no`` when a token is exactly that word (case, spaces, punctuation aside)."""
    bare = token.strip().strip(".,:;!?*_\"'`()[]").lower()
    return bare if bare in (YES, NO) else None


def yes_no_score(top: Sequence[tuple[str, float]]) -> float | None:
    """log P(yes) - log P(no) from one position's top alternatives (every spelling summed).

    A word missing from the list gets the list's lowest log-probability (its own can only be
    lower); ``None`` when neither word is in the list.
    """
    mass: dict[str, list[float]] = {YES: [], NO: []}
    for token, logprob in top:
        word = _word(token)
        if word is not None:
            mass[word].append(logprob)
    if not mass[YES] and not mass[NO]:
        return None
    floor = min(lp for _, lp in top)
    yes = _logsumexp(mass[YES]) if mass[YES] else floor
    no = _logsumexp(mass[NO]) if mass[NO] else floor
    return yes - no


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def score_choices(result: llm.LLMResult, choices: Sequence[llm.TokenChoices] | None) -> JudgeScore:
    """A remote judge's reply: the log-probability score at its first word, else its text."""
    usage = (result.prompt_tokens, result.completion_tokens, result.cost_usd, result.latency_s)
    for position in choices or ():
        if not any(ch.isalnum() for ch in position.token):
            continue  # a leading space, newline or markup token: the answer comes after it
        score = yes_no_score(position.top)
        if score is not None:
            best = position.top[0][0].strip() if position.top else position.token.strip()
            return JudgeScore("logprob", round(score, SCORE_DECIMALS), best, *usage)
        break
    return JudgeScore("generated", None, result.text.strip()[:ANSWER_CHARS], *usage)


class _EmbeddedScorer:
    """Scores judge prompts with an in-process GGUF model: one forward pass over the whole
    prompt, then the next-token log-probabilities of every spelling of "yes" and "no"."""

    _lock = threading.Lock()
    _words: dict[int, dict[str, tuple[int, ...]]] = {}

    @classmethod
    def score(
        cls, model: str, messages: Sequence[Mapping[str, str]], timeout: float | None
    ) -> JudgeScore:
        from . import embedded

        deadline = None if timeout is None else time.monotonic() + timeout
        name = model.removeprefix("embedded/")
        slot = embedded._load(embedded.resolve_model_path(name))
        started = time.monotonic()
        with slot.lock:
            if deadline is not None and time.monotonic() > deadline:
                raise llm.BackendError("timeout", f"embedded/{name}: deadline passed while queued")
            words = cls._word_tokens(slot.llm)
            tokens = cls._prompt(slot, messages)
            if len(tokens) >= embedded.N_CTX - 1:
                raise llm.BackendError(
                    "fatal",
                    f"embedded/{name}: judge prompt is {len(tokens)} tokens; "
                    f"the context holds {embedded.N_CTX}",
                )
            try:
                logprobs = cls._next_token_logprobs(slot.llm, tokens)
            except RuntimeError as exc:  # llama_decode failures
                raise llm.BackendError(
                    "transient", f"embedded/{name}: llama.cpp error: {exc}"
                ) from None
        yes = _logsumexp([float(logprobs[i]) for i in words[YES]])
        no = _logsumexp([float(logprobs[i]) for i in words[NO]])
        best = int(logprobs.argmax())
        answer = slot.llm.detokenize([best]).decode("utf-8", "replace").strip()
        return JudgeScore(
            "logprob",
            round(yes - no, SCORE_DECIMALS),
            answer[:ANSWER_CHARS],
            prompt_tokens=len(tokens),
            latency_s=time.monotonic() - started,
        )

    @classmethod
    def _word_tokens(cls, model: Any) -> dict[str, tuple[int, ...]]:
        """Token ids that are exactly "yes" / "no" in some spelling (computed once a model)."""
        with cls._lock:
            found = cls._words.get(id(model))
            if found is not None:
                return found
            words: dict[str, set[int]] = {YES: set(), NO: set()}
            for word in (YES, NO):
                for spelling in (word, word.capitalize(), word.upper()):
                    for text in (spelling, " " + spelling):
                        ids = model.tokenize(text.encode("utf-8"), add_bos=False, special=False)
                        if len(ids) == 1:
                            words[word].add(int(ids[0]))
            if not words[YES] or not words[NO]:
                raise llm.BackendError(
                    "fatal", "the embedded model has no single token for 'yes' or 'no'"
                )
            found = {w: tuple(sorted(ids)) for w, ids in words.items()}
            cls._words[id(model)] = found
            return found

    @staticmethod
    def _prompt(slot: Any, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The prompt tokens with the model's own chat template, ready for the answer."""
        if slot.formatter is not None:
            text = slot.formatter(messages=[dict(m) for m in messages]).prompt
            return list(slot.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
        text = "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"
        return list(slot.llm.tokenize(text.encode("utf-8"), add_bos=True))

    @staticmethod
    def _next_token_logprobs(model: Any, tokens: list[int]) -> Any:
        """Evaluate ``tokens`` from an empty KV cache and return the log-softmax of the logits
        at the last position (a numpy array over the vocabulary).

        The prompt is always evaluated whole, never after a reused prefix: llama.cpp's kernels
        differ with the batch size, so a score computed after a cached prefix differs from a
        fresh one by up to a few tenths, and a verdict must not depend on which rewrite was
        judged before it (a resumed run would flip borderline verdicts).  Judge prompts are
        short, so the reuse saved little."""
        import numpy as np

        model.n_tokens = 0
        model.eval(tokens)
        logits = np.ctypeslib.as_array(model._ctx.get_logits(), shape=(model.n_vocab(),))
        logits = logits.astype(np.float64)
        top = float(logits.max())
        log_norm = top + math.log(float(np.exp(logits - top).sum()))
        return logits - log_norm


def _is_embedded(model: str) -> bool:
    return model.split("/", 1)[0] == "embedded"


async def score_messages(
    model: str,
    messages: Sequence[Mapping[str, str]],
    *,
    timeout: float,
    api_base: str | None = None,
    api_key: str | None = None,
    router: RouterSpec | None = None,
) -> JudgeScore:
    """One judge call (no cache, no retries): raises `llm.BackendError` on failure.  With
    `router`, a judge model that is one of its groups is asked through that pool."""
    if _is_embedded(model):
        return await asyncio.to_thread(_EmbeddedScorer.score, model, messages, timeout)
    call = judge_call(
        model, messages, timeout=timeout, api_base=api_base, api_key=api_key, router=router
    )
    result, choices = await llm.acomplete_logprobs(call, TOP_LOGPROBS)
    return score_choices(result, choices)


def judge_call(
    model: str,
    messages: Sequence[Mapping[str, str]],
    *,
    timeout: float = 120.0,
    api_base: str | None = None,
    api_key: str | None = None,
    router: RouterSpec | None = None,
) -> llm.LLMCall:
    """The call a remote judge is asked with (sent with ``logprobs=True,
    top_logprobs=TOP_LOGPROBS``): also the body of a judge call in a batch file."""
    return llm.LLMCall(
        model=model,
        messages=tuple(dict(m) for m in messages),
        temperature=0.0,
        top_p=1.0,
        max_tokens=JUDGE_MAX_TOKENS,
        seed=0,
        timeout=timeout,
        api_base=api_base,
        api_key=api_key,
        router=router,
    )


def judge_key(*, model: str, messages: Sequence[Mapping[str, str]]) -> str:
    """The cache key of a judge call: a SHA-256 over what shapes its answer."""
    payload = {
        "v": JUDGE_CACHE_VERSION,
        "kind": "judge",
        "model": model,
        "max_tokens": JUDGE_MAX_TOKENS,
        "top_logprobs": TOP_LOGPROBS,
        "messages": [[m["role"], m["content"]] for m in messages],
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------- runner


@dataclass(frozen=True, slots=True)
class Candidate:
    """An accepted rewrite to judge, with the original it is compared with."""

    row: InstructionRow
    original: str
    category: str = ""


def candidates(rows: Iterable[InstructionRow], catalog: Catalog) -> list[Candidate]:
    """One candidate per generated row; the original is the root's paraphrased part."""
    out = []
    for row in rows:
        task = catalog.tasks[row.task]
        root = (row.root or "").split("/", 1)[-1]
        original = next((i.body_text for i in task.instructions if i.name == root), "")
        out.append(Candidate(row, original, task.category))
    return out


@dataclass
class _Call:
    """One distinct judge call and what came of it."""

    key: str
    messages: tuple[Message, ...]
    score: JudgeScore | None = None
    error: str | None = None
    error_kind: str | None = None
    cached: bool = False


@dataclass
class JudgeRunner:
    """Judges accepted rewrites with a plan's judge, through the run's call cache.

    ``engine`` is the run's engine: the judge stops starting calls when it has stopped
    (budget, fatal error), and a judge's cost counts against the same budget.
    """

    spec: JudgeSpec
    model: str
    cache: CallCache
    engine: Any  # runtime.engine.Engine (not imported: the engine module stays independent)
    #: Where to say what the judge is doing (``None``: silent).
    notify: Callable[[str], None] | None = None
    calls_made: int = 0
    cache_hits: int = 0
    wall_time_s: float = 0.0
    rows: list[JudgedRow] = field(default_factory=list)
    #: With a cache-only engine: the keys of the judge calls the run needed and did not have.
    missing: list[str] = field(default_factory=list)
    #: Judge replies obtained elsewhere (a batch API's results, as cached payloads), by key:
    #: a call found here is stored in the cache as if it had just been made.
    supplied: Mapping[str, CachedCall] = field(default_factory=dict)
    _calls: dict[str, _Call] = field(default_factory=dict)
    _any_success: bool = False

    @property
    def kept(self) -> set[str]:
        """Row ids of the rewrites kept so far."""
        return {r.id for r in self.rows if r.verdict == "kept"}

    async def run(self, todo: Sequence[Candidate]) -> list[JudgedRow]:
        """Judge ``todo``; rows come back (and are recorded) in the order given."""
        started = time.monotonic()
        per_candidate: list[_Call] = []
        fresh: dict[str, _Call] = {}
        for cand in todo:
            messages = render_judge(
                self.spec, cand.original, cand.row.body or "", cand.row.task, cand.category
            )
            wire = [{"role": m.role, "content": m.content} for m in messages]
            key = judge_key(model=self.model, messages=wire)
            call = self._calls.get(key) or fresh.get(key)
            if call is None:
                call = fresh[key] = _Call(key, messages)
            per_candidate.append(call)
        try:
            await self._perform(list(fresh.values()))
        finally:
            self._calls.update(fresh)
            self.wall_time_s += time.monotonic() - started
        rows = [self._row(c, call) for c, call in zip(todo, per_candidate, strict=True)]
        self.rows.extend(rows)
        return rows

    def _api_base(self) -> str | None:
        return None if _is_embedded(self.model) else self.engine.config.api_base

    async def _perform(self, calls: list[_Call]) -> None:
        pending = []
        for call in calls:
            hit = self.cache.get(call.key)
            score = JudgeScore.from_cache(hit) if hit is not None else None
            if score is not None:
                call.score, call.cached = score, True
                self.cache_hits += 1
            elif (given := self.supplied.get(call.key)) is not None and (
                score := JudgeScore.from_cache(given)
            ) is not None:
                self._store(call, score, given)
            else:
                pending.append(call)
        if not pending:
            return
        if self.engine.config.cache_only:  # replaying: nothing is sent
            for call in pending:
                call.error_kind = "missing"
                call.error = "not in the call cache (nothing is sent: cache only)"
            self.missing.extend(c.key for c in pending)
            return
        if self.notify is not None:
            self.notify(
                f"judge `{self.spec.name}` on {self.model}: {len(pending)} calls to make "
                f"({len(calls) - len(pending)} from the cache)"
            )
        config = self.engine.config
        ceiling = 1 if _is_embedded(self.model) else max(1, config.concurrency)
        limiter = AIMDLimiter(ceiling)
        queue: asyncio.Queue[_Call] = asyncio.Queue()
        for call in pending:
            queue.put_nowait(call)

        async def worker() -> None:
            while True:
                try:
                    call = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._one(call, limiter)

        workers = [asyncio.ensure_future(worker()) for _ in range(min(len(pending), ceiling))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        fatal = next((c for c in pending if c.error_kind == "fatal"), None)
        if fatal is not None and not self._any_success:
            raise ProviderError(f"judge `{self.spec.name}`: {fatal.error}")

    async def _one(self, call: _Call, limiter: AIMDLimiter) -> None:
        from .engine import backoff_delay

        engine = self.engine
        config = engine.config
        wire = [{"role": m.role, "content": m.content} for m in call.messages]
        tries = 0
        while True:
            if engine.stop_reason is not None:
                call.error_kind = "budget" if engine.stop_reason == "budget" else "fatal"
                call.error = f"not asked: the run stopped ({engine.stop_reason})"
                return
            tries += 1
            error: llm.BackendError | None = None
            async with limiter.slot() as slot:
                try:
                    score = await score_messages(
                        self.model,
                        wire,
                        timeout=config.timeout,
                        api_base=self._api_base(),
                        api_key=config.api_key,
                        router=config.router,
                    )
                except llm.BackendError as exc:
                    if exc.kind == "rate_limit":
                        slot.rate_limited()
                    else:
                        slot.neutral()
                    error = exc
            if error is None:
                stored = CachedCall(
                    score.payload(),
                    score.prompt_tokens,
                    score.completion_tokens,
                    score.cost_usd,
                    score.latency_s,
                )
                self._store(call, score, stored)
                return
            if error.kind in ("fatal", "oversize") or tries > config.max_retries:
                call.error, call.error_kind = error.message, error.kind
                if error.kind == "fatal" and not self._any_success:
                    engine.stop_reason = engine.stop_reason or "fatal"
                return
            await asyncio.sleep(backoff_delay(tries, error, config))

    def _store(self, call: _Call, score: JudgeScore, stored: CachedCall) -> None:
        """Record a judge call just made (or supplied): cached, counted and charged."""
        self.cache.put(
            call.key, request=f"judge:{self.spec.name}", attempt=0, model=self.model, call=stored
        )
        call.score = score
        self.calls_made += 1
        self._any_success = True
        self._charge(score.cost_usd)

    def missing_calls(self) -> list[tuple[str, llm.LLMCall]]:
        """The judge calls a cache-only run needed and did not have, with their keys, as
        they would be sent (in the order met): the judge's lines of a batch file."""
        return [
            (
                key,
                judge_call(
                    self.model,
                    [{"role": m.role, "content": m.content} for m in self._calls[key].messages],
                ),
            )
            for key in self.missing
            if key in self._calls
        ]

    def _charge(self, cost: float) -> None:
        engine = self.engine
        engine.spent_usd += cost
        budget = engine.config.budget_usd
        if budget is not None and engine.spent_usd >= budget and engine.stop_reason is None:
            engine.stop_reason = "budget"

    def _row(self, cand: Candidate, call: _Call) -> JudgedRow:
        row = cand.row
        verdict: Literal["kept", "judged_out", "judge_failed"]
        score = call.score
        if score is None:
            verdict, reason = "judge_failed", "judge_failed"
        elif score.keeps(self.spec.threshold):
            verdict, reason = "kept", None
        else:
            verdict, reason = "judged_out", "judged_out"
        return JudgedRow(
            id=row.id,
            request=row.request or "",
            task=row.task,
            iteration=row.iteration or 0,
            original=cand.original,
            rewrite=row.body or "",
            verdict=verdict,
            reason=reason,
            score=None if score is None else score.score,
            threshold=self.spec.threshold,
            method=None if score is None else score.method,
            answer=None if score is None else score.answer,
            judge=self.spec.name,
            model=self.model,
            error=call.error if score is None else None,
            error_kind=call.error_kind if score is None else None,
        )

    def summary(self) -> JudgeSummary:
        """The judge's counts over every row so far (they reconcile)."""
        per_task: dict[str, dict[str, int]] = {}
        for r in self.rows:
            entry = per_task.setdefault(
                r.task, {"rewrites": 0, "kept": 0, "judged_out": 0, "failed": 0}
            )
            entry["rewrites"] += 1
            entry["failed" if r.verdict == "judge_failed" else r.verdict] += 1
        kept = sum(e["kept"] for e in per_task.values())
        out = sum(e["judged_out"] for e in per_task.values())
        failed = sum(e["failed"] for e in per_task.values())
        total = len(self.rows)
        methods: dict[str, int] = {}
        for r in self.rows:
            if r.method is not None:
                methods[r.method] = methods.get(r.method, 0) + 1
        used = [c for c in self._calls.values() if c.score is not None]
        reconciled = kept + out + failed == total
        return JudgeSummary(
            name=self.spec.name,
            model=self.model,
            threshold=self.spec.threshold,
            rewrites=total,
            kept=kept,
            judged_out=out,
            failed=failed,
            reconciled=reconciled,
            reconciliation=(
                f"{total} rewrites judged = {kept} kept + {out} judged out + {failed} not judged"
                + ("" if reconciled else "  (MISMATCH: a bug in iatc)")
            ),
            methods=dict(sorted(methods.items())),
            calls=len(used),
            per_task={t: JudgeTaskCounts(**e) for t, e in sorted(per_task.items())},
            prompt_tokens=sum(c.score.prompt_tokens for c in used if c.score),
            completion_tokens=sum(c.score.completion_tokens for c in used if c.score),
            cost_usd=round(sum(c.score.cost_usd for c in used if c.score), 6),
        )


def kept_only(outcomes: Sequence[Outcome], kept: set[str], row_id: Any) -> list[Outcome]:
    """``outcomes`` with the judged-out rewrites taken out of each last attempt, so the next
    round (MIns+_Iter) rephrases only what the judge kept.  ``row_id(outcome, attempt,
    index, verdict)`` gives the row id of an accepted rewrite."""
    out = []
    for o in outcomes:
        if o.status != "accepted":
            out.append(o)
            continue
        last = o.attempts[-1]
        verdicts = []
        index = 0
        for v in last.verdicts:
            if v.accepted:
                if row_id(o, last, index, v) in kept:
                    verdicts.append(v)
                index += 1
            else:
                verdicts.append(v)
        out.append(replace(o, attempts=(*o.attempts[:-1], replace(last, verdicts=tuple(verdicts)))))
    return out
