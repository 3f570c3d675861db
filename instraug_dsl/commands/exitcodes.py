"""Exit codes of ``iatc`` (documented in the README)."""

from __future__ import annotations

OK = 0
#: The input has errors (diagnostics printed), or `fmt --check` found changes.
DIAGNOSTICS = 1
#: Bad command line, missing file, unreadable input.
USAGE = 2
#: A model backend or the run failed (missing extra, unreachable server, budget).
RUNTIME = 3
#: Interrupted (Ctrl-C); everything completed so far is kept.
INTERRUPTED = 130
#: A bug in iatc itself (reported without a traceback unless IATC_DEBUG=1).
INTERNAL = 70
