"""Slot values: from a record field to text, by slot type (the hot path of materialize).

Each :class:`SlotRenderer` is compiled once per slot.  It tries a fast path first (a plain
string for a ``text`` slot, a list of strings for a list or ``choices`` slot) and falls
back to the validating path, which names the field and the reason of any problem, so
speed never changes what is accepted.  A ``choice`` slot (:class:`ChoiceRenderer`) renders
the label of its value among the options of a ``choices`` slot, in the order those
options were rendered for the same instance.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from ..fsio import json_kind
from ..lang.enumeration import Pattern
from ..lang.model import PathKey, SlotSpec
from .eachfmt import EachFormat, RenderError, compile_each
from .records import MISSING, ShapeError, dotted, is_empty, lookup

_NUM: Final = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_BBOX: Final = re.compile(rf"\s*{_NUM}\s+{_NUM}\s+{_NUM}\s+{_NUM}\s*\Z")
_INT: Final = re.compile(r"\s*[-+]?[0-9]+\s*\Z")

#: Shuffled option lists of one instance, by record path (shared by every slot of a field).
#: A ``choices`` slot's shuffled ``default`` is kept under ``(DEFAULT_KEY, default, sep,
#: *path)`` so that every slot reading the options sees the same order.
Overrides = dict[tuple[PathKey, ...], list[Any]]
DEFAULT_KEY: Final = "\x00default"


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


def label_value(names: tuple[str, ...]) -> Callable[[object, str], str]:
    """The element function of a ``label`` slot: an integer (or a string of one) selects a
    name, 0-based."""

    def label(value: object, field: str) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            k = value
        elif isinstance(value, str) and _INT.match(value):
            k = int(value)
        else:
            shown = repr(value[:40]) if isinstance(value, str) else json_kind(value)
            raise RenderError(field, f"expected a label number (an integer), got {shown}")
        if not 0 <= k < len(names):
            raise RenderError(
                field, f"label {k} is out of range: {len(names)} names (0..{len(names) - 1})"
            )
        return names[k]

    return label


def _option_key(value: object) -> str:
    """How options and ``choice`` values are compared: text as is, numbers as printed,
    anything else as its JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    try:
        return "\x00" + json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return "\x00" + repr(value)


class SlotRenderer:
    """One slot of a task, compiled: where its value lives and how it becomes text."""

    __slots__ = ("spec", "field", "_each", "_element", "_shuffled", "_fast", "_pattern")

    def __init__(self, spec: SlotSpec, shuffled: bool) -> None:
        self.spec = spec
        self.field = dotted(spec.source) if spec.source else spec.name
        self._each: EachFormat | None = compile_each(spec.each) if spec.each is not None else None
        self._element: Callable[[object, str], str] = (
            bbox_value
            if spec.base == "bbox"
            else label_value(spec.names)
            if spec.base == "label"
            else text_value
        )
        self._shuffled = shuffled  # the source is a choices field, shuffled per instance
        #: ``enumerate "(A) "`` of a choices slot: each option gets its counter
        self._pattern = (
            Pattern.parse(spec.enumeration)
            if spec.base == "choices" and spec.enumeration is not None
            else None
        )
        # plain text and string lists need no per-element work beyond the join
        self._fast = (
            spec.base in ("text", "choices") and self._each is None and self._pattern is None
        )

    @property
    def pattern(self) -> Pattern | None:
        """The parsed ``enumerate`` pattern of a choices slot (``None``: not enumerated)."""
        return self._pattern

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
                return self._default(rng, overrides)
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
            return spec.prefix + spec.sep.join(self._numbered(self._items(value)))
        if spec.is_list:
            return spec.sep.join(self._items(value))
        if self._each is not None:  # unreachable after check (E025), kept for safety
            raise RenderError(self.field, "`each` needs a list slot")
        return self._element(value, self.field)

    def _numbered(self, items: list[str]) -> list[str]:
        pattern = self._pattern
        if pattern is None:
            return items
        return [pattern.render(k) + item for k, item in enumerate(items)]

    def _default(self, rng: random.Random | None, overrides: Overrides | None = None) -> str:
        spec = self.spec
        default = spec.default or ""
        if spec.base == "choices":
            options = self.default_options(rng, overrides)
            return spec.prefix + spec.sep.join(self._numbered(options))
        return default

    def default_options(self, rng: random.Random | None, overrides: Overrides | None) -> list[Any]:
        """A choices slot's ``default`` split on ``sep``, shuffled when its field is; the
        shuffled order is kept in ``overrides`` so every slot of the field sees it."""
        spec = self.spec
        default = spec.default or ""
        if not (self._shuffled and rng is not None):
            return default.split(spec.sep)
        key = (DEFAULT_KEY, default, spec.sep, *(spec.source or ()))
        if overrides is not None and key in overrides:
            return overrides[key]
        options = shuffled(default.split(spec.sep), rng)
        if overrides is not None:
            overrides[key] = options
        return options

    def options(
        self, record: Mapping[str, Any], overrides: Overrides | None, rng: random.Random | None
    ) -> list[Any]:
        """A choices slot's options for ``record`` in the order it renders them."""
        spec = self.spec
        source = spec.source
        if source is None:  # unreachable: a choices slot reads a field
            return []
        if overrides is not None and source in overrides:
            return overrides[source]
        try:
            value = lookup(record, source)
        except ShapeError as exc:
            raise RenderError(exc.field, exc.reason) from None
        if is_empty(value):
            if spec.default is not None:
                return self.default_options(rng, overrides)
            if spec.optional or not (value is MISSING or value is None):
                return []
            raise RenderError(self.field, "missing required field")
        if not isinstance(value, list):
            raise RenderError(self.field, f"expected a list, got {json_kind(value)}")
        return value


class ChoiceRenderer(SlotRenderer):
    """A ``choice of OPTIONS`` slot: the label (``B``) of the option equal to its value, in
    the order ``OPTIONS`` (a ``choices`` slot with ``enumerate``) is rendered for the same
    instance, shuffled or not."""

    __slots__ = ("options_slot",)

    def __init__(self, spec: SlotSpec, options: SlotRenderer) -> None:
        super().__init__(spec, False)
        self.options_slot = options
        self._fast = False

    def render(
        self, record: Mapping[str, Any], overrides: Overrides | None, rng: random.Random | None
    ) -> str:
        spec = self.spec
        source = spec.source
        if source is None:  # unreachable: a choice slot reads a field
            return ""
        try:
            value = lookup(record, source)
        except ShapeError as exc:
            raise RenderError(exc.field, exc.reason) from None
        if is_empty(value):
            if spec.default is not None:
                return spec.default
            if spec.optional:
                return ""
            if value is MISSING or value is None:
                raise RenderError(self.field, "missing required field")
        options = self.options_slot.options(record, overrides, rng)
        pattern = self.options_slot.pattern
        if pattern is None:  # unreachable after check (E028)
            raise RenderError(self.field, f"the options of `{spec.of}` are not enumerated")
        keys = [_option_key(o) for o in options]
        if spec.is_list:
            if not isinstance(value, list):
                raise RenderError(self.field, f"expected a list, got {json_kind(value)}")
            labels = [
                self._label(e, keys, pattern, f"{self.field}[{i}]") for i, e in enumerate(value)
            ]
            return spec.sep.join(labels)
        return self._label(value, keys, pattern, self.field)

    def _label(self, value: object, keys: list[str], pattern: Pattern, field: str) -> str:
        key = _option_key(value)
        for k, option in enumerate(keys):
            if option == key:
                return pattern.label(k)
        shown = repr(value[:60]) if isinstance(value, str) else json_kind(value)
        raise RenderError(field, f"{shown} is not one of the options of `{self.spec.of}`")


@functools.lru_cache(maxsize=4096)
def slot_renderer(spec: SlotSpec, shuffled: bool) -> SlotRenderer:
    """The compiled renderer of ``spec`` (cached: every plan of a task shares them)."""
    return SlotRenderer(spec, shuffled)


@functools.lru_cache(maxsize=4096)
def choice_renderer(spec: SlotSpec, options: SlotRenderer) -> ChoiceRenderer:
    """The compiled renderer of the ``choice`` slot ``spec`` labelling ``options``."""
    return ChoiceRenderer(spec, options)
