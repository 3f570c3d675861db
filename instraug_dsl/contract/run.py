"""The run directory ``iatc augment`` writes and ``iatc materialize``/``stats`` read.

::

    RUN_DIR/
      compiled/            the compiled plan (contract.compiled), catalog snapshot included
      instructions.jsonl   InstructionRow: every original of the augmented tasks, then every
                           accepted rewrite, in request order
      rejected.jsonl       RejectedRow: every rejected reply of every attempt, with reasons
      failed.jsonl         FailedRow: every request that could not be completed
      judged.jsonl         JudgedRow: every rewrite a plan's judge looked at, kept or not
                           (only when the plan has a judge)
      summary.json         Summary: counts that reconcile, tokens, cost, versions
      cache.sqlite         every completed model call (resume repeats none)
      lock                 held by the one process writing the run

A run directory is self-contained: everything a later stage needs is in it, so it can be
moved, copied to another machine or outlive its ``.iat`` sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from ..fsio import file_format, iter_jsonl, read_json, write_json, write_jsonl
from .codec import decode, encode
from .compiled import COMPILE_FORMAT

RUN_FORMAT = "iatc-run/1"

T = TypeVar("T")

Kind = Literal["original", "generated"]
Status = Literal["accepted", "rejected", "failed"]
#: What a judge decided about an accepted rewrite: ``kept`` (it goes to instructions.jsonl),
#: ``judged_out`` (the judge said it asks for another task) or ``judge_failed`` (the judge
#: could not be asked; the rewrite is held back, and a re-run asks again).
JudgeVerdict = Literal["kept", "judged_out", "judge_failed"]
JudgeMethod = Literal["logprob", "generated"]


@dataclass(frozen=True)
class RunDir:
    """The paths of one run directory."""

    root: Path

    @property
    def compiled(self) -> Path:
        """The compiled plan's folder."""
        return self.root / "compiled"

    @property
    def instructions(self) -> Path:
        """Originals and accepted rewrites."""
        return self.root / "instructions.jsonl"

    @property
    def rejected(self) -> Path:
        """Rejected replies with their reasons."""
        return self.root / "rejected.jsonl"

    @property
    def failed(self) -> Path:
        """Requests that could not be completed."""
        return self.root / "failed.jsonl"

    @property
    def judged(self) -> Path:
        """Every rewrite the judge looked at, with its score and verdict."""
        return self.root / "judged.jsonl"

    @property
    def summary(self) -> Path:
        """The run's counts and facts."""
        return self.root / "summary.json"

    @property
    def cache(self) -> Path:
        """The call cache."""
        return self.root / "cache.sqlite"

    @property
    def lock(self) -> Path:
        """The writer's lock file."""
        return self.root / "lock"

    def is_run(self) -> bool:
        """True when the folder is a run directory of this tool: its ``summary.json`` or
        ``compiled/manifest.json`` carries our format, or its ``lock`` names an iatc
        process (a run that stopped before writing either).  A user's files of the same
        names do not count, so they are never written over."""
        return (
            _family(file_format(self.summary)) == _family(RUN_FORMAT)
            or _family(file_format(self.compiled / "manifest.json")) == _family(COMPILE_FORMAT)
            or self._lock_is_ours()
        )

    def _lock_is_ours(self) -> bool:
        try:
            if not self.lock.is_file() or self.lock.stat().st_size > 512:
                return False
            text = self.lock.read_bytes()
        except OSError:
            return False
        return text.startswith(b"pid ") or not text.strip()


def _family(fmt: str | None) -> str | None:
    """``iatc-run`` of ``iatc-run/1``: any version of a format of ours."""
    return fmt.split("/", 1)[0] if fmt else None


@dataclass(frozen=True, slots=True)
class InstructionRow:
    """One line of ``instructions.jsonl``: an original or an accepted rewrite.

    ``template`` is the whole instruction with ``{slot}`` references (pinned edges
    re-attached); ``body`` the part that was paraphrased.  Generated rows carry their
    provenance: the request, meta-prompt, temperature, sample, attempt, round, model and
    the SHA-256 of the raw reply (which ties the row to ``cache.sqlite``).
    """

    id: str
    task: str
    kind: Kind
    template: str
    body: str | None = None
    root: str | None = None
    parent: str | None = None
    metaprompt: str | None = None
    temperature: float | None = None
    sample: int | None = None
    attempt: int | None = None
    iteration: int | None = None
    model: str | None = None
    response_sha256: str | None = None
    request: str | None = None


@dataclass(frozen=True, slots=True)
class ReasonRow:
    """A validator's reason code and its detail."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """One rejected reply (all its candidates' reasons) of one attempt of one request."""

    request: str
    task: str
    text: str
    reasons: tuple[ReasonRow, ...]
    attempt: int
    iteration: int
    final_status: Status


@dataclass(frozen=True, slots=True)
class FailedRow:
    """A request that could not be completed, with its last error."""

    request: str
    task: str
    error: str | None
    kind: str | None
    attempts: int
    attempt: int
    iteration: int


@dataclass(frozen=True, slots=True)
class JudgedRow:
    """One rewrite the validators accepted, as the plan's judge saw it.

    ``id`` is the rewrite's row id (the ``instructions.jsonl`` id it has when kept);
    ``original`` and ``rewrite`` are the texts the judge compared (the root original's
    paraphrased part and the rewrite's, with ``{slot}`` references).  ``score`` is
    log P(yes) - log P(no) of the judge's first answer token (``method: logprob``); when
    the backend gives no log-probabilities the judge's reply is read instead
    (``method: generated``, ``score: null``).  ``reason`` is ``judged_out`` or
    ``judge_failed`` for a rewrite that did not reach ``instructions.jsonl``.
    """

    id: str
    request: str
    task: str
    iteration: int
    original: str
    rewrite: str
    verdict: JudgeVerdict
    reason: str | None
    score: float | None
    threshold: float
    method: JudgeMethod | None
    answer: str | None
    judge: str
    model: str
    error: str | None = None
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class JudgeTaskCounts:
    """What the judge did with one task's rewrites."""

    rewrites: int
    kept: int
    judged_out: int
    failed: int


@dataclass(frozen=True, slots=True)
class JudgeSummary:
    """The judge's part of ``summary.json``: counts that reconcile with the rewrites the
    validators accepted (``rewrites == kept + judged_out + failed``, and ``kept`` is the
    number of generated rows of ``instructions.jsonl``)."""

    name: str
    model: str
    threshold: float
    rewrites: int
    kept: int
    judged_out: int
    failed: int
    reconciled: bool
    reconciliation: str
    methods: dict[str, int]
    calls: int
    per_task: dict[str, JudgeTaskCounts]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class TaskTally:
    """Per-task counts of a run."""

    requests: int
    accepted: int
    rejected: int
    failed: int
    generated: int
    reasons: dict[str, int]


@dataclass(frozen=True, slots=True)
class Totals:
    """Counts over the whole run; ``reconciled`` is accepted + rejected + failed == requests."""

    requests: int
    accepted: int
    rejected: int
    failed: int
    reconciled: bool
    generated: int
    attempts: int
    per_task: dict[str, TaskTally]
    rejection_reasons: dict[str, int]
    failure_kinds: dict[str, int]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class Selection:
    """What ``--tasks``/``--limit``/``--shard`` kept of the compiled requests."""

    tasks: tuple[str, ...] | None
    limit: int | None
    requests: int
    #: ``I/N`` for a shard's run directory (``iatc augment --shard``); none otherwise.
    shard: str | None = None


@dataclass(frozen=True, slots=True)
class RoundCounts:
    """Outcomes of one round (MIns+_Iter rounds after the first)."""

    iteration: int
    requests: int
    accepted: int
    rejected: int
    failed: int


@dataclass(frozen=True, slots=True)
class OutputCounts:
    """Rows written to the result files."""

    instructions: int
    originals: int
    generated: int
    rejected_rows: int
    failed_rows: int
    judged_rows: int = 0


@dataclass(frozen=True, slots=True)
class Skipped:
    """What the compiler left out on purpose, with reasons."""

    tasks: dict[str, str]
    instructions: dict[str, str]


@dataclass(frozen=True, slots=True)
class EstimateFacts:
    """The pre-flight estimate of what was left to send."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class InvocationFacts:
    """Facts of this invocation (they differ between a resumed and a straight run)."""

    estimate: EstimateFacts
    wall_time_s: float
    calls_made: int
    cache_hits: int
    spent_usd: float
    stopped: str | None
    budget_usd: float | None
    concurrency: int
    rate_limit_cuts: int
    fresh: bool
    judge_calls_made: int = 0
    judge_cache_hits: int = 0
    judge_wall_time_s: float = 0.0
    #: What shapes the calls besides the plan (a replay must send the same ones).
    constrain: str = "auto"
    reask: str = "auto"
    #: Engine processes that made the calls (``--workers``; with Ray, the Ray tasks).
    workers: int = 1
    #: ``--executor``: ``local`` or ``ray``.
    executor: str = "local"
    #: The run directories ``iatc merge`` made this one from (their folder names).
    merged_from: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PoolDeployment:
    """One deployment of an endpoint pool (``--router FILE``): never its key."""

    id: str
    model_name: str
    model: str
    #: Without credentials (user-info and query values masked); None: the provider's own.
    api_base: str | None
    weight: float | None = None
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class PoolSummary:
    """The endpoint pool a run sent its calls through (``--router FILE``) and the router
    settings used (``allowed_fails``, ``cooldown_time``, ``timeout``: None when the file
    gives none and litellm's own policy, or ``--timeout``, applies)."""

    file: str
    routing_strategy: str
    num_retries: int
    allowed_fails: int | None
    cooldown_time: float | None
    timeout: float | None
    fallbacks: dict[str, tuple[str, ...]]
    deployments: tuple[PoolDeployment, ...]


@dataclass(frozen=True, slots=True)
class Summary:
    """``summary.json``: what a run did, in numbers that reconcile.

    ``api_base`` is recorded without credentials (user-info and query strings are
    stripped before anything is written).
    """

    format: str
    plan: str
    model: str
    api_base: str | None
    mode: str
    temperatures: tuple[float, ...]
    attempts_per_request: int
    iterations: int
    requests_compiled: int
    selection: Selection
    totals: Totals
    reconciliation: str
    rounds: tuple[RoundCounts, ...]
    outputs: OutputCounts
    skipped: Skipped
    run: InvocationFacts
    versions: dict[str, str] = field(default_factory=dict)
    #: The plan's judge and what it did (``None``: the run had no judge).
    judge: JudgeSummary | None = None
    #: The endpoint pool of ``--router FILE`` (``None``: no router file).
    router: PoolSummary | None = None


def write_rows(path: Path, rows: Iterable[object]) -> int:
    """Write typed rows as JSON Lines (sorted keys), atomically; returns the count."""
    return write_jsonl(path, (encode(row) for row in rows))


def read_rows(path: Path, cls: type[T]) -> Iterator[T]:
    """Read typed rows; a bad line is a :class:`~instraug_dsl.errors.DataError` with file:line."""
    for where, data in iter_jsonl(path):
        yield decode(cls, data, where)


def write_summary(path: Path, summary: Summary) -> None:
    """Write ``summary.json``."""
    write_json(path, encode(summary))


def read_summary(path: Path) -> Summary:
    """Read ``summary.json``; errors name the file and field."""
    return decode(Summary, read_json(path), str(path))
