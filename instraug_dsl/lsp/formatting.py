"""Formatting: ``iatc fmt``'s formatter as one whole-document edit."""

from __future__ import annotations

from lsprotocol import types

from ..errors import IatCheckError
from ..lang.fmt import format_source
from .documents import normalise
from .positions import Positions


def format_document(text: str, path: str, positions: Positions) -> list[types.TextEdit]:
    """One edit replacing the whole text with its canonical layout; none when the text is
    already formatted or does not parse (a file with syntax errors is never rewritten)."""
    try:
        formatted = format_source(normalise(text), path)
    except IatCheckError:
        return []
    if formatted == text:
        return []
    whole = types.Range(start=types.Position(line=0, character=0), end=positions.end(text))
    return [types.TextEdit(range=whole, new_text=formatted)]
