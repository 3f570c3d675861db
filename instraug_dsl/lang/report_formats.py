"""Diagnostics for other tools: SARIF 2.1.0 (code scanning) and GitHub workflow commands.

``iatc check --format sarif`` and ``--format github`` print these; the text renderer and
:meth:`~instraug_dsl.lang.diagnostics.Diagnostic.to_json` stay in :mod:`.diagnostics`.
Both forms locate a diagnostic by its span (lines and columns are 1-based and count
characters, as :class:`~instraug_dsl.lang.source.Span` does) and name its file relative to
the working directory when it lies below it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from pathlib import Path, PurePath

from .diagnostics import CODES, Diagnostic, Severity

#: The SARIF version written, and the schema that describes it.
SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
#: The base every relative ``artifactLocation.uri`` is resolved against (the working directory).
SRCROOT = "%SRCROOT%"


def _level(code: str) -> str:
    return "warning" if code.startswith("W") else "error"


def _text(diag: Diagnostic) -> str:
    """The message, with the hint on a line of its own."""
    return diag.message if not diag.hint else f"{diag.message}\nhint: {diag.hint}"


def _has_file(diag: Diagnostic) -> bool:
    """Built-in and in-memory spans (``<builtin>``, ``<string>``) name no file."""
    return not (diag.span.path.startswith("<") and diag.span.path.endswith(">"))


def _relative(path: str, cwd: Path) -> str | None:
    """``path`` as a POSIX path relative to ``cwd``, or ``None`` when it lies elsewhere."""
    candidate = Path(path)
    if not candidate.is_absolute():
        return PurePath(path).as_posix()
    try:
        return candidate.relative_to(cwd).as_posix()
    except ValueError:
        return None


def sarif_rules() -> list[dict[str, object]]:
    """One SARIF rule per registered diagnostic code, in code order."""
    return [
        {
            "id": code,
            "shortDescription": {"text": title},
            "defaultConfiguration": {"level": _level(code)},
        }
        for code, title in sorted(CODES.items())
    ]


def _artifact(path: str, cwd: Path) -> dict[str, object]:
    relative = _relative(path, cwd)
    if relative is not None:
        return {"uri": urllib.parse.quote(relative), "uriBaseId": SRCROOT}
    return {"uri": Path(path).as_uri()}


def to_sarif(
    diagnostics: Iterable[Diagnostic], *, version: str, cwd: Path | None = None
) -> dict[str, object]:
    """A SARIF 2.1.0 log with one run of the tool ``iatc`` (rules: :data:`CODES`)."""
    base = (cwd or Path.cwd()).absolute()
    rules = sarif_rules()
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    results: list[dict[str, object]] = []
    for diag in diagnostics:
        result: dict[str, object] = {
            "ruleId": diag.code,
            "ruleIndex": index[diag.code],
            "level": _level(diag.code),
            "message": {"text": _text(diag)},
        }
        if _has_file(diag):
            span = diag.span
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": _artifact(span.path, base),
                        "region": {
                            "startLine": span.line,
                            "startColumn": span.col,
                            "endLine": span.end_line,
                            # SARIF's endColumn is the column after the region, like end_col.
                            "endColumn": span.end_col,
                        },
                    }
                }
            ]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "iatc",
                        "version": version,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"uri": base.as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


# ------------------------------------------------------------ GitHub workflow commands


def escape_data(text: str) -> str:
    """Escape a workflow command's message (as GitHub's toolkit does)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value: the message rules plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_command(diag: Diagnostic, cwd: Path | None = None) -> str:
    """One ``::error ...::message`` (or ``::warning``) line for a GitHub Actions log.

    Columns are only given for a span on one line (GitHub ignores them otherwise);
    ``endColumn`` is the column after the span, as in SARIF.
    """
    base = (cwd or Path.cwd()).absolute()
    span = diag.span
    props: dict[str, object] = {}
    if _has_file(diag):
        props["file"] = _relative(span.path, base) or span.path
        props["line"] = span.line
        if span.end_line == span.line:
            props["col"] = span.col
            props["endLine"] = span.end_line
            props["endColumn"] = span.end_col
        else:
            props["endLine"] = span.end_line
    props["title"] = diag.code
    joined = ",".join(f"{key}={escape_property(str(value))}" for key, value in props.items())
    kind = "warning" if diag.severity is Severity.WARNING else "error"
    return f"::{kind} {joined}::{escape_data(_text(diag))}"


def to_github(diagnostics: Iterable[Diagnostic], cwd: Path | None = None) -> str:
    """Every diagnostic as a workflow command, one per line (empty for none)."""
    return "\n".join(github_command(d, cwd) for d in diagnostics)
