"""Bootstrapped meta-prompts: ask a model for rewriting strategies, keep them as data.

The runtime sends :func:`bootstrap_request`'s messages to a model, turns the
reply into strategies with :func:`strategies_from_reply`, and caches them as
an ordinary ``strategies`` declaration (:func:`strategies_source`), which a
guided meta-prompt can then name like any hand-written list.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from ..errors import IatCompileError
from ..lang.model import Catalog
from ..lang.strings import quote
from .prompt import render_bootstrap
from .reply import parse_reply
from ..contract.compiled import Message

_NAME = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class BootstrapRequest:
    """One request for ``count`` strategies, of which the first ``take`` are kept."""

    id: str
    name: str
    messages: tuple[Message, ...]
    count: int
    take: int


def bootstrap_request(catalog: Catalog, name: str) -> BootstrapRequest:
    """Render the bootstrap prompt ``name``."""
    spec = catalog.bootstraps.get(name)
    if spec is None:
        raise IatCompileError(f"unknown bootstrap prompt `{name}`")
    messages = render_bootstrap(spec)
    digest = hashlib.sha256(
        json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False).encode()
    ).hexdigest()
    return BootstrapRequest("b" + digest[:20], name, messages, spec.count, spec.take)


def strategies_from_reply(text: str, take: int) -> tuple[str, ...]:
    """The first ``take`` non-empty strategies of a reply, or :class:`IatCompileError`."""
    parsed = parse_reply(text)
    if parsed.problem is not None:
        raise IatCompileError(f"bootstrap reply is unparseable: {parsed.problem}")
    items = [" ".join(s.split()) for s in parsed.rewrites if s.strip()]
    if len(items) < take:
        raise IatCompileError(f"bootstrap reply has {len(items)} strategies; {take} are needed")
    return tuple(items[:take])


def strategies_source(name: str, strategies: tuple[str, ...]) -> str:
    """A ``.iat`` declaration holding the strategies (item names derived from the text)."""
    used: set[str] = set()
    lines = [f"strategies {name} {{"]
    for i, text in enumerate(strategies, 1):
        words = _NAME.sub("_", text.casefold()).strip("_").split("_")[:3]
        key = "_".join(w for w in words if w) or "s"
        key = key if key[0].isalpha() else f"s_{key}"
        if key in used:
            key = f"{key}_{i}"
        used.add(key)
        lines.append(f"  {key}: {quote(text)}")
    lines.append("}")
    return "\n".join(lines) + "\n"
