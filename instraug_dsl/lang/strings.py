"""String literals: unescaping with source positions, quoting, and splitting
instruction text into literal and ``{slot}`` pieces.

Kept separate from lowering because the formatter (quoting), the checker
(brace errors) and the renderer (pieces) all need the same rules.

Escapes in both ``"..."`` and ``\"\"\"...\"\"\"`` literals: ``\\\\ \\" \\n \\t \\r
\\{ \\}`` and ``\\uXXXX``.  ``\\{`` and ``\\}`` are literal braces that never
start a placeholder.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from .ir import BadBrace, Piece, SlotRef, StringLit, TextPiece
from .source import Span

_SIMPLE_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "{": "{", "}": "}"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class Char:
    """One unescaped character, where it came from, and whether it was escaped."""

    ch: str
    start: int  # offset of its spelling within the raw literal
    end: int
    escaped: bool


@dataclass(frozen=True, slots=True)
class EscapeError:
    """An unknown or malformed escape at ``[start, end)`` of the raw literal."""

    text: str
    start: int
    end: int


def body_bounds(raw: str) -> tuple[int, int]:
    """Return where the body of a literal starts and ends inside ``raw``."""
    quote = 3 if raw.startswith('"""') else 1
    return quote, len(raw) - quote


def decode(raw: str) -> tuple[list[Char], list[EscapeError]]:
    """Unescape a literal (quotes included) into characters with raw offsets."""
    begin, stop = body_bounds(raw)
    chars: list[Char] = []
    errors: list[EscapeError] = []
    i = begin
    while i < stop:
        ch = raw[i]
        if ch != "\\":
            chars.append(Char(ch, i, i + 1, False))
            i += 1
            continue
        nxt = raw[i + 1] if i + 1 < stop else ""
        if nxt in _SIMPLE_ESCAPES and nxt:
            chars.append(Char(_SIMPLE_ESCAPES[nxt], i, i + 2, True))
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", raw[i + 2 : i + 6]):
            chars.append(Char(chr(int(raw[i + 2 : i + 6], 16)), i, i + 6, True))
            i += 6
        else:
            errors.append(EscapeError(raw[i : i + 2], i, min(i + 2, stop)))
            chars.append(Char(nxt, i, i + 2, True))
            i += 2
    return chars, errors


def quote(value: str, triple: bool = False) -> str:
    """Return the literal spelling of ``value`` (inverse of :func:`decode`).

    Braces are written as is; only characters that would end or break the
    literal are escaped, so `{slot}` references stay readable.
    """
    out: list[str] = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":  # a triple-quoted literal keeps its line breaks
            out.append("\\n" if not triple else ch)
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029\ufeff":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    delim = '"""' if triple else '"'
    return delim + "".join(out) + delim


def _line_starts(raw: str) -> tuple[int, ...]:
    """Offsets in ``raw`` where a line starts (0 first)."""
    return (0, *(i + 1 for i, ch in enumerate(raw) if ch == "\n"))


#: Line tables of the literals being split; a literal with thousands of brace
#: errors asks for thousands of sub-spans, which must not each rescan it.
_LINE_STARTS_CACHE: dict[str, tuple[int, ...]] = {}


def sub_span(lit: StringLit, start: int, end: int) -> Span:
    """Span of ``lit.raw[start:end]`` computed from the literal's own span."""
    starts = _LINE_STARTS_CACHE.get(lit.raw)
    if starts is None:
        if len(_LINE_STARTS_CACHE) > 64:
            _LINE_STARTS_CACHE.clear()
        starts = _LINE_STARTS_CACHE[lit.raw] = _line_starts(lit.raw)
    base = lit.span

    def position(pos: int) -> tuple[int, int]:
        index = bisect.bisect_right(starts, pos) - 1
        if index == 0:
            return base.line, base.col + pos
        return base.line + index, pos - starts[index] + 1

    (sl, sc), (el, ec) = position(start), position(end)
    return Span(base.path, base.start + start, base.start + end, sl, sc, el, ec)


def split_template(lit: StringLit) -> tuple[Piece, ...]:
    """Split instruction text into literal text, ``{slot}`` refs and brace errors.

    An unescaped ``{`` opens a placeholder that must be an identifier closed
    by ``}``; anything else is reported as a :class:`BadBrace` piece so the
    checker can point at it.  Escaped braces are ordinary text.
    """
    chars, _ = decode(lit.raw)
    pieces: list[Piece] = []
    text: list[Char] = []

    def flush() -> None:
        if text:
            span = sub_span(lit, text[0].start, text[-1].end)
            pieces.append(TextPiece("".join(c.ch for c in text), span))
            text.clear()

    i = 0
    while i < len(chars):
        c = chars[i]
        if c.escaped or c.ch not in "{}":
            text.append(c)
            i += 1
            continue
        flush()
        if c.ch == "}":
            pieces.append(BadBrace("stray_close", "}", sub_span(lit, c.start, c.end)))
            i += 1
            continue
        j = i + 1
        while j < len(chars) and not (not chars[j].escaped and chars[j].ch in "{}\n"):
            j += 1
        if j < len(chars) and chars[j].ch == "}" and not chars[j].escaped:
            name = "".join(ch.ch for ch in chars[i + 1 : j])
            span = sub_span(lit, c.start, chars[j].end)
            if _IDENT.match(name):
                pieces.append(SlotRef(name, span))
            else:
                pieces.append(BadBrace("bad_name", "{" + name + "}", span))
            i = j + 1
        else:
            pieces.append(BadBrace("stray_open", "{", sub_span(lit, c.start, c.end)))
            i += 1
    flush()
    return tuple(pieces)
