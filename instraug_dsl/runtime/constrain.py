"""Constrained decoding: which providers can be told the shape of a reply, and how.

The compiler exports, for every validator, a GBNF grammar and a regex that accept exactly the
replies whose token structure the validator accepts (``ValidatorSpec.gbnf`` and
``ValidatorSpec.reply_regex``, see docs/compiler.md).  A `Constraint` carries both; a
`Capability` says which form a provider takes and how it travels in the request (always
litellm's ``extra_body``: the body fields of an OpenAI-compatible server, and
``optional_params["extra_body"]`` for the in-process providers).  The one table,
`CAPABILITIES`, is keyed by litellm provider name:

* ``embedded`` (in-process llama.cpp): ``grammar`` (GBNF) and ``max_words`` (below);
* ``llamafile`` (a llama.cpp server): ``grammar``;
* ``hosted_vllm`` (vLLM >= 0.10.2): ``structured_outputs: {"regex": ...}``;
* ``openai`` with an ``api_base`` (any OpenAI-compatible server: vLLM, llama.cpp server, ...):
  both fields, each server reads the one it knows and ignores the other;
* every other provider (the OpenAI API itself, Anthropic, ``offline/...``): none.

Constraining never replaces validation: every reply is still validated, so a server that
ignores the fields only costs the re-asks it would have cost anyway.

A grammar cannot make a model *want* to write a token: a small model that will not place one
goes on writing inside the string until ``max_tokens``.  So a constrained call also stops at
`Constraint.max_tokens`, past which no reply can pass the validator's length rule anyway
(`reply_token_bound`), and the embedded provider, which sees the text as it is generated,
stops as soon as the rewrite has more words than `Constraint.max_words` (the cut reply is
recorded like any reply cut at ``max_tokens``: unparseable).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

#: ``--constrain``: ``auto`` constrains where the provider can, ``off`` never.
ConstrainMode = Literal["auto", "off"]
CONSTRAIN_MODES: tuple[ConstrainMode, ...] = ("auto", "off")


@dataclass(frozen=True, slots=True)
class Constraint:
    """The replies a request accepts, in the forms servers understand (the compiler's exports).

    ``gbnf`` is a llama.cpp grammar and ``regex`` a regex (Python ``re`` syntax, also read by
    vLLM's backends), both over the whole reply.  ``max_words`` is the most words a rewrite
    passing the validator's length rule has, and ``max_tokens`` the reply tokens past which
    none can (`reply_token_bound`); None when the rule has no upper bound.
    """

    gbnf: str
    regex: str
    max_tokens: int | None = None
    max_words: int | None = None


#: Reply tokens allowed per word of the longest rewrite the length rule accepts (English
#: averages ~1.3 tokens per word with Qwen's tokenizer; a placeholder word takes 3-5).
TOKENS_PER_WORD = 3
#: Reply tokens allowed on top: the JSON array around the rewrite and the end of turn.
REPLY_OVERHEAD_TOKENS = 16


def max_words(source_words: int, max_ratio: float) -> int | None:
    """The most words of a rewrite the length rule ``words / source_words < max_ratio``
    accepts; None when the ratio has no finite bound."""
    if not math.isfinite(max_ratio) or max_ratio <= 0:
        return None
    return max(1, math.ceil(max_ratio * max(source_words, 1)) - 1)


def reply_token_bound(words: int | None, placeholders: int) -> int | None:
    """Reply tokens past which a reply cannot hold a rewrite of at most `words` words,
    generously: `TOKENS_PER_WORD` per word plus 4 per placeholder token plus
    `REPLY_OVERHEAD_TOKENS`."""
    if words is None:
        return None
    return TOKENS_PER_WORD * words + 4 * placeholders + REPLY_OVERHEAD_TOKENS


@dataclass(frozen=True, slots=True)
class Capability:
    """How one kind of provider is told a `Constraint`: the ``extra_body`` fields it reads."""

    name: str
    fields: Callable[[Constraint], dict[str, Any]]

    def extra_body(self, constraint: Constraint) -> dict[str, Any]:
        """The request body fields that carry `constraint`."""
        return self.fields(constraint)

    def tag(self, constraint: Constraint) -> str:
        """What the cache key records: the capability and a digest of the fields it sends."""
        blob = json.dumps(self.extra_body(constraint), sort_keys=True, ensure_ascii=False)
        return f"{self.name}:{hashlib.sha256(blob.encode('utf-8')).hexdigest()[:32]}"


GRAMMAR = Capability("gbnf", lambda c: {"grammar": c.gbnf})
EMBEDDED = Capability(
    "gbnf",
    lambda c: {"grammar": c.gbnf} | ({} if c.max_words is None else {"max_words": c.max_words}),
)
VLLM = Capability("vllm-regex", lambda c: {"structured_outputs": {"regex": c.regex}})
OPENAI_COMPATIBLE = Capability(
    "openai-compatible",
    lambda c: {"grammar": c.gbnf, "structured_outputs": {"regex": c.regex}},
)

#: By litellm provider: (capability without an ``api_base``, capability with one).
CAPABILITIES: dict[str, tuple[Capability | None, Capability | None]] = {
    "embedded": (EMBEDDED, EMBEDDED),
    "llamafile": (GRAMMAR, GRAMMAR),
    "hosted_vllm": (VLLM, VLLM),
    # The OpenAI API takes neither field (it rejects unknown ones); a server given with
    # --api-base is an OpenAI-compatible one.
    "openai": (None, OPENAI_COMPATIBLE),
}


def capability(provider: str, api_base: str | None) -> Capability | None:
    """How `provider` (a litellm provider name) takes a constraint, or None if it cannot."""
    pair = CAPABILITIES.get(provider)
    if pair is None:
        return None
    return pair[1] if api_base else pair[0]


def provider_of(model: str) -> str:
    """The provider part of a ``provider/model`` name (what `capability` is asked with)."""
    return model.split("/", 1)[0] if "/" in model else ""
