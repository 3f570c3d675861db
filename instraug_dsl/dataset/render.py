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

Rendering by slot type (:class:`~instraug_dsl.lang.model.SlotSpec`):

* ``text``: a string verbatim (numbers as Python prints them).
* ``bbox``: a ``"x1 y1 x2 y2"`` string verbatim (checked to be four numbers) or a list of
  four numbers joined by spaces.
* ``T[]``: the elements rendered as ``T`` (or by ``each``) joined by ``sep``.
* ``choices``: ``prefix + sep.join(options)``; options are shuffled per instance when
  asked (unless the slot says ``shuffle false``).  Every slot whose source is the field of
  a ``choices`` slot of the task sees the same shuffled order, so ``{options}`` and
  ``{options_list}`` always agree.  With ``enumerate "(A) "`` each option is preceded by
  the pattern with its counter (``(A) x||||(B) y``).
* ``choice of OPTIONS``: the counter (``B``) of the option equal to the record value, in
  the order ``OPTIONS`` was rendered for this instance, so a letter target stays right
  under any shuffle; a value not among the options is a :class:`RenderError`.
* ``label names "a", "b"``: the record value (an integer or a string of one) selects a
  name, 0-based; anything else, or a number out of range, is a :class:`RenderError`.
* ``const``: its value.
* missing, ``null`` or empty: the slot's ``default`` when declared (for list and choices
  slots the default is split on ``sep``); else ``""`` when optional; else, when missing or
  ``null``, a :class:`RenderError`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..lang import ir
from ..lang.model import PathKey, TaskSpec
from ..lang.source import Span
from ..lang.strings import quote, split_template
from .eachfmt import FormatError, RenderError
from .records import MISSING, ShapeError, dotted, lookup
from .slots import (
    Overrides,
    SlotRenderer,
    choice_renderer,
    shuffled,
    slot_renderer,
    text_value,
)

__all__ = [
    "FormatError",
    "RenderError",
    "RenderPlan",
    "TaskRenderer",
    "compile_template",
    "render",
    "render_row",
    "render_target",
    "split_text",
]

_TEXT_SPAN: Final = Span("<instruction>", 0, 0, 1, 1, 1, 1)
_SLOT_SPLIT: Final = re.compile(r"(\{[A-Za-z_][A-Za-z0-9_]*\})")


@dataclass(frozen=True, slots=True)
class RenderPlan:
    """A compiled template: literal ``str`` parts and ``int`` indices into ``slots``.

    ``shuffle_paths`` are the record fields of the task's ``choices`` slots that shuffle
    (once per instance); ``target`` is the task's target path; ``text`` the template.
    ``target_parts`` (with ``target_text``) is the instruction's own target template, in
    the same form as ``parts``; ``None``: the target is the value at ``target``.  The
    first ``prompt_slots`` of ``slots`` are those of the prompt, the rest only its target.
    """

    task: str
    text: str
    parts: tuple[str | int, ...]
    slots: tuple[SlotRenderer, ...]
    shuffle_paths: tuple[tuple[PathKey, ...], ...]
    target: tuple[PathKey, ...]
    slot_names: tuple[str, ...]  # names of ``slots``, in first-use order (prompt, then target)
    target_parts: tuple[str | int, ...] | None = None
    target_text: str | None = None
    prompt_slots: int = -1  # -1: all of ``slots``

    def assemble(self, values: Mapping[str, str]) -> str:
        """Join the literals with already rendered slot values (by slot name)."""
        names = self.slot_names
        return "".join([p if isinstance(p, str) else values[names[p]] for p in self.parts])

    def assemble_target(self, values: Mapping[str, str]) -> str | None:
        """The target template joined with rendered slot values (``None``: no template)."""
        if self.target_parts is None:
            return None
        names = self.slot_names
        return "".join([p if isinstance(p, str) else values[names[p]] for p in self.target_parts])


def split_text(template: str) -> tuple[ir.Piece, ...]:
    """Split plain template text into text and ``{slot}`` pieces, as ``.iat`` strings are.

    :func:`~instraug_dsl.lang.strings.split_template` is the authority.  A regex split gives the
    same pieces whenever every brace belongs to a ``{name}`` reference, which is the case
    for every usable template, and is much cheaper (runs hold ~10K rewrites); any other
    brace goes to ``split_template`` so that it reports exactly what is wrong.
    """
    parts = _SLOT_SPLIT.split(template)
    if any("{" in t or "}" in t for t in parts[::2]):
        # quote() escapes only what would end the literal: every brace keeps its meaning
        return split_template(ir.StringLit(template, False, quote(template), _TEXT_SPAN))
    pieces: list[ir.Piece] = []
    for i, part in enumerate(parts):
        if i % 2:
            pieces.append(ir.SlotRef(part[1:-1], _TEXT_SPAN))
        elif part:
            pieces.append(ir.TextPiece(part, _TEXT_SPAN))
    return tuple(pieces)


def _pieces(template: str | Sequence[ir.Piece]) -> tuple[ir.Piece, ...]:
    return split_text(template) if isinstance(template, str) else tuple(template)


def shuffle_paths(task: TaskSpec) -> tuple[tuple[PathKey, ...], ...]:
    """The record fields of ``task``'s ``choices`` slots whose options shuffle per instance."""
    return tuple(
        dict.fromkeys(
            s.source for s in task.slots if s.base == "choices" and s.source and s.shuffle
        )
    )


class _Compiler:
    """Pieces to parts for one task: the slot renderers shared by a prompt and its target."""

    def __init__(self, task: TaskSpec) -> None:
        self.task = task
        self.declared = {s.name: s for s in task.slots}
        self.shuffled = shuffle_paths(task)
        self.slots: list[SlotRenderer] = []
        self.index: dict[str, int] = {}

    def renderer(self, name: str) -> SlotRenderer:
        spec = self.declared[name]
        if spec.base != "choice":
            return slot_renderer(spec, spec.source in self.shuffled)
        options = self.declared.get(spec.of or "")
        if options is None or options.base != "choices" or options.enumeration is None:
            raise FormatError(  # unreachable after check (E028)
                f"slot `{name}` of task `{self.task.name}` is a choice of `{spec.of}`, which "
                "is not an enumerated choices slot"
            )
        return choice_renderer(spec, slot_renderer(options, options.source in self.shuffled))

    def parts(
        self, template: str | Sequence[ir.Piece], what: str
    ) -> tuple[tuple[str | int, ...], str]:
        parts: list[str | int] = []
        text: list[str] = []
        for piece in _pieces(template):
            if isinstance(piece, ir.TextPiece):
                text.append(piece.text)
                if parts and isinstance(parts[-1], str):
                    parts[-1] += piece.text
                else:
                    parts.append(piece.text)
            elif isinstance(piece, ir.SlotRef):
                if piece.name not in self.declared:
                    raise FormatError(
                        f"`{{{piece.name}}}` is not a slot of task `{self.task.name}`"
                    )
                if piece.name not in self.index:
                    self.index[piece.name] = len(self.slots)
                    self.slots.append(self.renderer(piece.name))
                parts.append(self.index[piece.name])
                text.append("{" + piece.name + "}")
            else:
                raise FormatError(
                    f"stray or malformed brace `{piece.text}` in {what} of task `{self.task.name}`"
                )
        return tuple(parts), "".join(text)


def compile_template(
    template: str | Sequence[ir.Piece],
    task: TaskSpec,
    target: str | Sequence[ir.Piece] | None = None,
) -> RenderPlan:
    """Compile template text (or ``.iat`` pieces) for ``task``; ``target`` is the
    instruction's own target template (``None``: the task's ``target from`` path).

    Raises :class:`FormatError` when the template uses a slot the task does not declare or
    has a stray or malformed brace: such an instruction is unusable, never rendered.
    """
    compiler = _Compiler(task)
    parts, text = compiler.parts(template, "an instruction")
    prompt_slots = len(compiler.slots)
    target_parts: tuple[str | int, ...] | None = None
    target_text: str | None = None
    if target is not None:
        target_parts, target_text = compiler.parts(target, "the target of an instruction")
    slots = tuple(compiler.slots)
    return RenderPlan(
        task.name,
        text,
        parts,
        slots,
        compiler.shuffled,
        task.target,
        tuple(s.spec.name for s in slots),
        target_parts,
        target_text,
        prompt_slots,
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
            overrides[path] = shuffled(value, rng)
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
    slots = plan.slots if plan.prompt_slots < 0 else plan.slots[: plan.prompt_slots]
    values = [slot.render(record, overrides, rng) for slot in slots]
    return "".join([p if isinstance(p, str) else values[p] for p in plan.parts])


def render_row(
    plan: RenderPlan,
    record: Mapping[str, Any],
    rng_or_shuffle_seed: random.Random | int | str | None,
    *,
    shuffle_options: bool,
) -> tuple[str, str]:
    """The prompt and the target of ``record`` rendered together: a target template's
    ``choice`` slots see the options in the order the prompt shows them."""
    rng = _rng(rng_or_shuffle_seed) if shuffle_options else None
    overrides = (
        _shuffled(plan.shuffle_paths, record, rng)
        if shuffle_options and plan.shuffle_paths
        else None
    )
    values = [slot.render(record, overrides, rng) for slot in plan.slots]
    prompt = "".join([p if isinstance(p, str) else values[p] for p in plan.parts])
    if plan.target_parts is None:
        return prompt, _path_target(plan.target, record)
    return prompt, "".join([p if isinstance(p, str) else values[p] for p in plan.target_parts])


class TaskRenderer:
    """Renders every slot that any of a task's plans uses, once per record.

    Materialization validates the same fields whichever instruction is drawn (so the
    errors file does not depend on the seed), then joins the drawn plan's literals with
    those values.  Options are shuffled once per record for the whole task, so the random
    stream advances the same way whichever instruction was drawn.  The slots of target
    templates count as used, and when some plan takes the task's ``target from`` path,
    that path is read for every record too.
    """

    def __init__(self, plans: Sequence[RenderPlan]) -> None:
        slots: dict[str, SlotRenderer] = {}
        for plan in plans:
            for slot in plan.slots:
                slots.setdefault(slot.spec.name, slot)
        self.slots = tuple(slots.values())
        self.shuffle_paths = plans[0].shuffle_paths if plans else ()
        position = {name: i for i, name in enumerate(slots)}

        def remap(plan: RenderPlan, parts: tuple[str | int, ...]) -> tuple[str | int, ...]:
            return tuple(p if isinstance(p, str) else position[plan.slot_names[p]] for p in parts)

        # per plan: its parts with slot indices remapped to this renderer's slot order
        self._parts: dict[int, tuple[str | int, ...]] = {
            id(plan): remap(plan, plan.parts) for plan in plans
        }
        self._targets: dict[int, tuple[str | int, ...] | None] = {
            id(plan): None if plan.target_parts is None else remap(plan, plan.target_parts)
            for plan in plans
        }
        #: the task's target path, read for every record when some plan uses it
        self._path_target = next((p.target for p in plans if p.target_parts is None), None)

    def _values(
        self, record: Mapping[str, Any], rng: random.Random | None, shuffle_options: bool
    ) -> list[str]:
        if shuffle_options and self.shuffle_paths:
            overrides = _shuffled(self.shuffle_paths, record, rng)
            return [slot.render(record, overrides, rng) for slot in self.slots]
        return [slot.render(record, None, None) for slot in self.slots]

    def values(
        self, record: Mapping[str, Any], rng: random.Random | None, *, shuffle_options: bool
    ) -> dict[str, str]:
        """Slot name to rendered text; raises :class:`RenderError` like :func:`render`."""
        values = self._values(record, rng, shuffle_options)
        return {slot.spec.name: v for slot, v in zip(self.slots, values, strict=True)}

    def render(
        self,
        plan: RenderPlan,
        record: Mapping[str, Any],
        rng: random.Random | None,
        *,
        shuffle_options: bool,
    ) -> str:
        """Validate every slot of the task for ``record``, then render ``plan`` (one of the
        plans given at construction)."""
        values = self._values(record, rng, shuffle_options)
        return "".join([p if p.__class__ is str else values[p] for p in self._parts[id(plan)]])  # type: ignore[index]

    def render_row(
        self,
        plan: RenderPlan,
        record: Mapping[str, Any],
        rng: random.Random | None,
        *,
        shuffle_options: bool,
    ) -> tuple[str, str]:
        """:meth:`render` plus the row's target: the plan's target template rendered with
        the same values (options in the same order), else the value at the task's path."""
        values = self._values(record, rng, shuffle_options)
        prompt = "".join([p if p.__class__ is str else values[p] for p in self._parts[id(plan)]])  # type: ignore[index]
        path_target = (
            _path_target(self._path_target, record) if self._path_target is not None else None
        )
        parts = self._targets[id(plan)]
        if parts is not None:
            return prompt, "".join([p if isinstance(p, str) else values[p] for p in parts])
        if path_target is None:  # unreachable: a plan without a template sets the path
            path_target = _path_target(plan.target, record)
        return prompt, path_target


def render_target(
    plan: RenderPlan, record: Mapping[str, Any], values: Mapping[str, str] | None = None
) -> str:
    """The record's target: the plan's target template (its slots rendered without
    shuffling, or taken from ``values``, slot name to text, e.g. :meth:`TaskRenderer.values`
    of the same record), else the answer at the task's ``target`` path."""
    parts = plan.target_parts
    if parts is None:
        return _path_target(plan.target, record)
    if values is None:
        used = sorted({p for p in parts if isinstance(p, int)})
        values = {plan.slot_names[i]: plan.slots[i].render(record, None, None) for i in used}
    names = plan.slot_names
    return "".join([p if isinstance(p, str) else values[names[p]] for p in parts])


def _path_target(path: tuple[PathKey, ...], record: Mapping[str, Any]) -> str:
    """The value at the task's ``target`` path as text."""
    try:
        value = lookup(record, path)
    except ShapeError as exc:
        raise RenderError(exc.field, exc.reason) from None
    if value.__class__ is str:
        return value
    if value is MISSING or value is None:
        raise RenderError(dotted(path), "missing target")
    return text_value(value, dotted(path))
