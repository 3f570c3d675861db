"""The compiler's verdicts: why a rewrite was rejected, and how a reply was parsed.

The artifacts the compiler writes (requests, validators) are run-directory files and live
in :mod:`instraug_dsl.contract.compiled`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an output was rejected: a stable ``code`` plus a human detail."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of validating one candidate rewrite.

    ``accepted`` candidates carry ``restored``: the rewrite with every token
    mapped back to its ``{slot}`` (body only; pinned edges not attached).
    Rejected ones carry every failed ``reasons`` and a short ``reask``
    message the runtime may send back to the model.
    """

    accepted: bool
    restored: str | None
    reasons: tuple[Reason, ...] = field(default=())
    reask: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedReply:
    """A model reply split into rewrites, or the ``problem`` that made it unparseable.

    ``form`` says which shape was recognised: ``"json"`` (an array of strings,
    possibly fenced or after a preamble), ``"json_string"``, ``"json_object"``
    (one key holding the array) or ``"numbered"`` (a numbered list).
    """

    rewrites: tuple[str, ...]
    problem: str | None
    form: str | None = None
