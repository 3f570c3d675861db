"""Diagnostics: codes, the collected-error model, and the one renderer.

Every problem a user can cause is a :class:`Diagnostic` with a stable code
from :data:`CODES`, a span, a message and an optional hint.  Passes collect
them in a :class:`Diagnostics` list instead of raising, so one run of
``iatc check`` reports every error in every file.  :func:`render` is the only
place that turns a diagnostic into text; :meth:`Diagnostic.to_json` is the
only JSON form.
"""

from __future__ import annotations

import difflib
import enum
import typing as t
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .source import Span


class Severity(enum.Enum):
    """How bad a diagnostic is; errors make ``iatc check`` exit 1."""

    ERROR = "error"
    WARNING = "warning"


#: Every diagnostic code with a one-line title (docs/reference/diagnostics.md is generated from it).
CODES: Mapping[str, str] = {
    # syntax and lexing
    "E001": "syntax error",
    "E002": "unterminated string",
    "E003": "invalid escape sequence",
    "E004": "unexpected character",
    "E005": "unexpected end of file",
    # declarations and names
    "E010": "duplicate declaration",
    "E011": "duplicate slot",
    "E012": "duplicate instruction name",
    "E013": "unknown reference",
    "E014": "duplicate property",
    # slots and types
    "E020": "undeclared slot",
    "W021": "unused slot",
    "E022": "unknown slot type",
    "E023": "invalid type option",
    "E024": "slot source missing or not allowed",
    "E025": "`each` on a non-list slot",
    "E026": "type alias cycle",
    "E027": "type needs an option",
    "E028": "invalid `of` reference",
    # instructions
    "E030": "empty instruction",
    "E031": "stray or unbalanced brace",
    "E032": "invalid placeholder",
    "E033": "pinned segment in the middle of an instruction",
    "W034": "duplicate instruction text",
    "E035": "task without instructions",
    "W036": "target shown in the prompt",
    # numbers, ranges and enumerations
    "E040": "number out of range",
    "E041": "invalid range",
    "E042": "invalid choice",
    # plans and meta-prompts
    "E050": "held-out task in an augmentation plan",
    "W051": "task cannot be augmented",
    "E052": "inheritance cycle",
    "E053": "plan uses no meta-prompt",
    "E054": "invalid meta-prompt template",
    "E055": "unknown meta-prompt variable",
    "E056": "meta-prompt lacks the instruction",
    "E057": "more than one default plan",
    # files and imports
    "E060": "imported file not found",
    "E061": "import cycle",
    "E062": "cannot read file",
    "E063": "import of a file that is not `.iat`",
    "E064": "import outside the project",
    # the meta-prompt sandbox (checked before anything is rendered)
    "E070": "template loads another template",
    "E071": "template recursion",
    "E072": "template construct refused by the sandbox",
    "E073": "template nested too deeply",
    "E074": "template exceeds a rendering limit",
}

#: Diagnostics of one code kept per file; the rest become one "... and N more" line,
#: so a pathological file (ten thousand stray braces) prints a screenful, not megabytes.
MAX_PER_CODE = 20


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a source file.

    ``code`` is a key of :data:`CODES`; its first letter fixes the severity.
    ``hint`` is shown after ``= hint:`` (usually a "did you mean").
    """

    code: str
    message: str
    span: Span
    hint: str | None = None

    @property
    def severity(self) -> Severity:
        """Errors start with E, warnings with W."""
        return Severity.WARNING if self.code.startswith("W") else Severity.ERROR

    def to_json(self) -> dict[str, object]:
        """Return the diagnostic as a JSON-ready mapping (stable keys)."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "hint": self.hint,
            "span": self.span.to_json(),
        }


class Diagnostics:
    """An ordered collection that passes append to."""

    def __init__(self, items: Iterable[Diagnostic] = ()) -> None:
        self._items: list[Diagnostic] = list(items)
        self._counts: dict[tuple[str, str], int] = {}
        for d in self._items:
            self._counts[(d.span.path, d.code)] = self._counts.get((d.span.path, d.code), 0) + 1

    def add(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        """Record one diagnostic; ``code`` must be registered in :data:`CODES`."""
        if code not in CODES:  # a programming error, not a user error
            raise KeyError(f"unregistered diagnostic code {code}")
        self._items.append(Diagnostic(code, message, span, hint))
        key = (span.path, code)
        self._counts[key] = self._counts.get(key, 0) + 1

    def extend(self, items: Iterable[Diagnostic]) -> None:
        """Append several diagnostics."""
        for d in items:
            self.add(d.code, d.message, d.span, d.hint)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def errors(self) -> list[Diagnostic]:
        """Only the error-severity diagnostics."""
        return [d for d in self._items if d.severity is Severity.ERROR]

    def sorted(self, limit: int | None = MAX_PER_CODE) -> list[Diagnostic]:
        """Diagnostics in source order (file, offset), stable for ties.

        At most ``limit`` diagnostics of one code are kept per file (``None``: all);
        the first one left out becomes a summary saying how many more there are.
        """
        ordered = sorted(self._items, key=lambda d: (d.span.path, d.span.start, d.span.end))
        if limit is None:
            return ordered
        totals = Counter((d.span.path, d.code) for d in ordered)
        seen: Counter[tuple[str, str]] = Counter()
        kept: list[Diagnostic] = []
        for d in ordered:
            key = (d.span.path, d.code)
            seen[key] += 1
            if seen[key] <= limit:
                kept.append(d)
            elif seen[key] == limit + 1:
                more = totals[key] - limit
                word = "diagnostic" if more == 1 else "diagnostics"
                summary = f"... and {more} more {d.code} {word} in this file"
                shown = f"(only the first {limit} are shown)"
                kept.append(Diagnostic(d.code, f"{summary} {shown}", d.span))
        return kept

    def crowded(self, code: str, path: str) -> bool:
        """True when ``code`` already has more diagnostics in ``path`` than are shown.

        Passes skip costly hints (did-you-mean over thousands of names) for those.
        """
        count = self._counts.get((path, code), 0)
        return count > MAX_PER_CODE


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """Return ``did you mean `x`?`` for the closest candidate, if any is close."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None


#: Whether :func:`render` emits ANSI colours; only ``cli.main`` turns it on, on a TTY.
_COLOR = False
_STYLES = {"error": "1;31", "warning": "1;33", "caret": "1;31", "hint": "36", "bold": "1"}


def set_color(enabled: bool) -> None:
    """Turn ANSI colours in rendered diagnostics on or off (off by default)."""
    global _COLOR
    _COLOR = enabled


def _paint(text: str, style: str) -> str:
    return f"\x1b[{_STYLES[style]}m{text}\x1b[0m" if _COLOR else text


#: Source lines longer than this are shown as an excerpt around the span.
MAX_EXCERPT = 240
_CONTEXT_BEFORE = 60


def _window(text: str, col: int, width: int) -> tuple[str, int, int]:
    """Cut a very long source line down to the part around ``col`` (marked with ``...``).

    One line of a file can be megabytes long; every diagnostic on it would
    otherwise print all of it.
    """
    if len(text) <= MAX_EXCERPT:
        return text, col, width
    start = max(0, min(col - 1 - _CONTEXT_BEFORE, len(text) - MAX_EXCERPT))
    stop = start + MAX_EXCERPT
    head = "..." if start > 0 else ""
    tail = "..." if stop < len(text) else ""
    shown_col = col - start + len(head)
    shown_width = max(1, min(width, stop - (col - 1)))
    return head + text[start:stop] + tail, shown_col, shown_width


def render(diag: Diagnostic, source_text: str | None) -> str:
    """Render one diagnostic as text with a source excerpt and caret underline.

    ``source_text`` is the whole file; ``None`` (file unreadable) prints the
    header and hint only.  The underline covers the whole span on its first
    line (a multi-line span is underlined to the end of that line).
    """
    span = diag.span
    level = diag.severity.value
    head = (
        f"{_paint(f'{span.path}:{span.line}:{span.col}:', 'bold')} "
        f"{_paint(f'{level}[{diag.code}]:', level)} {diag.message}"
    )
    lines = [head]
    if source_text is not None and span.path != "<builtin>":
        all_lines = source_text.split("\n")
        if 1 <= span.line <= len(all_lines):
            text = all_lines[span.line - 1].replace("\t", " ")
            gutter = " " * len(str(span.line))
            last_col = span.end_col if span.end_line == span.line else len(text) + 1
            width = max(1, last_col - span.col)
            text, col, width = _window(text, span.col, width)
            lines.append(f"{gutter} |")
            lines.append(f"{span.line} | {text}")
            lines.append(f"{gutter} | {' ' * (col - 1)}{_paint('^' * width, 'caret')}")
    if diag.hint:
        pad = " " * len(str(span.line)) if len(lines) > 1 else " "
        lines.append(f"{pad} {_paint('= hint:', 'hint')} {diag.hint}")
    return "\n".join(lines)


class _HasText(t.Protocol):
    @property
    def text(self) -> str: ...


def render_all(diagnostics: Iterable[Diagnostic], sources: Mapping[str, _HasText]) -> str:
    """Render several diagnostics, each with the excerpt of its own file."""
    parts = []
    for diag in diagnostics:
        src = sources.get(diag.span.path)
        parts.append(render(diag, src.text if src is not None else None))
    return "\n".join(parts)
