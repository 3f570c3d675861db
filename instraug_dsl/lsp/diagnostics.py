"""Our diagnostics as LSP diagnostics: the same code, span, message and hint as ``iatc check``.

The severity follows the code (``E``: error, ``W``: warning), ``code`` is the ``E0xx`` code,
the hint is a second line of the message, and a hint that names a place
(``first declared at a.iat:3:6``) is also related information pointing there.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lsprotocol import types

from ..lang.diagnostics import Diagnostic, Severity
from .documents import Analysis
from .positions import Positions

#: ``path:line:col`` inside a hint.
_PLACE = re.compile(r"(\S+):(\d+):(\d+)")


def convert(
    diag: Diagnostic,
    analysis: Analysis,
    positions: Positions,
    uri_for: Callable[[str], str | None],
) -> types.Diagnostic:
    """One diagnostic of the analysed document in LSP form."""
    source = analysis.source_of(diag.span.path) or analysis.source
    message = diag.message if not diag.hint else f"{diag.message}\nhint: {diag.hint}"
    related: list[types.DiagnosticRelatedInformation] = []
    for match in _PLACE.finditer(diag.hint or ""):
        key, line, col = match.group(1), int(match.group(2)), int(match.group(3))
        other = analysis.source_of(key)
        uri = uri_for(key) if other is not None else None
        if other is None or uri is None:
            continue
        start = positions.position(other, line, col)
        related.append(
            types.DiagnosticRelatedInformation(
                location=types.Location(uri=uri, range=types.Range(start=start, end=start)),
                message=diag.hint or "",
            )
        )
    return types.Diagnostic(
        range=positions.range(source, diag.span),
        message=message,
        severity=(
            types.DiagnosticSeverity.Warning
            if diag.severity is Severity.WARNING
            else types.DiagnosticSeverity.Error
        ),
        code=diag.code,
        source="iatc",
        related_information=related or None,
    )


def document_diagnostics(
    analysis: Analysis, positions: Positions, uri_for: Callable[[str], str | None]
) -> list[types.Diagnostic]:
    """The diagnostics of the analysed document itself (not of the files it imports)."""
    return [
        convert(d, analysis, positions, uri_for)
        for d in analysis.result.diagnostics
        if d.span.path == analysis.key
    ]
