"""The parser layer: source text in, IR module and diagnostics out.

This is the only place (with :mod:`lower`) that knows about Lark.  Syntax
errors become our :class:`~instraug_dsl.diagnostics.Diagnostic` objects,
worded with the user's tokens (``expected `}` or a string``), never Lark
terminal names.
"""

from __future__ import annotations

import difflib
import functools
import re
import importlib.resources
import typing as t
from pathlib import Path

from lark import Lark, Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from . import ir
from .diagnostics import Diagnostics
from .lower import Lowering
from .source import SourceFile, Span
from .syntax_examples import SYNTAX_ERROR_EXAMPLES

#: How Lark's regex terminals are named to users.
_TERMINAL_WORDS: dict[str, str] = {
    "NAME": "a name",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "NUMBER": "a number",
    "SIGNED_INT": "an integer",
    "BOOL": "`true` or `false`",
    "$END": "end of file",
}


def grammar_text() -> str:
    """Return ``iat.lark`` from the installed package, or the source checkout."""
    packaged = importlib.resources.files("instraug_dsl").joinpath("grammar/iat.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    # Running from a source checkout (editable install): grammar/ is top level.
    return (Path(__file__).resolve().parent.parent / "grammar" / "iat.lark").read_text(
        encoding="utf-8"
    )


@functools.lru_cache(maxsize=1)
def lark_parser() -> Lark:
    """Build the LALR parser once per process (strict: conflicts are bugs)."""
    return Lark(
        grammar_text(),
        parser="lalr",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=False,
    )


def _describe(terminal: str) -> str:
    if terminal in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[terminal]
    try:
        pattern = lark_parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    if isinstance(pattern, PatternStr):
        return f"`{pattern.value}`"
    return terminal.lower()


def _expected_words(expected: t.Iterable[str]) -> list[str]:
    words = sorted({_describe(e) for e in expected})
    return words


def _keyword_values(expected: t.Iterable[str]) -> list[str]:
    out = []
    for term in expected:
        try:
            pattern = lark_parser().get_terminal(term).pattern
        except KeyError:
            continue
        if isinstance(pattern, PatternStr) and pattern.value.isidentifier():
            out.append(pattern.value)
    return out


def _found(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return f"`{token.value}`" if len(token.value) <= 40 else f"`{token.value[:37]}...`"


def _token_span(source: SourceFile, token: Token) -> Span:
    start = token.start_pos if token.start_pos is not None else len(source.text)
    end = start + (len(token.value) if token.type != "$END" else 0)
    return source.span(start, max(end, start))


def _syntax_diagnostic(source: SourceFile, err: UnexpectedInput, diags: Diagnostics) -> None:
    label = None
    try:
        label = err.match_examples(
            lark_parser().parse, SYNTAX_ERROR_EXAMPLES, use_accepts=True
        )
    except Exception:  # noqa: BLE001 - a failing example must never hide the real error
        label = None
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        ch = source.text[pos] if pos < len(source.text) else ""
        if ch == '"':
            end = source.text.find("\n", pos)
            end = len(source.text) if end < 0 else end
            diags.add(
                "E002",
                "unterminated string",
                source.span(pos, end),
                hint='close it with `"` on the same line, or use """...""" for text over several lines',
            )
            return
        diags.add("E004", f"unexpected character `{ch}`", source.span(pos, pos + 1))
        return
    if isinstance(err, UnexpectedToken | UnexpectedEOF):
        token = err.token if isinstance(err, UnexpectedToken) else Token("$END", "")
        expected = set(err.expected)
        span = _token_span(source, token)
        if token.type == "$END":  # Lark points EOF at the last token; we point past it
            span = source.span(len(source.text), len(source.text))
        if token.type == "$END":
            hint = "a block opened with `{` is not closed" if "RBRACE" in expected else label
            diags.add("E005", "unexpected end of file", span, hint=hint)
            return
        words = _expected_words(expected)
        listing = ", ".join(words[:-1]) + (" or " if len(words) > 1 else "") + words[-1]
        message = label or f"unexpected {_found(token)}, expected {listing}"
        hint = None
        if token.type == "NAME":
            close = difflib.get_close_matches(token.value, _keyword_values(expected), n=1)
            hint = f"did you mean `{close[0]}`?" if close else None
        if label is not None and hint is None:
            hint = f"expected {listing}"
        diags.add("E001", message, span, hint=hint)
        return
    diags.add("E001", "syntax error", source.span(0, 0))  # pragma: no cover - defensive


_COMMENT_SCAN = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*', re.S)


def collect_comments(source: SourceFile) -> tuple[ir.Comment, ...]:
    """Return every ``# ...`` comment of a file (outside strings), for the formatter."""
    comments: list[ir.Comment] = []
    for match in _COMMENT_SCAN.finditer(source.text):
        if match.group().startswith("#"):
            comments.append(ir.Comment(match.group(), source.span(match.start(), match.end())))
    return tuple(comments)


def parse_source(source: SourceFile, diagnostics: Diagnostics) -> ir.Module | None:
    """Parse one file; on a syntax error record it and return ``None``."""
    try:
        tree = lark_parser().parse(source.text)
    except UnexpectedInput as err:
        _syntax_diagnostic(source, err, diagnostics)
        return None
    items = Lowering(source, diagnostics).transform(tree)
    return ir.Module(
        source.path,
        tuple(items),
        collect_comments(source),
        source.span(0, len(source.text)),
    )


def parse(text: str, path: str = "<string>") -> tuple[ir.Module | None, Diagnostics]:
    """Parse source text into a module (no imports, no checks).

    >>> module, diags = parse('task t { instruction i0 = "Describe the image." }')
    >>> [item.name.value for item in module.items], len(diags)
    (['t'], 0)
    """
    diagnostics = Diagnostics()
    module = parse_source(SourceFile(path, text), diagnostics)
    return module, diagnostics
