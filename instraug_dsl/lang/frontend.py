"""The front end in one call: load → check → resolve, for every later stage.

>>> from instraug_dsl.lang import check_text
>>> result = check_text('task t { slot q: text  instruction i0 = "Answer: {q}" }')
>>> result.ok, sorted(result.catalog.tasks)
(True, ['t'])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import IatCheckError
from . import ir
from .check import Context, check_program
from .diagnostics import Diagnostic, Diagnostics, render_all
from .loader import LoadResult, load, load_text
from .model import Catalog, resolve
from .source import SourceFile


@dataclass
class CheckResult:
    """The outcome of loading and checking: program, diagnostics, catalog."""

    program: ir.Program
    sources: dict[str, SourceFile]
    diagnostics: list[Diagnostic]
    context: Context
    catalog: Catalog | None
    #: How many errors and warnings were found (``diagnostics`` shows at most a few of
    #: one code per file, then a summary line).
    error_count: int = 0
    warning_count: int = 0

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(d.severity.value == "error" for d in self.diagnostics)

    def render(self) -> str:
        """Every diagnostic rendered with its source excerpt."""
        return render_all(self.diagnostics, self.sources)

    def raise_for_errors(self) -> Catalog:
        """Return the catalog, or raise :class:`IatCheckError` with every error."""
        if not self.ok or self.catalog is None:
            raise IatCheckError(
                [d for d in self.diagnostics if d.severity.value == "error"], self.sources
            )
        return self.catalog


def _finish(loaded: LoadResult) -> CheckResult:
    diags: Diagnostics = loaded.diagnostics
    ctx = check_program(loaded.program, diags)
    ordered = diags.sorted()
    errors = len(diags.errors)
    catalog = None if errors else resolve(ctx)
    return CheckResult(
        loaded.program, loaded.sources, ordered, ctx, catalog, errors, len(diags) - errors
    )


def check(
    paths: Sequence[str | Path],
    allow_imports: Sequence[str | Path] = (),
    overlay: Mapping[Path, str] | None = None,
) -> CheckResult:
    """Load files/directories (following imports) and run every check pass.

    Imports may point inside the folders of ``paths``, the shipped template
    library, and the folders in ``allow_imports`` (see :mod:`.loader`).
    ``overlay`` gives text that wins over the file of that resolved path
    (the language server's open documents).
    """
    return _finish(load(paths, allow_imports, overlay))


def check_text(text: str, path: str = "<string>") -> CheckResult:
    """Check one in-memory source."""
    return _finish(load_text(text, path))


def load_catalog(paths: Sequence[str | Path], allow_imports: Sequence[str | Path] = ()) -> Catalog:
    """Load, check and resolve; raise :class:`IatCheckError` on any error."""
    return check(paths, allow_imports).raise_for_errors()
