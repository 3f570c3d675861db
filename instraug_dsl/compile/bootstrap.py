"""Bootstrapped meta-prompts: ask a model for rewriting strategies, keep them as data.

:func:`bootstrap_request` renders a ``bootstrap`` declaration into chat messages; the
runtime (:mod:`instraug_dsl.runtime.bootstrap`) sends them, and :func:`strategies_from_reply`
turns the reply into strategies (the reply parser: nothing in it is evaluated).
:func:`strategies_source` writes them as an ordinary ``strategies`` declaration, which a
guided meta-prompt names like any hand-written list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from ..contract.compiled import Message
from ..errors import IatCompileError
from ..lang.lookup import lookup
from ..lang.model import Catalog
from ..lang.strings import quote
from .prompt import render_bootstrap
from .reply import parse_reply

#: A "strategy" longer than this is a paragraph the model rambled, not a strategy.
MAX_STRATEGY_CHARS = 400


@dataclass(frozen=True, slots=True)
class BootstrapRequest:
    """One request for ``count`` strategies, of which the first ``take`` are kept."""

    id: str
    name: str
    messages: tuple[Message, ...]
    count: int
    take: int


def bootstrap_request(catalog: Catalog, name: str, *, take: int | None = None) -> BootstrapRequest:
    """Render the bootstrap prompt ``name``; ``take`` overrides the declaration's (asking for
    at least that many)."""
    spec = lookup("bootstrap prompt", name, catalog.bootstraps)
    keep = spec.take if take is None else take
    if keep < 1:
        raise IatCompileError("a bootstrap must keep at least 1 strategy")
    spec = dataclasses.replace(spec, count=max(spec.count, keep))
    messages = render_bootstrap(spec)
    digest = hashlib.sha256(
        json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False).encode()
    ).hexdigest()
    return BootstrapRequest("b" + digest[:20], name, messages, spec.count, keep)


def clean_strategies(items: tuple[str, ...]) -> list[str]:
    """Whitespace collapsed, empties, case-insensitive duplicates and rambles dropped."""
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        text = " ".join(item.split())
        if not text or len(text) > MAX_STRATEGY_CHARS:
            continue
        if text.lower() not in seen:
            seen.add(text.lower())
            out.append(text)
    return out


def strategies_from_reply(text: str, take: int) -> tuple[str, ...]:
    """The first ``take`` usable strategies of a reply, or :class:`IatCompileError` saying why."""
    parsed = parse_reply(text)
    if parsed.problem is not None:
        raise IatCompileError(f"the bootstrap reply is unparseable: {parsed.problem}")
    items = clean_strategies(parsed.rewrites)
    if len(items) < take:
        raise IatCompileError(
            f"the bootstrap reply has {len(items)} usable strategies; {take} are needed"
        )
    return tuple(items[:take])


def strategies_source(
    name: str, strategies: tuple[str, ...], *, prompt: str | None = None, model: str | None = None
) -> str:
    """The ``.iat`` text of a ``strategies`` block (items ``s1``, ``s2``, ...; escapes by
    :func:`~instraug_dsl.lang.strings.quote`)."""
    lines = []
    if prompt is not None:
        origin = f" from {model}" if model else ""
        lines += [
            f"# Rewriting strategies bootstrapped by `iatc bootstrap --prompt {prompt}`{origin}.",
            f"# Edit freely; reference them with `strategies {name}`.",
            "",
        ]
    lines.append(f"strategies {name} {{")
    lines += [f"  s{i}: {quote(text)}" for i, text in enumerate(strategies, 1)]
    lines.append("}")
    return "\n".join(lines) + "\n"
