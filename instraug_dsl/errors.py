"""Exceptions, arranged so callers catch by intent.

``IatError`` is the root of every error a user can cause, whatever the stage: a caller of
the Python API catches ``IatError`` and never sees a Lark, litellm, httpx or OS exception.
A check failure carries the collected diagnostics (and the sources needed to render
them); every other error carries a message that names the file and line, or the record id
and field, or the flag at fault.  The CLI maps each class to one exit code
(:mod:`instraug_dsl.commands.exitcodes`).
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


class UsageError(IatError):
    """A request that cannot be carried out as asked: an unknown plan, task or sampling
    block, an option out of range, a missing input file."""


class IatCompileError(IatError):
    """A checked program cannot be compiled as asked."""


class DataError(IatError):
    """An input file or record is malformed; the message names the file and line, or the
    record id and field."""


class RecordError(DataError):
    """``--strict``: the first instance record that cannot be rendered (named)."""


class OutputError(IatError):
    """An output cannot be written: the path is a file where a folder is needed, the
    folder holds someone else's files, or the disk is full.  Nothing partial is left."""


class IatRuntimeError(IatError):
    """Something went wrong while driving a model."""


class ProviderError(IatRuntimeError):
    """A model backend is missing, misconfigured or unreachable."""


class BudgetExceeded(IatRuntimeError):
    """The pre-flight cost estimate is above ``--budget``, or the run stopped at it."""


class RunLocked(IatRuntimeError):
    """Another ``iatc`` process is writing the same run directory."""
