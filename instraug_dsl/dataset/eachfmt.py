"""The ``each "..."`` mini-format: how one list element or mapping item becomes text.

``slot hist: text[] from meta_data.dialog_hist each "{q}, {a};"`` formats every element of
a list; ``slot info: text[] from meta_data.object_regions each "{key} is in {value[0]}."``
formats every item of a mapping.  The format is split by the same ``{name}`` splitter as
instruction text (:func:`instraug_dsl.lang.strings.split_template`), then each brace group is
read as a *field access*: a name followed by ``.field`` and ``[index]`` steps.  Nothing is
evaluated: there is no ``str.format``, no attribute lookup on Python objects and no call,
only dictionary keys and list indices on the JSON value.

Names:

* ``{value}`` is the element (lists) or the item's value (mappings); ``{key}`` is the
  item's key (mappings only).
* any other name ``{q}`` is the field ``q`` of the element/value, so ``{q}`` equals
  ``{value.q}``.

A mapping is iterated by items only when the format mentions ``key`` or ``value``;
otherwise the whole mapping is formatted once (``dialog_hist[-1]`` with ``"{q}, {a};"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from ..errors import DataError, IatCompileError
from ..fsio import json_kind
from ..lang import ir
from ..lang.model import PathKey
from ..lang.source import Span
from ..lang.strings import split_template
from .records import MISSING, ShapeError, lookup

_ACCESS: Final = re.compile(
    r"\{([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*|\[-?[0-9]+\])*)\}\Z"
)
_STEP: Final = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(-?[0-9]+)\]")


class FormatError(IatCompileError):
    """An ``each`` format (or template) that cannot be compiled; the message has file:line:col."""


class RenderError(DataError):
    """A record value does not fit its slot; ``field`` names where, ``reason`` says why.

    The record id is added by the caller (:func:`instraug_dsl.dataset.render.render` does
    not know it); ``str(error)`` is ``"<field>: <reason>"``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Access:
    """One ``{head.step[0]}`` group: ``head`` then dictionary keys / list indices."""

    head: str
    steps: tuple[PathKey, ...]
    text: str


@dataclass(frozen=True, slots=True)
class EachFormat:
    """A compiled ``each`` format: literal strings and :class:`Access` parts, in order."""

    parts: tuple[str | Access, ...]
    uses_items: bool

    def elements(self, value: object, field: str) -> Iterator[tuple[object, object, str]]:
        """Yield ``(key, element, label)`` for every element ``value`` provides.

        ``key`` is ``MISSING`` for list elements.  Raises :class:`RenderError` for a
        value that is neither a list nor a mapping.
        """
        if isinstance(value, list):
            for i, elem in enumerate(value):
                yield MISSING, elem, f"{field}[{i}]"
        elif isinstance(value, dict):
            if self.uses_items:
                for k, v in value.items():
                    yield k, v, f"{field}.{k}"
            else:
                yield MISSING, value, field
        else:
            raise RenderError(
                field, f"expected a list or an object to format with `each`, got {json_kind(value)}"
            )

    def format(self, key: object, elem: object, label: str) -> str:
        """Render one element; raises :class:`RenderError` naming the element and access."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            where = f"{label} (each {part.text})"
            found: Any
            if part.head == "key" and key is not MISSING:
                found = key
            elif part.head == "value":
                found = elem
            elif isinstance(elem, dict):
                found = elem.get(part.head, MISSING)
            else:
                raise RenderError(
                    where, f"expected an object with field `{part.head}`, got {json_kind(elem)}"
                )
            if part.steps and found is not MISSING:
                try:
                    found = lookup(found, part.steps)
                except ShapeError as exc:
                    raise RenderError(where, exc.reason) from None
            if found is MISSING or found is None:
                raise RenderError(where, "missing value")
            if isinstance(found, str):
                out.append(found)
            elif isinstance(found, int | float) and not isinstance(found, bool):
                out.append(str(found))
            else:
                raise RenderError(where, f"expected text or a number, got {json_kind(found)}")
        return "".join(out)


def _where(span: Span) -> str:
    return f"{span.path}:{span.line}:{span.col}"


def _access(text: str, span: Span) -> Access:
    match = _ACCESS.match(text)
    if match is None:
        raise FormatError(
            f"{_where(span)}: `{text}` is not a field access; use {{name}}, {{value.field}} or "
            r"{value[0]} (write literal braces as \{ and \})"
        )
    steps: list[PathKey] = []
    for key, index in _STEP.findall(match.group(2)):
        steps.append(int(index) if index else key)
    return Access(match.group(1), tuple(steps), text)


def compile_each(lit: ir.StringLit) -> EachFormat:
    """Compile an ``each`` literal; raises :class:`FormatError` with its position."""
    parts: list[str | Access] = []
    for piece in split_template(lit):
        if isinstance(piece, ir.TextPiece):
            if parts and isinstance(parts[-1], str):
                parts[-1] += piece.text
            else:
                parts.append(piece.text)
        elif isinstance(piece, ir.SlotRef):
            parts.append(Access(piece.name, (), "{" + piece.name + "}"))
        elif piece.kind == "bad_name":
            parts.append(_access(piece.text, piece.span))
        else:
            raise FormatError(
                f"{_where(piece.span)}: stray `{piece.text}` in `each` format "
                r"(write a literal brace as \{ or \})"
            )
    uses_items = any(isinstance(p, Access) and p.head in ("key", "value") for p in parts)
    return EachFormat(tuple(parts), uses_items)
