"""Source files and spans: where every IR node and diagnostic points.

A :class:`Span` is a half-open character range ``[start, end)`` in one
source file, with 1-based line and column of both ends precomputed so that
diagnostics and JSON output never need the text again.  :class:`SourceFile`
owns the text and turns offsets into spans.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open character range in one source file.

    ``line``/``col`` locate ``start`` and ``end_line``/``end_col`` locate
    ``end``; all four are 1-based, columns count characters (not bytes).
    """

    path: str
    start: int
    end: int
    line: int
    col: int
    end_line: int
    end_col: int

    def to_json(self) -> dict[str, object]:
        """Return the span as a JSON-ready mapping."""
        return {
            "path": self.path,
            "start": self.start,
            "end": self.end,
            "line": self.line,
            "col": self.col,
            "end_line": self.end_line,
            "end_col": self.end_col,
        }


#: A span for things that have no source (built-in types, generated nodes).
BUILTIN = Span("<builtin>", 0, 0, 1, 1, 1, 1)


@dataclass(frozen=True)
class SourceFile:
    """The text of one `.iat` file plus a line table for offset lookups."""

    path: str
    text: str
    _line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0]
        for i, ch in enumerate(self.text):
            if ch == "\n":
                starts.append(i + 1)
        object.__setattr__(self, "_line_starts", tuple(starts))

    def position(self, offset: int) -> tuple[int, int]:
        """Return the 1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    def span(self, start: int, end: int) -> Span:
        """Build the span of ``text[start:end]``."""
        line, col = self.position(start)
        end_line, end_col = self.position(end)
        return Span(self.path, start, end, line, col, end_line, end_col)

    def line_text(self, line: int) -> str:
        """Return one 1-based line without its line break."""
        if line < 1 or line > len(self._line_starts):
            return ""
        begin = self._line_starts[line - 1]
        stop = self.text.find("\n", begin)
        return self.text[begin:] if stop < 0 else self.text[begin:stop]
