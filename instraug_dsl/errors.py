"""Exceptions, arranged so callers catch by intent.

``IatError`` is the root.  A check failure carries the collected
diagnostics (and the sources needed to render them); runtime errors carry a
user-facing message.  No exception here ever wraps a Lark type.
"""

from __future__ import annotations

from collections.abc import Mapping

from .lang.diagnostics import Diagnostic, render_all
from .lang.source import SourceFile


class IatError(Exception):
    """Base class of every error instraug-dsl raises on purpose."""


class IatCheckError(IatError):
    """Loading or checking found errors; ``diagnostics`` lists them all."""

    def __init__(self, diagnostics: list[Diagnostic], sources: Mapping[str, SourceFile]) -> None:
        self.diagnostics = diagnostics
        self.sources = dict(sources)
        super().__init__(self.render())

    def render(self) -> str:
        """All diagnostics rendered with excerpts."""
        return render_all(self.diagnostics, self.sources)


class IatCompileError(IatError):
    """A checked program cannot be compiled as asked (e.g. an unknown plan)."""


class IatRuntimeError(IatError):
    """Something went wrong while driving a model or writing results."""


class ProviderError(IatRuntimeError):
    """A model backend is missing, misconfigured or unreachable."""


class DataError(IatRuntimeError):
    """An input record or file is malformed; the message names record and field."""
