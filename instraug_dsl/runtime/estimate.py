"""Pre-flight estimates of tokens and cost, from the compiled prompts alone.

A token is estimated as four characters (the usual rule of thumb for English with BPE
tokenizers) plus a few tokens of chat framing per message; a reply as the protected
instruction's length with a margin plus the JSON wrapping. The estimate assumes one attempt per
request: re-asks can add up to ``attempts - 1`` more calls for rejected replies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..contract.compiled import Request
from .router import RouterSpec

_CHARS_PER_TOKEN = 4.0
_PER_MESSAGE = 4
_REPLY_MARGIN = 1.5
_REPLY_FRAMING = 8


@dataclass(frozen=True, slots=True)
class Estimate:
    """Expected size and price of sending some requests once."""

    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def prompt_tokens(request: Request) -> int:
    """Estimated prompt tokens of a request's messages."""
    chars = sum(len(m.content) for m in request.messages)
    return math.ceil(chars / _CHARS_PER_TOKEN) + _PER_MESSAGE * len(request.messages)


def completion_tokens(request: Request) -> int:
    """Estimated reply tokens (capped by the request's ``max_tokens``)."""
    guess = math.ceil(len(request.protected) / _CHARS_PER_TOKEN * _REPLY_MARGIN) + _REPLY_FRAMING
    return min(request.max_tokens, guess)


def estimate_requests(
    requests: Sequence[Request], model: str, pool: RouterSpec | None = None
) -> Estimate:
    """Tokens and cost of sending each request once to ``model``.

    Cost comes from litellm's bundled price list (imported only for priced providers); it is
    0 for local models and for models litellm has no price for.  When ``model`` is a group
    of the endpoint pool ``pool``, every call is priced as its dearest deployment's.
    """
    p = sum(prompt_tokens(r) for r in requests)
    c = sum(completion_tokens(r) for r in requests)
    from . import llm

    models = [model]
    if pool is not None and pool.serves(model):
        models = [d.model for d in pool.group(model)]
    cost = max(llm.estimate_cost(m, p, c) for m in models) if requests else 0.0
    return Estimate(len(requests), p, c, cost)
