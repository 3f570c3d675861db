"""Constrained-decoding exports: a regex and a GBNF grammar per validator.

Both describe exactly the rewrites whose *token structure* the validator
accepts: every token as often as in the source (in any order unless the
order is pinned; an ``at_end`` token last), no other marker or brace
characters, no ``%(``, no line break in single-line rewrites, not blank.
``regex`` matches the rewrite itself (Python ``re`` syntax, also accepted by
outlines/vLLM); ``reply_regex`` and ``gbnf`` match the whole reply, a JSON
array holding one such string (llama.cpp grammars).  Word-level rules
(length, copies, preambles) are left to the validator.

A regex cannot share sub-expressions, so it lists the token orders as a
prefix tree; above :data:`MAX_ORDERS` orders it fixes the source order
(``regex_exact`` false).  The grammar has one rule per multiset of tokens
still to place, so it is always exact.
"""

from __future__ import annotations

import json
import re
import typing as t
from collections.abc import Sequence
from dataclasses import dataclass

from .tokens import TokenFamily

#: Python's whitespace (``str.isspace`` and ``re``'s ``\s``), listed for GBNF.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: Characters ``str.splitlines`` breaks at.
LINE_BREAKS = "\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029"
#: What may follow an ``at_end`` token (besides line breaks in multi-line rewrites).
TRAIL_CHARS = " \t.,;:!?"
#: Above this many token orders the regex fixes the source order.
MAX_ORDERS = 120
# JSON escapes a canonical encoder writes, by the character they stand for.
_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\t": "\\t",
    "\n": "\\n",
    "\r": "\\r",
    "\b": "\\b",
    "\f": "\\f",
}


@dataclass(frozen=True)
class Chars:
    """A character set: ``only`` these, or everything except ``excluded``
    (and whitespace if ``no_space``)."""

    excluded: frozenset[str] = frozenset()
    no_space: bool = False
    only: frozenset[str] | None = None

    def allows(self, ch: str) -> bool:
        """Membership test (the reference the renderings must agree with)."""
        if self.only is not None:
            return ch in self.only
        return ch not in self.excluded and not (self.no_space and ch.isspace())

    def raw(self) -> str:
        """As a Python regex class over the rewrite text."""
        if self.only is not None:
            return "[" + _ranges(self.only, _class_char) + "]"
        body = _ranges(self.excluded, _class_char)
        return "[^" + body + (r"\s" if self.no_space else "") + "]"

    def _plain(self) -> Chars:
        """The characters a JSON string may hold unescaped."""
        if self.only is not None:
            return Chars(only=frozenset(c for c in self.only if c not in '"\\' and ord(c) >= 0x20))
        return Chars(self.excluded | {'"', "\\"} | {chr(i) for i in range(0x20)}, self.no_space)

    def _escapes(self) -> list[str]:
        return [esc for ch, esc in sorted(_JSON_ESCAPES.items()) if self.allows(ch)]

    def json(self) -> str:
        """As a regex over JSON string content (raw characters or escapes)."""
        plain = self._plain()
        alts = [plain.raw()] if plain.only is None or plain.only else []
        alts += [re.escape(esc) for esc in self._escapes()]
        return "(?:" + "|".join(alts) + ")"

    def gbnf(self) -> str:
        """As a GBNF alternative over JSON string content."""
        plain = self._plain()
        if plain.only is not None:
            alts = ["[" + _ranges(plain.only, _gbnf_class_char) + "]"] if plain.only else []
        else:
            excluded = set(plain.excluded) | (set(WHITESPACE) if plain.no_space else set())
            alts = ["[^" + _ranges(excluded, _gbnf_class_char) + "]"]
        alts += [_gbnf_string(esc) for esc in self._escapes()]
        return "(" + " | ".join(alts) + ")"


def _ranges(chars: set[str] | frozenset[str], render: t.Callable[[str], str]) -> str:
    """A class body with runs of three or more consecutive characters as ranges."""
    codes = sorted(ord(c) for c in chars)
    out: list[str] = []
    i = 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(render(chr(codes[i])) + "-" + render(chr(codes[j])))
        else:
            out.extend(render(chr(c)) for c in codes[i : j + 1])
        i = j + 1
    return "".join(out)


def _class_char(ch: str) -> str:
    if ch in "\\]^-[":
        return "\\" + ch
    if ord(ch) < 0x20 or ch in WHITESPACE:
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    return ch


def _gbnf_class_char(ch: str) -> str:
    if ch in "\\]^-[":
        return "\\" + ch
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{ord(ch):02X}"
    if ch in WHITESPACE and ch != " ":
        return f"\\u{ord(ch):04X}" if ord(ch) > 0xFF else f"\\x{ord(ch):02X}"
    return ch


def _gbnf_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Structure:
    """What the exports must describe (mirrors the validator's structural rules)."""

    family: TokenFamily
    counts: tuple[tuple[str, int], ...]  # (token, count), order of first use
    sequence: tuple[str, ...]  # the source's token order (for pinned order)
    ordered: bool
    at_end: str | None
    single_line: bool
    allow_percent_paren: bool
    #: Brace texts of the source a rewrite may use between tokens (any number of times).
    literals: tuple[str, ...] = ()

    def text_chars(self, *, no_space: bool = False, extra: str = "") -> Chars:
        """Characters allowed in text between tokens (``extra`` also excluded)."""
        excluded = set(self.family.open + self.family.close + "{}" + extra)
        if self.single_line:
            excluded |= set(LINE_BREAKS)
        if not self.allow_percent_paren:
            excluded.add("%")
        return Chars(frozenset(excluded), no_space)

    def trail_chars(self) -> Chars:
        """Characters allowed after an ``at_end`` token."""
        allowed = set(TRAIL_CHARS) | (set() if self.single_line else set(LINE_BREAKS))
        return Chars(only=frozenset(allowed))


class _Render:
    """Text-segment expressions in one rendering (raw regex, JSON regex)."""

    def __init__(self, s: Structure, kind: str) -> None:
        lits = [re.escape(x if kind == "raw" else _json_content(x)) for x in s.literals]

        def r(c: Chars) -> str:
            one = c.raw() if kind == "raw" else c.json()
            return "(?:" + "|".join([one, *lits]) + ")" if lits else one

        c, d, n = r(s.text_chars()), r(s.text_chars(extra="(")), r(s.text_chars(no_space=True))
        if s.allow_percent_paren:
            self.text = f"{c}*"
            self.nonblank = f"{c}*{n}{c}*"
        else:
            # No "%(": after a run of '%' comes end of text or a character other than '('.
            self.text = f"{c}*(?:%+{d}{c}*)*%*"
            self.nonblank = f"{c}*(?:{n}{self.text}|%+(?:{d}{self.text})?)"
        self.trail = r(s.trail_chars()) + "*"


def orders(s: Structure) -> list[tuple[str, ...]]:
    """Every token order the validator accepts (possibly many)."""
    if s.ordered:
        return [s.sequence]
    out: list[tuple[str, ...]] = []

    def walk(prefix: tuple[str, ...], left: dict[str, int]) -> None:
        if len(out) > MAX_ORDERS:
            return
        if not any(left.values()):
            out.append(prefix)
            return
        for tok, n in left.items():
            if n == 0 or not _may_place(s, tok, left):
                continue
            left[tok] -= 1
            walk((*prefix, tok), left)
            left[tok] += 1

    walk((), dict(s.counts))
    return out


def _may_place(s: Structure, tok: str, left: dict[str, int]) -> bool:
    """The last occurrence of the ``at_end`` token must be the last token."""
    if s.at_end is None or tok != s.at_end or left[tok] > 1:
        return True
    return sum(left.values()) == 1


def _regex_tree(s: Structure, seqs: Sequence[tuple[str, ...]], r: _Render) -> str:
    def node(prefixes: list[tuple[str, ...]], depth: int) -> str:
        ends = [p for p in prefixes if len(p) == depth]
        nexts: dict[str, list[tuple[str, ...]]] = {}
        for p in prefixes:
            if len(p) > depth:
                nexts.setdefault(p[depth], []).append(p)
        alts = []
        if ends:
            last = ends[0][-1] if depth else None
            alts.append(r.trail if last is not None and last == s.at_end else r.text)
        for tok, group in nexts.items():
            alts.append(r.text + re.escape(tok) + node(group, depth + 1))
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    if not s.counts:
        return r.nonblank
    return node(list(seqs), 0)


def build_regexes(s: Structure) -> tuple[str, str, bool]:
    """(rewrite regex, reply regex, exact?) for a structure."""
    seqs = orders(s)
    exact = len(seqs) <= MAX_ORDERS
    if not exact:
        seqs = [s.sequence]
    raw = _regex_tree(s, seqs, _Render(s, "raw"))
    body = _regex_tree(s, seqs, _Render(s, "json"))
    reply = r'\[[ \t\n\r]*"' + body + r'"[ \t\n\r]*\]'
    return raw, reply, exact


def _json_content(text: str) -> str:
    """``text`` as a canonical JSON encoder writes it inside a string (no quotes)."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def build_gbnf(s: Structure) -> str:
    """A llama.cpp grammar for the whole reply: ``["<rewrite>"]``."""
    lits = [_gbnf_string(_json_content(x)) for x in s.literals]

    def g(chars: Chars) -> str:
        one = chars.gbnf()
        return "(" + " | ".join([one, *lits]) + ")" if lits else one

    c = g(s.text_chars())
    d = g(s.text_chars(extra="("))
    n = g(s.text_chars(no_space=True))
    lines = ['root ::= "[" ws "\\"" body "\\"" ws "]"', "ws ::= [ \\t\\n\\r]*"]
    if s.allow_percent_paren:
        lines += [f"text ::= {c}*", f"nonblank ::= {c}* {n} {c}*"]
    else:
        lines += [
            f'text ::= {c}* ("%"+ {d} {c}*)* "%"*',
            f'nonblank ::= {c}* ({n} text | "%"+ ({d} text)?)',
        ]
    lines.append(f"trail ::= {s.trail_chars().gbnf()}*")
    if not s.counts:
        lines.append("body ::= nonblank")
        return "\n".join(lines) + "\n"
    names: dict[tuple[int, ...], str] = {}
    toks = [t for t, _ in s.counts]
    rules: list[str] = []

    def state(left: tuple[int, ...], last: str | None) -> str:
        key = (*left, toks.index(last) if last == s.at_end and last is not None else -1)
        if key in names:
            return names[key]
        name = f"s{len(names)}"
        names[key] = name
        left_map = dict(zip(toks, left, strict=True))
        alts = []
        if not any(left):
            alts.append("trail" if last is not None and last == s.at_end else "text")
        for i, tok in enumerate(toks):
            if left[i] == 0 or not _may_place(s, tok, left_map):
                continue
            if s.ordered and tok != s.sequence[sum(n for _, n in s.counts) - sum(left)]:
                continue
            nxt = tuple(v - 1 if j == i else v for j, v in enumerate(left))
            alts.append(f"text {_gbnf_string(tok)} {state(nxt, tok)}")
        rules.append(f"{name} ::= " + " | ".join(alts))
        return name

    start = state(tuple(n for _, n in s.counts), None)
    lines.append(f"body ::= {start}")
    return "\n".join(lines + sorted(rules, key=lambda r: int(r.split()[0][1:]))) + "\n"
