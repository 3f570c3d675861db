"""Numbering of ``choices`` options: ``enumerate "(A) "`` and the labels of ``choice`` slots.

A pattern holds one *counter*: the first ``A``, ``a``, ``1`` or ``i`` that stands alone,
i.e. with no letter or digit right before or after it (so ``"Option 1: "`` counts with
``1``, not with the ``i`` of ``Option``).  The counter of the option at position ``k``
(0-based) is

* ``A``: ``A, B, ..., Z, AA, AB, ...`` (spreadsheet columns); ``a`` the same in lower case;
* ``1``: ``1, 2, 3, ...``;
* ``i``: lower-case Roman numerals ``i, ii, iii, iv, ...``.

>>> pattern = Pattern.parse("(A) ")
>>> [pattern.label(k) for k in range(3)], pattern.render(1)
(['A', 'B', 'C'], '(B) ')
>>> Pattern.parse("Option 1: ").render(9), Pattern.parse("i. ").label(3)
('Option 10: ', 'iv')
>>> Pattern.parse("no counter") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The counter characters, in the order the docs list them.
COUNTERS: Final = ("A", "a", "1", "i")

_ROMAN: Final = (
    (1000, "m"),
    (900, "cm"),
    (500, "d"),
    (400, "cd"),
    (100, "c"),
    (90, "xc"),
    (50, "l"),
    (40, "xl"),
    (10, "x"),
    (9, "ix"),
    (5, "v"),
    (4, "iv"),
    (1, "i"),
)


def counter_position(pattern: str) -> int | None:
    """The index of the pattern's counter, or ``None`` when it has none."""
    for k, char in enumerate(pattern):
        if char not in COUNTERS:
            continue
        before = pattern[k - 1] if k > 0 else ""
        after = pattern[k + 1] if k + 1 < len(pattern) else ""
        if not before.isalnum() and not after.isalnum():
            return k
    return None


def counter_text(style: str, k: int) -> str:
    """The counter of position ``k`` (0-based) in ``style`` (one of :data:`COUNTERS`)."""
    if style == "1":
        return str(k + 1)
    if style == "i":
        n, out = k + 1, []
        for value, digits in _ROMAN:
            while n >= value:
                out.append(digits)
                n -= value
        return "".join(out)
    letters = []
    n = k + 1
    while n > 0:
        n, rest = divmod(n - 1, 26)
        letters.append(chr(ord("A") + rest))
    text = "".join(reversed(letters))
    return text if style == "A" else text.lower()


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed ``enumerate`` pattern: the text around its counter and the counter's style."""

    before: str
    style: str
    after: str

    @classmethod
    def parse(cls, pattern: str) -> Pattern | None:
        """The pattern, or ``None`` when it has no counter (E023 at check time)."""
        k = counter_position(pattern)
        if k is None:
            return None
        return cls(pattern[:k], pattern[k], pattern[k + 1 :])

    def label(self, k: int) -> str:
        """The bare counter of position ``k`` (what a ``choice`` slot renders): ``B``."""
        return counter_text(self.style, k)

    def render(self, k: int) -> str:
        """The pattern with the counter of position ``k``: ``(B) ``."""
        return self.before + counter_text(self.style, k) + self.after
