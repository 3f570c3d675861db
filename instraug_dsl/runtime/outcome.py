"""What the engine reports per request: every attempt, its reply, its verdicts, its cost."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from ..compile.types import Verdict
from ..contract.compiled import Request

Status = Literal["accepted", "rejected", "failed"]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One validated model reply (transport retries of the same call are not attempts)."""

    number: int  # 1-based
    seed: int
    reply: str
    verdicts: tuple[Verdict, ...]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: bool

    @property
    def accepted(self) -> tuple[Verdict, ...]:
        """The verdicts that passed validation."""
        return tuple(v for v in self.verdicts if v.accepted)

    @property
    def response_sha256(self) -> str:
        """SHA-256 of the raw reply text (ties an output row to the cached reply)."""
        return hashlib.sha256(self.reply.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request ended.

    ``accepted``: the last attempt produced at least one valid rewrite. ``rejected``: every
    attempt's reply failed validation (all reasons are in ``attempts``). ``failed``: a call
    could not be completed (transport errors after retries, a fatal backend error, or the
    run stopped at the budget); ``error``/``error_kind`` say why and ``tries`` counts calls
    made for the failing attempt.
    """

    request: Request
    model: str
    status: Status
    attempts: tuple[AttemptRecord, ...]
    error: str | None = None
    error_kind: str | None = None
    tries: int = 0

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens over every attempt (cached calls included)."""
        return sum(a.prompt_tokens for a in self.attempts)

    @property
    def completion_tokens(self) -> int:
        """Completion tokens over every attempt (cached calls included)."""
        return sum(a.completion_tokens for a in self.attempts)

    @property
    def cost_usd(self) -> float:
        """Cost over every attempt (cached calls included: what the result cost to make)."""
        return sum(a.cost_usd for a in self.attempts)
