"""The canonical formatter behind ``iatc fmt``: IR (plus comments) back to text.

Layout: two-space indentation, one member per line, a blank line between
top-level items (consecutive ``import`` lines and consecutive ``type`` lines
stay together), an instruction on one line unless it has several
paraphrasable strings (then each further string goes on its own line,
indented four more).  Strings are re-quoted with :func:`strings.quote` in
their original style; numbers keep their spelling.

Comments are kept.  A comment on its own line goes before the member it
precedes (at that member's indentation); a trailing comment stays at the
end of its member's line; comments before a ``}`` or at the end of the file
stay there.  Blank lines survive only next to comments (one at most), so a
comment banner keeps its paragraph.  Comments written *inside* a one-line
construct (say between a slot's name and its type) move above it.

Formatting is idempotent and never changes meaning:
``parse(format(src))`` equals ``parse(src)`` except for spans.
"""

from __future__ import annotations

import bisect
import re
import typing as t
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import ir
from .fmt_text import (
    filter_line,
    judge_line,
    plan_line,
    prompt_line,
    sampling_line,
    slot_line,
    string,
    target_text,
    task_prop_line,
    type_expr,
)

INDENT = "  "
#: Further strings of a multi-line instruction, relative to the instruction.
CONTINUATION = "    "

_Node = t.Any  # any IR node with a ``span``
_SKIP = re.compile(r"(?:\s+|#[^\n]*)*")


@dataclass
class _Placed:
    """Where the comments of one block region go, relative to its children."""

    leading: dict[int, list[ir.Comment]] = field(default_factory=dict)
    trailing: dict[int, ir.Comment] = field(default_factory=dict)
    header: ir.Comment | None = None
    end: list[ir.Comment] = field(default_factory=list)


@dataclass
class _Out:
    """Formatted logical lines of one node (column 0) and comments to hoist.

    A logical line may contain newlines (a triple-quoted string); only its
    start is indented.  ``""`` is a blank line.
    """

    lines: list[str]
    hoisted: list[ir.Comment] = field(default_factory=list)


class _Formatter:
    """Formats one module; ``text`` is only read to place comments."""

    def __init__(self, module: ir.Module, text: str) -> None:
        self.text = text
        self.comments = sorted(module.comments, key=lambda c: c.span.start)
        self._starts = [c.span.start for c in self.comments]

    # ------------------------------------------------------------ comments
    def _inside(self, start: int, end: int) -> list[ir.Comment]:
        """The comments starting in ``[start, end)``."""
        lo = bisect.bisect_left(self._starts, start)
        return self.comments[lo : bisect.bisect_left(self._starts, end, lo)]

    def _blank_between(self, start: int, end: int) -> bool:
        """True when the source has an empty line between two positions."""
        return start < end and self.text.count("\n", start, end) >= 2

    def _place(
        self,
        children: Sequence[_Node],
        comments: list[ir.Comment],
        header_line: int | None,
    ) -> _Placed:
        placed = _Placed()
        pending: list[ir.Comment] = []
        for c in comments:
            if any(ch.span.start <= c.span.start < ch.span.end for ch in children):
                continue  # the child places it
            before = [i for i, ch in enumerate(children) if ch.span.end <= c.span.start]
            prev = before[-1] if before else None
            if prev is not None and children[prev].span.end_line == c.span.line:
                placed.trailing[prev] = c
            elif prev is None and header_line is not None and c.span.line == header_line:
                placed.header = c
            else:
                pending.append(c)
        for c in pending:
            nxt = next((i for i, ch in enumerate(children) if ch.span.start >= c.span.end), None)
            if nxt is None:
                placed.end.append(c)
            else:
                placed.leading.setdefault(nxt, []).append(c)
        return placed

    def _comment_group(
        self, group: list[ir.Comment], prev_end: int | None, next_start: int | None
    ) -> list[str]:
        """Comment lines with the blank lines the source had around them."""
        lines: list[str] = []
        if group and prev_end is not None and self._blank_between(prev_end, group[0].span.start):
            lines.append("")
        for i, c in enumerate(group):
            lines.append(c.text.rstrip())
            after = group[i + 1].span.start if i + 1 < len(group) else next_start
            if after is not None and self._blank_between(c.span.end, after):
                lines.append("")
        return lines

    # ------------------------------------------------------------- layout
    def _sequence(
        self,
        children: Sequence[_Node],
        render: Callable[[_Node], _Out],
        placed: _Placed,
        region_start: int | None,
        separate: Callable[[_Node, _Node], bool] | None = None,
    ) -> list[str]:
        """Children with their comments; ``separate(a, b)`` asks for a blank line."""
        lines: list[str] = []
        prev_end = region_start
        for i, child in enumerate(children):
            out = render(child)
            lead = placed.leading.get(i, [])
            gap = separate is not None and i > 0 and separate(children[i - 1], child)
            if gap and lines and lines[-1] != "":
                lines.append("")
            group = self._comment_group(lead, None if gap else prev_end, child.span.start)
            lines.extend(group)
            lines.extend(c.text.rstrip() for c in out.hoisted)
            body = list(out.lines)
            if i in placed.trailing:
                body[-1] += "  " + placed.trailing[i].text.rstrip()
            lines.extend(body)
            prev_end = child.span.end
            if i in placed.trailing:
                prev_end = placed.trailing[i].span.end
        lines.extend(self._comment_group(placed.end, prev_end, None))
        return lines

    def _block(
        self,
        node: _Node,
        header: str,
        header_end: int,
        children: Sequence[_Node],
        render: Callable[[_Node], _Out],
    ) -> _Out:
        """``header { children }`` with the comments inside the node's span."""
        inner = self._inside(node.span.start, node.span.end)
        hoisted: list[ir.Comment] = []
        placed = _Placed()
        if inner:
            match = _SKIP.match(self.text, header_end)
            open_pos = match.end() if match else header_end
            hoisted = [c for c in inner if c.span.start < open_pos]
            open_line = self.text.count("\n", 0, open_pos) + 1
            placed = self._place(children, [c for c in inner if c.span.start > open_pos], open_line)
        # No blank line right after `{`, whatever the source had.
        body = self._sequence(children, render, placed, None)
        head = header + " {"
        if placed.header is not None:
            head += "  " + placed.header.text.rstrip()
        if not body and placed.header is None:
            return _Out([header + " {}"], hoisted)
        return _Out([head, *_indent(body, INDENT), "}"], hoisted)

    def _leaf(self, node: _Node, line: str) -> _Out:
        """A one-line construct: any comment inside it moves above it."""
        return _Out([line], self._inside(node.span.start, node.span.end))

    # -------------------------------------------------------------- items
    def module(self, module: ir.Module) -> str:
        """The whole file."""
        placed = self._place(module.items, self.comments, None)
        lines = self._sequence(module.items, self.item, placed, None, _separate_items)
        while lines and lines[0] == "":
            lines.pop(0)
        while lines and lines[-1] == "":
            lines.pop()
        return "\n".join(lines) + "\n" if lines else ""

    def item(self, item: ir.Item) -> _Out:
        """One top-level item."""
        match item:
            case ir.Import(path=p):
                return self._leaf(item, f"import {string(p)}")
            case ir.TypeAlias(name=n, type=texpr):
                return self._leaf(item, f"type {n.value} = {type_expr(texpr)}")
            case ir.Task(name=n, members=ms):
                return self._block(item, f"task {n.value}", n.span.end, ms, self.task_member)
            case ir.MetaPrompt(name=n, extends=base, members=ms):
                header = f"metaprompt {n.value}" + (f" extends {base.value}" if base else "")
                end = (base or n).span.end
                return self._block(item, header, end, ms, self.prompt_member)
            case ir.Bootstrap(name=n, members=ms):
                return self._block(item, f"bootstrap {n.value}", n.span.end, ms, self.prompt_member)
            case ir.Strategies(name=n, items=strats):
                return self._block(item, f"strategies {n.value}", n.span.end, strats, self.strategy)
            case ir.Plan(name=n, extends=base, members=ms, default=default):
                header = ("default " if default else "") + f"plan {n.value}"
                header += f" extends {base.value}" if base else ""
                end = (base or n).span.end
                return self._block(item, header, end, ms, self.plan_member)
            case ir.Sampling(name=n, members=ms):
                header = f"sampling {n.value}"
                return self._block(item, header, n.span.end, ms, self.sampling_member)
            case ir.Judge(name=n, members=ms):
                return self._block(item, f"judge {n.value}", n.span.end, ms, self.judge_member)
            case _:
                t.assert_never(item)

    def strategy(self, node: ir.Strategy) -> _Out:
        """``name: "text"`` in a strategies block."""
        return self._leaf(node, f"{node.name.value}: {string(node.text)}")

    def task_member(self, m: ir.TaskMember) -> _Out:
        """One member of a task block."""
        match m:
            case ir.Instruction():
                return self.instruction(m)
            case ir.Slot():
                return self._leaf(m, slot_line(m))
            case _:
                return self._leaf(m, task_prop_line(m))

    def instruction(self, instr: ir.Instruction) -> _Out:
        """One line, or one line per string when several strings are paraphrased (the
        ``-> "target"`` then goes on a line of its own too)."""
        segments: list[ir.Segment | ir.TargetTemplate] = list(instr.segments)
        if instr.target is not None:
            segments.append(instr.target)
        parts = [_part(s) for s in segments]
        head = f"instruction {instr.name.value} ="
        inner = self._inside(instr.span.start, instr.span.end)
        if sum(not s.pinned for s in instr.segments) < 2:
            return _Out([" ".join([head, *parts])], inner)
        placed = self._place(segments, inner, None)
        # Comments before or inside the first string cannot stay on its line.
        first_span = segments[0].span
        hoisted = placed.leading.pop(0, [])
        hoisted += [c for c in inner if first_span.start <= c.span.start < first_span.end]
        first = f"{head} {parts[0]}"
        after_first = segments[0].span.end
        if 0 in placed.trailing:
            trailing = placed.trailing.pop(0)
            first += "  " + trailing.text.rstrip()
            after_first = trailing.span.end
        rest = self._sequence(
            segments[1:],
            lambda seg: self._leaf(seg, _part(seg)),
            _Placed(
                {i - 1: cs for i, cs in placed.leading.items()},
                {i - 1: c for i, c in placed.trailing.items()},
            ),
            after_first,
        )
        return _Out([first, *_indent(rest, CONTINUATION)], hoisted)

    def prompt_member(self, m: ir.PromptMember) -> _Out:
        """One member of a metaprompt or bootstrap block."""
        return self._leaf(m, prompt_line(m))

    def plan_member(self, m: ir.PlanMember) -> _Out:
        """One member of a plan block (``filter`` is a nested block)."""
        if isinstance(m, ir.Filter):
            end = m.span.start + len("filter")
            return self._block(m, "filter", end, m.members, self.filter_member)
        return self._leaf(m, plan_line(m))

    def filter_member(self, m: ir.FilterMember) -> _Out:
        """One setting of a filter block."""
        return self._leaf(m, filter_line(m))

    def judge_member(self, m: ir.JudgeMember) -> _Out:
        """One member of a judge block."""
        return self._leaf(m, judge_line(m))

    def sampling_member(self, m: ir.SamplingMember) -> _Out:
        """One setting of a sampling block."""
        return self._leaf(m, sampling_line(m))


# ------------------------------------------------------------ one-liners


def _part(node: ir.Segment | ir.TargetTemplate) -> str:
    """One string of an instruction (``pin "..."``) or its target (``-> "..."``)."""
    if isinstance(node, ir.TargetTemplate):
        return target_text(node)
    return ("pin " if node.pinned else "") + string(node.literal)


def _indent(lines: list[str], prefix: str) -> list[str]:
    return [prefix + line if line else line for line in lines]


def _separate_items(a: ir.Item, b: ir.Item) -> bool:
    """Top-level items get a blank line, except runs of imports or of types."""
    same = type(a) is type(b) and isinstance(a, ir.Import | ir.TypeAlias)
    return not same


# ------------------------------------------------------------------ API


def format_module(module: ir.Module, source_text: str) -> str:
    """Format a parsed module; ``source_text`` is the text it was parsed from.

    The text is only consulted to place comments (``module.comments``), so a
    module built in code (without comments) may pass ``""``.

    >>> from instraug_dsl.lang.parser import parse
    >>> src = 'task t{slot q:text instruction i0="Q: {q}" pin "{q}"}'
    >>> print(format_module(parse(src)[0], src), end="")
    task t {
      slot q: text
      instruction i0 = "Q: {q}" pin "{q}"
    }
    """
    return _Formatter(module, source_text).module(module)


def format_source(text: str, path: str = "<string>") -> str:
    """Parse and format source text.

    Raises :class:`~instraug_dsl.errors.IatCheckError` (with the rendered
    diagnostics) when the text has syntax errors or invalid escapes: a file
    that does not parse is never rewritten.
    """
    from ..errors import IatCheckError
    from .parser import parse
    from .source import SourceFile

    module, diagnostics = parse(text, path)
    if module is None or diagnostics.errors:
        raise IatCheckError(diagnostics.sorted(), {path: SourceFile(path, text)})
    return format_module(module, text)
