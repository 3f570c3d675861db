"""Placeholder protection: opaque tokens for slots, and the way back.

Every *distinct* slot of an instruction body gets one token of a token
family (``{A}``, ``{B}``, ... for the default family), numbered in order of
first occurrence, so a slot used twice is one token used twice and is
restored at both places (the reference code numbered occurrences and lost
repeated placeholders).  Families are unbounded (numbers or A..Z, AA, ...).

A family is usable for an instruction only if the instruction's own text
contains none of its marker strings; :func:`choose_family` walks the
preference order (fixed by ``bench/bench_tokens.py``, see docs/compiler.md)
and takes the first family that cannot collide.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from ..errors import IatCompileError
from ..lang import ir
from ..lang.source import BUILTIN

_SLOT_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def alpha_label(index: int) -> str:
    """1 -> A, 26 -> Z, 27 -> AA (bijective base 26: unbounded)."""
    out = ""
    while index > 0:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("A") + rem) + out
    return out


@dataclass(frozen=True)
class TokenFamily:
    """A token shape: ``open + prefix + label + close`` with numeric or A..Z labels.

    ``markers`` are the strings whose presence in text makes the family
    unusable (collision) and whose stray presence in a model's output means a
    damaged token.
    """

    name: str
    open: str
    close: str
    prefix: str
    labels: str  # "num" or "alpha"

    def token(self, index: int) -> str:
        """The token for the ``index``-th distinct slot (1-based)."""
        label = str(index) if self.labels == "num" else alpha_label(index)
        return f"{self.open}{self.prefix}{label}{self.close}"

    @property
    def markers(self) -> tuple[str, ...]:
        """Delimiter strings (deduplicated, longest first)."""
        return tuple(sorted({self.open, self.close}, key=lambda m: (-len(m), m)))

    @cached_property
    def exact(self) -> re.Pattern[str]:
        """Matches any well-formed token of this family."""
        label = r"[1-9][0-9]*" if self.labels == "num" else r"[A-Z]+"
        return re.compile(
            re.escape(self.open) + re.escape(self.prefix) + label + re.escape(self.close)
        )

    @cached_property
    def scanner(self) -> re.Pattern[str]:
        """Well-formed tokens first, then bare markers (damaged tokens)."""
        bare = "|".join(re.escape(m) for m in self.markers)
        return re.compile(f"(?P<tok>{self.exact.pattern})|(?P<bare>{bare})")

    def collides(self, text: str) -> bool:
        """True if ``text`` contains a marker (so tokens could not be told from text)."""
        return any(m in text for m in self.markers)

    def single_char(self) -> bool:
        """True when both delimiters are single characters (simplest exports)."""
        return len(self.open) == 1 and len(self.close) == 1


#: Every family we know, by name (the candidates measured by bench/bench_tokens.py).
FAMILIES: dict[str, TokenFamily] = {
    f.name: f
    for f in (
        TokenFamily("white_bracket", "⟦", "⟧", "", "num"),
        TokenFamily("brace_alpha", "{", "}", "", "alpha"),
        TokenFamily("double_square", "[[", "]]", "SLOT_", "num"),
        TokenFamily("double_angle", "<<", ">>", "Q", "num"),
        TokenFamily("double_at", "@@", "@@", "", "num"),
        TokenFamily("dunder", "__", "__", "X", "num"),
        TokenFamily("white_tortoise", "⟬", "⟭", "", "num"),
        TokenFamily("corner", "⌜", "⌝", "", "num"),
    )
}

#: Preference order for production use: measured best first (docs/compiler.md),
#: then single-character fallbacks for text that contains the preferred markers.
#: Only single-character families are used, so that the exported regex and
#: grammar describe the validator exactly (see export.py).
PREFERENCE: tuple[str, ...] = ("brace_alpha", "white_bracket", "white_tortoise", "corner")


@dataclass(frozen=True, slots=True)
class Masked:
    """A protected body: the text sent to the model and the inverse map."""

    family: str
    protected: str
    token_map: tuple[tuple[str, str], ...]  # (token, slot), in order of first use
    counts: tuple[tuple[str, int], ...]  # (token, occurrences in the body)


def template_pieces(text: str) -> tuple[ir.Piece, ...]:
    """Split ``{slot}`` template text (e.g. a restored rewrite) into pieces.

    Every ``{identifier}`` is a slot reference; all other characters are
    text.  This is the inverse of :func:`instraug_dsl.lang.model.pieces_text` for
    text without literal ``{identifier}`` look-alikes.
    """
    pieces: list[ir.Piece] = []
    pos = 0
    for m in _SLOT_REF.finditer(text):
        if m.start() > pos:
            pieces.append(ir.TextPiece(text[pos : m.start()], BUILTIN))
        pieces.append(ir.SlotRef(m.group(1), BUILTIN))
        pos = m.end()
    if pos < len(text):
        pieces.append(ir.TextPiece(text[pos:], BUILTIN))
    return tuple(pieces)


def body_text_and_slots(pieces: Sequence[ir.Piece]) -> tuple[str, list[str]]:
    """Literal text of a body (slots elided) and its slot names in order."""
    text = "".join(p.text for p in pieces if isinstance(p, ir.TextPiece))
    slots = [p.name for p in pieces if isinstance(p, ir.SlotRef)]
    return text, slots


def choose_family(text: str, preference: Sequence[str] = PREFERENCE) -> TokenFamily:
    """The first family in ``preference`` whose markers do not occur in ``text``."""
    for name in preference:
        family = FAMILIES[name]
        if not family.collides(text):
            return family
    raise IatCompileError(
        "every token family collides with the instruction text (it contains "
        + ", ".join(m for n in preference for m in FAMILIES[n].markers)
        + "); remove one of these markers from the instruction"
    )


def mask(pieces: Sequence[ir.Piece], family: TokenFamily | None = None) -> Masked:
    """Replace every distinct slot of ``pieces`` by one token.

    Without ``family`` the first non-colliding family of :data:`PREFERENCE`
    is used.  Raises :class:`IatCompileError` if ``family`` collides.
    """
    text, _ = body_text_and_slots(pieces)
    fam = family if family is not None else choose_family(text)
    if fam.collides(text):
        raise IatCompileError(f"token family `{fam.name}` collides with the instruction text")
    tokens: dict[str, str] = {}
    counts: dict[str, int] = {}
    out: list[str] = []
    for p in pieces:
        if isinstance(p, ir.SlotRef):
            tok = tokens.setdefault(p.name, fam.token(len(tokens) + 1))
            counts[tok] = counts.get(tok, 0) + 1
            out.append(tok)
        elif isinstance(p, ir.TextPiece):
            out.append(p.text)
        else:  # the checker rejects programs with brace errors before compiling
            raise IatCompileError(f"cannot protect an instruction with a brace error: {p.text!r}")
    return Masked(
        fam.name,
        "".join(out),
        tuple((tok, slot) for slot, tok in tokens.items()),
        tuple(counts.items()),
    )


def split_tokens(text: str, family: TokenFamily) -> list[tuple[str, str]]:
    """Split text into ``("text"|"token"|"bare", value)`` parts, in order."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in family.scanner.finditer(text):
        if m.start() > pos:
            parts.append(("text", text[pos : m.start()]))
        parts.append(("token" if m.group("tok") is not None else "bare", m.group()))
        pos = m.end()
    if pos < len(text):
        parts.append(("text", text[pos:]))
    return parts


def unmask(text: str, token_map: Sequence[tuple[str, str]], family: TokenFamily | str) -> str:
    """Map every known token in ``text`` back to ``{slot}``; other text is kept as is.

    Unknown or damaged tokens stay verbatim: the validator rejects them, this
    function never guesses.
    """
    fam = FAMILIES[family] if isinstance(family, str) else family
    lookup = dict(token_map)
    out = []
    for kind, value in split_tokens(text, fam):
        out.append("{" + lookup[value] + "}" if kind == "token" and value in lookup else value)
    return "".join(out)
