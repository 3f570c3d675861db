"""Safe rendering of instruction templates with typed slot values.

A template is compiled once into a :class:`RenderPlan`: literal strings and slot
renderers, split by the same ``{name}`` splitter as ``.iat`` strings.  Rendering joins the
literals with slot values taken from the record, so no part of the instruction *or* of
the record is ever interpreted: no ``eval``, no ``str.format``, no Jinja.  A field value
such as ``{__class__}`` or ``{{7*7}}`` is inserted as the characters it is.

>>> from instraug_dsl import check_text
>>> cat = check_text('task t { slot q: text  slot options: choices '
...                  'instruction i0 = "Answer: {q}" pin "{options}" }').raise_for_errors()
>>> plan = compile_template(cat.tasks["t"].instructions[0].pieces, cat.tasks["t"])
>>> render(plan, {"q": "{__class__}?", "options": ["a", "b"]}, None, shuffle_options=False)
'Answer: {__class__}?\\n\\n[Options]: a||||b'

Rendering by slot type (:class:`~instraug_dsl.model.SlotSpec`):

* ``text``: a string verbatim (numbers as Python prints them).
* ``bbox``: a ``"x1 y1 x2 y2"`` string verbatim (checked to be four numbers) or a list of
  four numbers joined by spaces.
* ``T[]``: the elements rendered as ``T`` (or by ``each``) joined by ``sep``.
* ``choices``: ``prefix + sep.join(options)``; options are shuffled per instance when
  asked.  Every slot whose source is the field of a ``choices`` slot of the task sees the
  same shuffled order, so ``{options}`` and ``{options_list}`` always agree.  The target is
  the answer *text* and stays valid under any order (a target that were an index or letter
  would need remapping: not needed for MultiInstruct).
* ``const``: its value.
* missing, ``null`` or empty: the slot's ``default`` when declared (for list and choices
  slots the default is split on ``sep``); else ``""`` when optional; else, when missing or
  ``null``, a :class:`RenderError`.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .. import ir
from ..model import PathKey, SlotSpec, TaskSpec
from ..source import Span
from ..strings import quote, split_template
from .eachfmt import EachFormat, FormatError, RenderError, compile_each
from .records import MISSING, ShapeError, dotted, is_empty, kind, lookup

__all__ = [
    "FormatError",
    "RenderError",
    "RenderPlan",
    "TaskRenderer",
    "compile_template",
    "render",
    "render_target",
]

_NUMBER: Final = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_TEXT_SPAN: Final = Span("<instruction>", 0, 0, 1, 1, 1, 1)

Overrides = dict[tuple[PathKey, ...], list[Any]]


def _text(value: object, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise RenderError(field, f"expected text, got {kind(value)}")


def _bbox(value: object, field: str) -> str:
    if isinstance(value, str):
        parts = value.split()
        if len(parts) == 4 and all(_NUMBER.match(p) for p in parts):
            return value
        raise RenderError(field, f'expected a bounding box "x1 y1 x2 y2", got {value[:60]!r}')
    if (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
    ):
        return " ".join(str(x) for x in value)
    raise RenderError(field, f"expected a bounding box (4 numbers), got {kind(value)}")


class SlotRenderer:
    """One slot of a task, compiled: where its value lives and how it becomes text."""

    __slots__ = ("spec", "field", "_each", "_element", "_shuffled")

    def __init__(self, spec: SlotSpec, shuffled: bool) -> None:
        self.spec = spec
        self.field = dotted(spec.source) if spec.source else spec.name
        self._each: EachFormat | None = compile_each(spec.each) if spec.each is not None else None
        self._element = _bbox if spec.base == "bbox" else _text
        self._shuffled = shuffled  # the source is a choices field, shuffled per instance

    def render(
        self, record: Mapping[str, Any], overrides: Overrides | None, rng: random.Random | None
    ) -> str:
        """The slot's text for ``record``; raises :class:`RenderError` naming the field."""
        spec = self.spec
        if spec.source is None:
            return spec.const_value or ""
        value: Any
        if overrides is not None and spec.source in overrides:
            value = overrides[spec.source]
        else:
            try:
                value = lookup(record, spec.source)
            except ShapeError as exc:
                raise RenderError(exc.field, exc.reason) from None
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
            raise RenderError(self.field, f"expected a list, got {kind(value)}")
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
                rng.shuffle(options)
            return spec.prefix + spec.sep.join(options)
        return default


@functools.lru_cache(maxsize=4096)
def _slot_renderer(spec: SlotSpec, shuffled: bool) -> SlotRenderer:
    return SlotRenderer(spec, shuffled)


@dataclass(frozen=True, slots=True)
class RenderPlan:
    """A compiled template: literal ``str`` parts and ``int`` indices into ``slots``.

    ``shuffle_paths`` are the record fields of the task's ``choices`` slots (shuffled
    once per instance); ``target`` is the task's target path; ``text`` the template.
    """

    task: str
    text: str
    parts: tuple[str | int, ...]
    slots: tuple[SlotRenderer, ...]
    shuffle_paths: tuple[tuple[PathKey, ...], ...]
    target: tuple[PathKey, ...]
    slot_names: tuple[str, ...]  # names of ``slots``, in first-use order

    def assemble(self, values: Mapping[str, str]) -> str:
        """Join the literals with already rendered slot values (by slot name)."""
        names = self.slot_names
        return "".join([p if isinstance(p, str) else values[names[p]] for p in self.parts])


def _pieces(template: str | Sequence[ir.Piece]) -> tuple[ir.Piece, ...]:
    if isinstance(template, str):
        # The same splitter as .iat strings; quote() escapes only what would end the literal,
        # so every brace keeps its meaning in the decoded text.
        return split_template(ir.StringLit(template, False, quote(template), _TEXT_SPAN))
    return tuple(template)


def compile_template(template: str | Sequence[ir.Piece], task: TaskSpec) -> RenderPlan:
    """Compile template text (or ``.iat`` pieces) for ``task``.

    Raises :class:`FormatError` when the template uses a slot the task does not declare or
    has a stray or malformed brace: such an instruction is unusable, never rendered.
    """
    declared = {s.name: s for s in task.slots}
    choice_paths = tuple(
        dict.fromkeys(s.source for s in task.slots if s.base == "choices" and s.source)
    )
    parts: list[str | int] = []
    slots: list[SlotRenderer] = []
    index: dict[str, int] = {}
    text: list[str] = []
    for piece in _pieces(template):
        if isinstance(piece, ir.TextPiece):
            text.append(piece.text)
            if parts and isinstance(parts[-1], str):
                parts[-1] += piece.text
            else:
                parts.append(piece.text)
        elif isinstance(piece, ir.SlotRef):
            spec = declared.get(piece.name)
            if spec is None:
                raise FormatError(f"`{{{piece.name}}}` is not a slot of task `{task.name}`")
            if piece.name not in index:
                index[piece.name] = len(slots)
                slots.append(_slot_renderer(spec, spec.source in choice_paths))
            parts.append(index[piece.name])
            text.append("{" + piece.name + "}")
        else:
            raise FormatError(
                f"stray or malformed brace `{piece.text}` in an instruction of task `{task.name}`"
            )
    names = tuple(s.spec.name for s in slots)
    return RenderPlan(
        task.name, "".join(text), tuple(parts), tuple(slots), choice_paths, task.target, names
    )


def _rng(value: random.Random | int | str | None) -> random.Random | None:
    if value is None or isinstance(value, random.Random):
        return value
    return random.Random(value)


def _shuffled(
    paths: tuple[tuple[PathKey, ...], ...], record: Mapping[str, Any], rng: random.Random | None
) -> Overrides:
    if rng is None:
        raise ValueError("shuffle_options=True needs a random.Random or a seed")
    overrides: Overrides = {}
    for path in paths:
        try:
            value = lookup(record, path)
        except ShapeError as exc:
            raise RenderError(exc.field, exc.reason) from None
        if isinstance(value, list):
            value = list(value)
            rng.shuffle(value)
            overrides[path] = value
    return overrides


def render(
    plan: RenderPlan,
    record: Mapping[str, Any],
    rng_or_shuffle_seed: random.Random | int | str | None,
    *,
    shuffle_options: bool,
) -> str:
    """Render ``plan`` with ``record``'s values.

    With ``shuffle_options`` the options of every ``choices`` field are shuffled with the
    given ``random.Random`` (consumed) or a fresh one seeded by the int/str seed.  Raises
    :class:`RenderError` (field and reason) for a missing required field or a value of the
    wrong shape.
    """
    rng = _rng(rng_or_shuffle_seed) if shuffle_options else None
    overrides = (
        _shuffled(plan.shuffle_paths, record, rng)
        if shuffle_options and plan.shuffle_paths
        else None
    )
    values = [slot.render(record, overrides, rng) for slot in plan.slots]
    return "".join([p if isinstance(p, str) else values[p] for p in plan.parts])


class TaskRenderer:
    """Renders every slot that any of a task's plans uses, once per record.

    Materialization validates the same fields whichever instruction is drawn (so the
    errors file does not depend on the seed), then assembles the drawn plan from the
    values with :meth:`RenderPlan.assemble`.
    """

    def __init__(self, plans: Sequence[RenderPlan]) -> None:
        slots: dict[str, SlotRenderer] = {}
        for plan in plans:
            for slot in plan.slots:
                slots.setdefault(slot.spec.name, slot)
        self.slots = tuple(slots.values())
        self.shuffle_paths = plans[0].shuffle_paths if plans else ()

    def values(
        self, record: Mapping[str, Any], rng: random.Random | None, *, shuffle_options: bool
    ) -> dict[str, str]:
        """Slot name to rendered text; raises :class:`RenderError` like :func:`render`."""
        overrides = (
            _shuffled(self.shuffle_paths, record, rng)
            if shuffle_options and self.shuffle_paths
            else None
        )
        srng = rng if shuffle_options else None
        return {slot.spec.name: slot.render(record, overrides, srng) for slot in self.slots}


def render_target(plan: RenderPlan, record: Mapping[str, Any]) -> str:
    """The record's target (answer text) at the task's ``target`` path."""
    field = dotted(plan.target)
    try:
        value = lookup(record, plan.target)
    except ShapeError as exc:
        raise RenderError(exc.field, exc.reason) from None
    if value is MISSING or value is None:
        raise RenderError(field, "missing target")
    return _text(value, field)
