"""The parser layer: source text in, IR module and diagnostics out.

This is the only place (with :mod:`lower`) that knows about Lark.  Syntax
errors become our :class:`~instraug_dsl.lang.diagnostics.Diagnostic` objects,
worded with the user's tokens (``expected `}` or a string``), never Lark
terminal names.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import os
import re
import sys
import typing as t
import zlib
from pathlib import Path

import lark
from lark import Lark, Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError
from lark.lexer import PatternStr

from ..errors import IatError
from ..fsio import AtomicFile, cache_dir
from . import ir
from .diagnostics import Diagnostics
from .lower import Lowering
from .source import SourceFile, Span
from .syntax_examples import SYNTAX_ERROR_EXAMPLES

#: How Lark's regex terminals are named to users.
_TERMINAL_WORDS: dict[str, str] = {
    "NAME": "a name",
    "STRING": "a string",
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
    return (Path(__file__).resolve().parents[2] / "grammar" / "iat.lark").read_text(
        encoding="utf-8"
    )


#: Options of the one parser; part of the cache key.
_LARK_OPTIONS: dict[str, t.Any] = {
    "parser": "lalr",
    "strict": True,
    "propagate_positions": True,
    "maybe_placeholders": False,
}


def build_parser() -> Lark:
    """Build the LALR parser from the grammar, uncached (strict: conflicts are bugs)."""
    return Lark(grammar_text(), **_LARK_OPTIONS)


def _trusted(path: Path) -> bool:
    """Ours and writable by nobody else: only then is a pickle safe to load."""
    if not hasattr(os, "getuid"):
        return True
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _cache_file(text: str) -> Path | None:
    directory = cache_dir("parser")
    if directory is None:
        return None
    key = "\0".join(
        [text, repr(sorted(_LARK_OPTIONS.items())), lark.__version__, sys.version]
    ).encode("utf-8")
    # Two 32-bit checksums: enough to tell grammar versions apart, and zlib
    # (unlike hashlib) costs nothing to import.
    digest = f"{zlib.crc32(key):08x}{zlib.adler32(key):08x}"
    return directory / f"iat-parser-{digest}.pickle"


@functools.lru_cache(maxsize=1)
def lark_parser() -> Lark:
    """The parser, built once per process and cached on disk across processes.

    Building the grammar in strict mode costs ~0.3 s (regex collision checks),
    more than everything else ``iatc check`` does on a small project, so the
    built tables are pickled to a file keyed by grammar, options and
    versions.  The cache is only an optimisation: an unreadable, corrupt or
    unwritable cache falls back to building (tests build uncached with
    :func:`build_parser` to prove the grammar strict).
    """
    text = grammar_text()
    path = _cache_file(text)
    try:
        if path is not None and path.is_file() and _trusted_dir(path.parent) and _trusted(path):
            with path.open("rb") as handle:
                return Lark.load(handle)
    except Exception:  # noqa: BLE001 - a bad cache must never stop a check
        pass
    parser = build_parser()
    if path is not None:
        _save(parser, path)
    return parser


def _trusted_dir(directory: Path) -> bool:
    """The cache folder and the folder holding it are ours and closed to others."""
    return _trusted(directory.parent) and _trusted(directory)


def _save(parser: Lark, path: Path) -> None:
    try:
        if path.parent.parent.exists() and not _trusted(path.parent.parent):
            return  # never create our folder inside one that others may write to
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _trusted_dir(path.parent):
            return
        # Atomic: concurrent runs never read half a file.
        with AtomicFile(path, binary=True) as out:
            parser.save(out.handle)
    except (OSError, IatError):
        pass  # the cache is only an optimisation


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


def _state_id(err: UnexpectedInput) -> object:
    state = getattr(err, "state", None)
    return getattr(state, "position", state)


def _match_label(err: UnexpectedInput) -> str | None:
    """The label of a known-bad example that fails in the same parser state.

    Lark's own ``match_examples`` compares whole parser states, stack depth
    included, so an example only matched at the exact same nesting; the
    LALR state number (plus the acceptable tokens) is what identifies the
    mistake.
    """
    accepts = err.accepts if isinstance(err, UnexpectedToken) else None
    for label, kind, position, example_accepts in _example_failures():
        if kind is type(err) and position == _state_id(err):
            if accepts is None or example_accepts is None or accepts == example_accepts:
                return label
    return None


@functools.lru_cache(maxsize=1)
def _example_failures() -> tuple[tuple[str, type, object, frozenset[str] | None], ...]:
    """How each known-bad example fails, computed once per process."""
    out: list[tuple[str, type, object, frozenset[str] | None]] = []
    for label, examples in SYNTAX_ERROR_EXAMPLES.items():
        for example in examples:
            try:
                lark_parser().parse(example)
            except UnexpectedInput as failure:
                accepts = failure.accepts if isinstance(failure, UnexpectedToken) else None
                frozen = frozenset(accepts) if accepts is not None else None
                out.append((label, type(failure), _state_id(failure), frozen))
    return tuple(out)


def _syntax_diagnostic(source: SourceFile, err: UnexpectedInput, diags: Diagnostics) -> None:
    try:
        label = _match_label(err)
    except Exception:  # noqa: BLE001 - a failing example must never hide the real error
        label = None
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream or 0  # always set by the lexer; typed Optional
        ch = source.text[pos] if pos < len(source.text) else ""
        if ch == '"':
            end = source.text.find("\n", pos)
            end = len(source.text) if end < 0 else end
            diags.add(
                "E002",
                "unterminated string",
                source.span(pos, end),
                hint='close it with `"` on the same line,'
                ' or use """...""" for text over several lines',
            )
            return
        diags.add("E004", f"unexpected character `{ch}`", source.span(pos, pos + 1))
        return
    if isinstance(err, UnexpectedToken | UnexpectedEOF):
        token = err.token if isinstance(err, UnexpectedToken) else Token("$END", "")
        # `accepts` tries each terminal, so it is exact where LALR's merged
        # lookaheads (err.expected) list every token that may follow a name.
        accepts = getattr(err, "accepts", None) if isinstance(err, UnexpectedToken) else None
        expected = set(accepts or err.expected)
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


#: A line that starts a top-level declaration: where parsing resumes after an error.
_RESYNC = re.compile(
    r"^(?:import|type|task|metaprompt|strategies|bootstrap|plan|sampling|judge)\b", re.M
)
#: Syntax errors reported per file at most (later ones are usually echoes).
MAX_SYNTAX_ERRORS = 10


def _error_offset(source: SourceFile, err: UnexpectedInput) -> int:
    if isinstance(err, UnexpectedCharacters):
        return int(err.pos_in_stream or 0)
    token = getattr(err, "token", None)
    pos = getattr(token, "start_pos", None) if token is not None else None
    if pos is None or getattr(token, "type", "") == "$END":
        return len(source.text)
    return int(pos)


def _resync_points(text: str, after: int) -> t.Iterator[int]:
    """Line starts after ``after`` that begin a declaration, outside strings and comments."""
    inert = [(m.start(), m.end()) for m in _COMMENT_SCAN.finditer(text)]
    line_end = text.find("\n", after)
    if line_end < 0:
        return
    for match in _RESYNC.finditer(text, line_end + 1):
        pos = match.start()
        if not any(start < pos < end for start, end in inert):
            yield pos


def _report_syntax_errors(source: SourceFile, first: UnexpectedInput, diags: Diagnostics) -> None:
    """Report the first error, then resume at following declarations to find more.

    Resuming re-parses the text with everything before the resync point
    blanked out (line breaks kept), so offsets, lines and columns stay true.
    """
    _syntax_diagnostic(source, first, diags)
    offset, reported = _error_offset(source, first), 1
    while reported < MAX_SYNTAX_ERRORS:
        point = next(_resync_points(source.text, offset), None)
        if point is None:
            return
        blanked = re.sub(r"[^\n]", " ", source.text[:point]) + source.text[point:]
        try:
            lark_parser().parse(blanked)
            return
        except UnexpectedInput as err:
            offset = max(_error_offset(source, err), point)
            _syntax_diagnostic(source, err, diags)
            reported += 1


def parse_source(source: SourceFile, diagnostics: Diagnostics) -> ir.Module | None:
    """Parse one file; on syntax errors record them all and return ``None``."""
    try:
        tree = lark_parser().parse(source.text)
    except UnexpectedInput as err:
        _report_syntax_errors(source, err, diagnostics)
        return None
    try:
        items = Lowering(source, diagnostics).transform(tree)
    except VisitError as err:
        # Only int() of an absurdly long literal can fail while lowering.
        if not isinstance(err.orig_exc, ValueError):
            raise
        meta = getattr(err.obj, "meta", None)
        start = getattr(meta, "start_pos", 0)
        end = getattr(meta, "end_pos", start)
        diagnostics.add("E040", "number out of range: too many digits", source.span(start, end))
        return None
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


def next_words(prefix: str) -> tuple[tuple[str, ...], bool] | None:
    """What may follow ``prefix`` (editor completion): the keywords, and whether a name may.

    ``None`` when ``prefix`` itself does not parse as the start of a file.

    >>> next_words("plan p ")
    (('extends',), False)
    """
    try:
        interactive = lark_parser().parse_interactive(prefix)
        interactive.exhaust_lexer()
        accepts: set[str] = interactive.accepts()  # type: ignore[no-untyped-call]
    except UnexpectedInput:
        return None
    words = set(_keyword_values(accepts))
    if "BOOL" in accepts:
        words.update(("true", "false"))
    return tuple(sorted(words)), "NAME" in accepts
