"""A static reader for the small part of Jinja that promptsource templates mostly use.

Nothing here renders a template: the text is split into literal text, ``{{ ... }}``
outputs, ``{% ... %}`` statements and ``{# ... #}`` comments the way Jinja's lexer does
(default delimiters, ``-`` whitespace control, strings and brackets inside a tag), and an
output's expression is parsed only when it is one of

* a variable path: ``x``, ``x.y``, ``x[0]``, ``x["key"]``, ``x[-1]``;
* a string literal without escapes: ``"yes"``;
* ``answer_choices[INDEX]`` (an integer or a variable path) and
  ``answer_choices | join(SEP)``;

each optionally followed by ``| string`` (a no-op for text).  Everything else raises
:class:`Unsupported` with a reason that names the construct, so the caller can report it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT = re.compile(r"-?[0-9]+")
_STRING = re.compile(r"'([^'\\]*(?:\\.[^'\\]*)*)'|\"([^\"\\]*(?:\\.[^\"\\]*)*)\"", re.S)
#: Attribute names that Jinja resolves on a dict before its keys (``x.items`` is a method).
_DICT_ATTRS = frozenset(n for n in dir(dict) if not n.startswith("_"))
#: Filters that leave a text value as it is.
_IDENTITY_FILTERS = frozenset({"string"})


class Unsupported(ValueError):
    """A construct the ``.iat`` language cannot express (the message says which)."""


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of a template: ``text``, ``output`` (inside ``{{ }}``), ``statement`` or
    ``comment``; ``offset`` is where it starts in the source."""

    kind: str
    text: str
    offset: int
    trim_after: bool = False  # the tag ends with `-`: whitespace after it is dropped


@dataclass(frozen=True, slots=True)
class Path:
    """A record path: its steps (names, integers, quoted keys)."""

    steps: tuple[str | int, ...]

    def spelled(self) -> str:
        """The path as Jinja would spell it."""
        out = str(self.steps[0])
        for step in self.steps[1:]:
            out += f"[{step}]" if isinstance(step, int) else f".{step}"
        return out


@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed output: a ``Path``, a literal ``str``, or an ``answer_choices`` use.

    ``kind`` is ``path``, ``literal``, ``choice_index`` (``index`` an int), ``choice_label``
    (``path`` the label's path) or ``choice_join`` (``sep``).
    """

    kind: str
    path: Path | None = None
    text: str = ""
    index: int = 0
    sep: str = ""


def _close(source: str, start: int, closer: str) -> tuple[int, int]:
    """Where the tag that starts at ``start`` ends: ``(end of its content, after closer)``.

    Strings and brackets are skipped as Jinja's lexer does.
    """
    depth = 0
    i = start
    n = len(source)
    while i < n:
        ch = source[i]
        if ch in "'\"":
            m = _STRING.match(source, i)
            if m is None:
                raise Unsupported(f"unterminated string at offset {i}")
            i = m.end()
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}" and depth > 0:
            depth -= 1
        elif depth == 0 and source.startswith(closer, i):
            return i, i + len(closer)
        i += 1
    raise Unsupported(f"`{closer}` missing: a tag is not closed")


def tokenize(source: str) -> list[Token]:
    """Split ``source`` like Jinja's lexer (default settings); raise :class:`Unsupported`
    for a tag that is not closed."""
    tokens: list[Token] = []
    i = 0
    strip_next = False
    openers = re.compile(r"\{\{|\{%|\{#")
    while True:
        m = openers.search(source, i)
        text = source[i : m.start()] if m else source[i:]
        if strip_next:
            text = text.lstrip()
        begin = m.start() if m else len(source)
        if m is not None and source[m.end() : m.end() + 1] == "-":
            text = text.rstrip()
        if text:
            tokens.append(Token("text", text, i))
        if m is None:
            return tokens
        opener = m.group()
        inner = m.end() + (1 if source[m.end() : m.end() + 1] in ("-", "+") else 0)
        if opener == "{#":
            end = source.find("#}", inner)
            if end < 0:
                raise Unsupported("`#}` missing: a comment is not closed")
            strip_next = source[end - 1] == "-" and end - 1 >= inner
            tokens.append(Token("comment", source[inner:end], begin))
            i = end + 2
            continue
        closer = "}}" if opener == "{{" else "%}"
        end, after = _close(source, inner, closer)
        strip_next = end > inner and source[end - 1] == "-"
        content = source[inner : end - 1 if strip_next else end]
        kind = "output" if opener == "{{" else "statement"
        tokens.append(Token(kind, content, begin, strip_next))
        i = after


# ------------------------------------------------------------------ expressions


def _lex(expr: str) -> list[str]:
    """The tokens of an expression (names, integers, strings, punctuation)."""
    out: list[str] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch.isspace():
            i += 1
            continue
        for pattern in (_STRING, _NAME, _INT):
            m = pattern.match(expr, i)
            if m is not None and (pattern is not _INT or ch.isdigit() or ch == "-"):
                out.append(m.group())
                i = m.end()
                break
        else:
            out.append(ch)
            i += 1
    return out


def _string(token: str) -> str | None:
    """The value of a string literal token (``None`` if it is not one)."""
    if len(token) >= 2 and token[0] in "'\"" and token[-1] == token[0]:
        body = token[1:-1]
        if "\\" in body:
            raise Unsupported(f"the string {token} has escapes")
        return body
    return None


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr.strip()
        self.toks = _lex(expr)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise Unsupported(f"`{{{{ {self.expr} }}}}` ends early")
        self.i += 1
        return tok

    def expect(self, want: str) -> None:
        tok = self.take()
        if tok != want:
            raise Unsupported(f"`{{{{ {self.expr} }}}}` is not a variable or a simple filter")

    def path(self, first: str) -> Path:
        if not _NAME.fullmatch(first):
            raise Unsupported(f"`{{{{ {self.expr} }}}}` is an expression, not a variable")
        steps: list[str | int] = [first]
        while self.peek() in (".", "["):
            if self.take() == ".":
                name = self.take()
                if not _NAME.fullmatch(name):
                    raise Unsupported(f"`{{{{ {self.expr} }}}}`: `.{name}` is not a field")
                if name in _DICT_ATTRS:
                    raise Unsupported(
                        f"`.{name}` is a dict method for Jinja, not the field `{name}`"
                    )
                steps.append(name)
                continue
            inside = self.take()
            literal = _string(inside)
            if literal is not None:
                steps.append(literal)
            elif _INT.fullmatch(inside):
                steps.append(int(inside))
            elif _NAME.fullmatch(inside):
                raise Unsupported(
                    f"`{{{{ {self.expr} }}}}`: the index `{inside}` is computed from the example"
                )
            else:
                raise Unsupported(f"`{{{{ {self.expr} }}}}` is an expression, not a variable")
            self.expect("]")
        return Path(tuple(steps))

    def filters(self) -> list[tuple[str, list[str]]]:
        found: list[tuple[str, list[str]]] = []
        while self.peek() == "|":
            self.take()
            name = self.take()
            if not _NAME.fullmatch(name):
                raise Unsupported(f"`{{{{ {self.expr} }}}}`: `|` is not followed by a filter")
            args: list[str] = []
            if self.peek() == "(":
                self.take()
                while self.peek() != ")":
                    args.append(self.take())
                    if self.peek() == ",":
                        self.take()
                self.take()
            found.append((name, args))
        return found

    def parse(self) -> Expr:
        first = self.take()
        literal = _string(first)
        if literal is not None:
            return self._finish(Expr("literal", text=literal), self.filters())
        if first == "answer_choices":
            return self._choices()
        if first == "-" or _INT.fullmatch(first):
            raise Unsupported(f"`{{{{ {self.expr} }}}}` is an expression, not a variable")
        return self._finish(Expr("path", path=self.path(first)), self.filters())

    def _choices(self) -> Expr:
        if self.peek() == "[":
            self.take()
            inside = self.take()
            if inside == "-" and _INT.fullmatch(self.peek() or ""):
                inside = "-" + self.take()
            if _INT.fullmatch(inside):
                expr = Expr("choice_index", index=int(inside))
            else:
                expr = Expr("choice_label", path=self.path(inside))
            self.expect("]")
            return self._finish(expr, self.filters())
        filters = self.filters()
        if filters and filters[0][0] == "join":
            name, args = filters[0]
            if len(args) > 1:
                raise Unsupported("`join` with more than one argument")
            sep = _string(args[0]) if args else ""
            if sep is None:
                raise Unsupported("`join` with a computed separator")
            return self._finish(Expr("choice_join", sep=sep), filters[1:])
        raise Unsupported(
            "`answer_choices` is only translated as `answer_choices[i]` or "
            '`answer_choices | join("...")`'
        )

    def _finish(self, expr: Expr, filters: list[tuple[str, list[str]]]) -> Expr:
        for name, args in filters:
            if name not in _IDENTITY_FILTERS or args:
                raise Unsupported(f"the filter `{name}` is not supported by the renderer")
        if self.peek() is not None:
            raise Unsupported(f"`{{{{ {self.expr} }}}}` is an expression, not a variable")
        return expr


def parse_output(expr: str) -> Expr:
    """Parse the inside of ``{{ ... }}``; raise :class:`Unsupported`.

    >>> parse_output(" answers.text[0] | string ").path
    Path(steps=('answers', 'text', 0))
    >>> parse_output("answer_choices[label]").kind, parse_output("answer_choices|join(', ')").sep
    ('choice_label', ', ')
    """
    return _Parser(expr).parse()


def statement_name(text: str) -> str:
    """The keyword of a ``{% ... %}`` statement (``if``, ``for``, ``set``...)."""
    m = _NAME.match(text.strip())
    return m.group() if m else text.strip()
