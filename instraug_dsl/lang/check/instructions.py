"""Instruction text: slots, braces, pins, empty and duplicate instructions, target leaks."""

from __future__ import annotations

import typing as t
from collections.abc import Iterator

from .. import ir
from ..diagnostics import did_you_mean
from .context import (
    Context,
    all_of,
    field_path_keys,
    task_augmentable,
    task_instructions,
    task_props,
    task_slots,
)
from .types import resolved_type


def _segments_text(instr: ir.Instruction) -> str:
    return "".join(seg.literal.value for seg in instr.segments)


def check_instructions(program: ir.Program, ctx: Context) -> None:
    """Placeholders (E020, W021, E031, E032), emptiness (E030, E035), pins (E033), W034."""
    for task in all_of(program, ir.Task):
        slots = {s.name.value: s for s in task_slots(task)}
        used: set[str] = set()
        instructions = task_instructions(task)
        if not instructions:
            ctx.diagnostics.add(
                "E035", f"task `{task.name.value}` has no instructions", task.name.span
            )
        texts: dict[str, ir.Instruction] = {}
        for instr in instructions:
            text = _segments_text(instr)
            if not text.strip():
                ctx.diagnostics.add(
                    "E030", f"instruction `{instr.name.value}` is empty", instr.span
                )
            elif text in texts and task_augmentable(task):
                # Repeats only matter where paraphrases are judged against originals.
                ctx.diagnostics.add(
                    "W034",
                    f"instruction `{instr.name.value}` repeats instruction"
                    f" `{texts[text].name.value}` word for word",
                    instr.name.span,
                )
            texts.setdefault(text, instr)
            for seg in instr.segments:
                _check_pieces(task, instr, seg.pieces, slots, used, ctx)
            if instr.target is not None:
                _check_pieces(task, instr, instr.target.pieces, slots, used, ctx)
            pins = [seg.pinned for seg in instr.segments]
            first_free = pins.index(False) if False in pins else len(pins)
            last_free = len(pins) - 1 - pins[::-1].index(False) if False in pins else -1
            for i, seg in enumerate(instr.segments):
                if seg.pinned and first_free < i < last_free:
                    ctx.diagnostics.add(
                        "E033",
                        "a pinned segment may only start or end an instruction",
                        seg.span,
                        hint="pinned text is held out of the paraphrase"
                        " and re-attached at the edge it came from",
                    )
        # The options a used `choice` slot labels are used through it.
        for name in list(used):
            slot = slots.get(name)
            of = resolved_type(slot.type, ctx).of if slot is not None else None
            if of is not None:
                used.add(of.value)
        for name, slot in slots.items():
            if name not in used:
                ctx.diagnostics.add(
                    "W021",
                    f"slot `{name}` is not used by any instruction of task `{task.name.value}`",
                    slot.name.span,
                )
        _check_target_leaks(task, instructions, slots, ctx)


def _check_pieces(
    task: ir.Task,
    instr: ir.Instruction,
    pieces: t.Iterable[ir.Piece],
    slots: dict[str, ir.Slot],
    used: set[str],
    ctx: Context,
) -> None:
    """Placeholders of one string of an instruction (or of its target): E020, E031, E032."""
    for piece in pieces:
        if isinstance(piece, ir.SlotRef):
            used.add(piece.name)
            if piece.name not in slots:
                # No did-you-mean past what is shown: it is quadratic.
                crowded = ctx.diagnostics.crowded("E020", piece.span.path)
                ctx.diagnostics.add(
                    "E020",
                    f"undeclared slot `{piece.name}` in task `{task.name.value}`",
                    piece.span,
                    hint=(None if crowded else did_you_mean(piece.name, slots))
                    or f"declare it: `slot {piece.name}: text`",
                )
        elif isinstance(piece, ir.BadBrace):
            if piece.kind == "bad_name":
                ctx.diagnostics.add(
                    "E032",
                    f"`{piece.text}` is not a placeholder: names are letters, digits and `_`",
                    piece.span,
                    hint=r"write literal braces as \{ and \}",
                )
            else:
                ctx.diagnostics.add(
                    "E031",
                    f"stray `{piece.text}` in instruction `{instr.name.value}`",
                    piece.span,
                    hint=r"write a literal brace as \{ or \}",
                )


def _overlap(a: tuple[str | int, ...], b: tuple[str | int, ...]) -> bool:
    """True when one path reads into the other (``answers`` and ``answers[0]``)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _spelled(path: tuple[str | int, ...]) -> str:
    """A path as written in ``.iat`` (``meta.answers[0]``), for messages."""
    out = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)
    return out[1:]


def _check_target_leaks(
    task: ir.Task, instructions: list[ir.Instruction], slots: dict[str, ir.Slot], ctx: Context
) -> None:
    """W036: a slot shown in a prompt reads the task's target field, or the field of a slot
    that only targets use (or a path into or around one): the model would see the answer."""
    target: tuple[str | int, ...] = ("target",)
    for p in task_props(task):
        if isinstance(p, ir.Target):
            target = field_path_keys(p.path)

    def refs(pieces: t.Iterable[ir.Piece]) -> Iterator[ir.SlotRef]:
        return (p for p in pieces if isinstance(p, ir.SlotRef) and p.name in slots)

    def source(name: str) -> tuple[str | int, ...] | None:
        slot = slots[name]
        if resolved_type(slot.type, ctx).base == "const":
            return None
        return field_path_keys(slot.source) if slot.source is not None else (name,)

    in_prompts = {r.name for i in instructions for s in i.segments for r in refs(s.pieces)}
    in_targets = {r.name for i in instructions if i.target for r in refs(i.target.pieces)}
    leaks: list[tuple[tuple[str | int, ...], str]] = [(target, "the task's target field")]
    for name in sorted(in_targets - in_prompts):
        path = source(name)
        if path is not None:
            leaks.append((path, f"the field of slot `{name}`, which only targets show"))
    for instr in instructions:
        for seg in instr.segments:
            for ref in refs(seg.pieces):
                path = source(ref.name)
                if path is None:
                    continue
                found = next(((p, why) for p, why in leaks if _overlap(path, p)), None)
                if found is None:
                    continue
                leak, why = found
                if leak == path:
                    reads = f"`{_spelled(path)}`, {why}"
                elif len(path) < len(leak):
                    reads = f"`{_spelled(path)}`, which holds `{_spelled(leak)}`, {why}"
                else:
                    reads = f"`{_spelled(path)}`, part of `{_spelled(leak)}`, {why}"
                ctx.diagnostics.add(
                    "W036",
                    f"slot `{ref.name}` may show the answer in the prompt of instruction"
                    f" `{instr.name.value}`: it reads {reads}",
                    ref.span,
                    hint="a prompt that holds its answer teaches copying it;"
                    " show another field in the prompt",
                )
