"""Slot values: from a record field to text, by slot type (the hot path of materialize).

Each :class:`SlotRenderer` is compiled once per slot.  It tries a fast path first (a plain
string for a ``text`` slot, a list of strings for a list or ``choices`` slot) and falls
back to the validating path, which names the field and the reason of any problem, so
speed never changes what is accepted.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Mapping
from typing import Any, Final

from ..fsio import json_kind
from ..lang.model import PathKey, SlotSpec
from .eachfmt import EachFormat, RenderError, compile_each
from .records import MISSING, ShapeError, dotted, is_empty, lookup

_NUM: Final = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_BBOX: Final = re.compile(rf"\s*{_NUM}\s+{_NUM}\s+{_NUM}\s+{_NUM}\s*\Z")

#: Shuffled option lists of one instance, by record path (shared by every slot of a field).
Overrides = dict[tuple[PathKey, ...], list[Any]]


def text_value(value: object, field: str) -> str:
    """A ``text`` value: a string as is, a number as Python prints it."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RenderError(field, f"expected text, got {json_kind(value)}")


def bbox_value(value: object, field: str) -> str:
    """A ``bbox``: an ``"x1 y1 x2 y2"`` string verbatim, or 4 numbers joined by spaces."""
    if isinstance(value, str):
        if _BBOX.match(value):
            return value
        raise RenderError(field, f'expected a bounding box "x1 y1 x2 y2", got {value[:60]!r}')
    if (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
    ):
        return " ".join(str(x) for x in value)
    raise RenderError(field, f"expected a bounding box (4 numbers), got {json_kind(value)}")


def shuffled(values: list[Any], rng: random.Random) -> list[Any]:
    """A seeded uniform permutation of ``values`` (a new list).

    Sorting by one ``random()`` key per element is a uniform shuffle (ties have
    probability ~n²/2⁵³) and costs a fraction of ``random.shuffle``'s per-element
    ``randbelow`` calls; the sort is stable, so even a tie is deterministic.
    """
    if len(values) < 2:
        return list(values)
    keys = [rng.random() for _ in values]
    return [values[i] for i in sorted(range(len(values)), key=keys.__getitem__)]


class SlotRenderer:
    """One slot of a task, compiled: where its value lives and how it becomes text."""

    __slots__ = ("spec", "field", "_each", "_element", "_shuffled", "_fast")

    def __init__(self, spec: SlotSpec, shuffled: bool) -> None:
        self.spec = spec
        self.field = dotted(spec.source) if spec.source else spec.name
        self._each: EachFormat | None = compile_each(spec.each) if spec.each is not None else None
        self._element = bbox_value if spec.base == "bbox" else text_value
        self._shuffled = shuffled  # the source is a choices field, shuffled per instance
        # plain text and string lists need no per-element work beyond the join
        self._fast = spec.base in ("text", "choices") and self._each is None

    def render(
        self, record: Mapping[str, Any], overrides: Overrides | None, rng: random.Random | None
    ) -> str:
        """The slot's text for ``record``; raises :class:`RenderError` naming the field."""
        spec = self.spec
        source = spec.source
        if source is None:
            return spec.const_value or ""
        value: Any
        if overrides is not None and source in overrides:
            value = overrides[source]
        else:
            try:
                value = lookup(record, source)
            except ShapeError as exc:
                raise RenderError(exc.field, exc.reason) from None
        if self._fast and value:
            if value.__class__ is str and not spec.is_list and spec.base == "text":
                return value
            if value.__class__ is list and (spec.is_list or spec.base == "choices"):
                try:
                    joined = spec.sep.join(value)
                except TypeError:
                    pass  # a non-string element: the validating path explains or converts it
                else:
                    return spec.prefix + joined if spec.base == "choices" else joined
        if is_empty(value):
            if spec.default is not None:
                return self._default(rng)
            if spec.optional:
                return ""
            if value is MISSING or value is None:
                raise RenderError(self.field, "missing required field")
        return self._value(value)

    def _items(self, value: object) -> list[str]:
        if self._each is not None:
            each = self._each
            return [each.format(k, e, label) for k, e, label in each.elements(value, self.field)]
        if not isinstance(value, list):
            raise RenderError(self.field, f"expected a list, got {json_kind(value)}")
        element = self._element
        return [element(e, f"{self.field}[{i}]") for i, e in enumerate(value)]

    def _value(self, value: object) -> str:
        spec = self.spec
        if spec.base == "choices":
            return spec.prefix + spec.sep.join(self._items(value))
        if spec.is_list:
            return spec.sep.join(self._items(value))
        if self._each is not None:  # unreachable after check (E025), kept for safety
            raise RenderError(self.field, "`each` needs a list slot")
        return self._element(value, self.field)

    def _default(self, rng: random.Random | None) -> str:
        spec = self.spec
        default = spec.default or ""
        if spec.base == "choices":
            options = default.split(spec.sep)
            if self._shuffled and rng is not None:
                options = shuffled(options, rng)
            return spec.prefix + spec.sep.join(options)
        return default


@functools.lru_cache(maxsize=4096)
def slot_renderer(spec: SlotSpec, shuffled: bool) -> SlotRenderer:
    """The compiled renderer of ``spec`` (cached: every plan of a task shares them)."""
    return SlotRenderer(spec, shuffled)
