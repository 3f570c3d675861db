"""LSP positions and our spans.

A :class:`~instraug_dsl.lang.source.Span` counts characters (1-based lines and columns);
an LSP position counts code units of the negotiated encoding (UTF-16 unless the client
offers another) on 0-based lines.  Texts here have ``\\n`` line breaks (the loader reads
files with universal newlines; the server normalises open documents the same way).
"""

from __future__ import annotations

from lsprotocol import types

from ..lang.source import SourceFile, Span


class Positions:
    """Converts between character offsets and LSP positions for one position encoding."""

    def __init__(self, encoding: str = "utf-16") -> None:
        self.encoding = encoding

    def width(self, text: str) -> int:
        """How many code units ``text`` takes in this encoding."""
        if self.encoding == "utf-8":
            return len(text.encode("utf-8"))
        if self.encoding == "utf-32":
            return len(text)
        return len(text.encode("utf-16-le")) // 2

    def index(self, line: str, units: int) -> int:
        """The character index in ``line`` that is ``units`` code units in (clamped)."""
        if self.encoding == "utf-32":
            return max(0, min(units, len(line)))
        count = 0
        for i, ch in enumerate(line):
            if count >= units:
                return i
            count += self.width(ch)
        return len(line)

    def position(self, source: SourceFile, line: int, col: int) -> types.Position:
        """The LSP position of a 1-based ``line``/``col`` (characters) of ``source``."""
        text = source.line_text(line)
        return types.Position(line=max(line - 1, 0), character=self.width(text[: col - 1]))

    def range(self, source: SourceFile, span: Span) -> types.Range:
        """The LSP range of a span of ``source``."""
        return types.Range(
            start=self.position(source, span.line, span.col),
            end=self.position(source, span.end_line, span.end_col),
        )

    def offset(self, text: str, position: types.Position) -> int:
        """The character offset in ``text`` of an LSP position (clamped to the text)."""
        start = 0
        for _ in range(position.line):
            newline = text.find("\n", start)
            if newline < 0:
                return len(text)
            start = newline + 1
        stop = text.find("\n", start)
        line = text[start:] if stop < 0 else text[start:stop]
        return start + self.index(line, position.character)

    def end(self, text: str) -> types.Position:
        """The LSP position just past the end of ``text`` (any line breaks)."""
        lines = text.split("\n")
        return types.Position(line=len(lines) - 1, character=self.width(lines[-1]))
