"""Exit codes of ``iatc``: the one table, from error class to code (docs/reference/exit-codes.md
is generated from it).

Commands never choose a code for an error themselves: they let the
:class:`~instraug_dsl.errors.IatError` propagate, and :func:`exit_code` maps it here.
"""

from __future__ import annotations

from typing import Final

from ..errors import (
    DataError,
    IatCheckError,
    IatCompileError,
    IatError,
    IatRuntimeError,
    OutputError,
    RecordError,
    UsageError,
)

OK = 0
#: The input has errors (diagnostics printed), `fmt --check` found changes, or `--strict`
#: met a record that cannot be rendered.
DIAGNOSTICS = 1
#: Bad command line, unknown name, missing or malformed input file, unwritable output.
USAGE = 2
#: A model backend or the run failed (missing extra, unreachable server, budget, locked run).
RUNTIME = 3
#: Interrupted (Ctrl-C); everything completed so far is kept.
INTERRUPTED = 130
#: A bug in iatc itself (reported without a traceback unless IATC_DEBUG=1).
INTERNAL = 70

#: Most specific first: the first class an error is an instance of decides its code.
TABLE: Final[tuple[tuple[type[IatError], int], ...]] = (
    (IatCheckError, DIAGNOSTICS),
    (IatCompileError, DIAGNOSTICS),
    (RecordError, DIAGNOSTICS),
    (UsageError, USAGE),
    (DataError, USAGE),
    (OutputError, USAGE),
    (IatRuntimeError, RUNTIME),
    (IatError, RUNTIME),
)


def exit_code(error: IatError) -> int:
    """The exit code of an error a user caused."""
    for kind, code in TABLE:
        if isinstance(error, kind):
            return code
    return RUNTIME  # pragma: no cover  (IatError is the table's last row)
