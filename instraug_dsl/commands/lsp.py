"""``iatc lsp``: the language server for editors (needs the ``[lsp]`` extra: pygls)."""

from __future__ import annotations

from . import exitcodes
from .app import app, fail


@app.command("lsp")
def lsp_cmd() -> None:
    """Run the `.iat` language server over stdin/stdout (diagnostics, hover, go to
    definition, completion, formatting); editors start it, people rarely do."""
    try:
        from ..lsp.server import serve
    except ImportError as exc:
        fail(
            f"the language server needs pygls ({exc}): pip install 'instraug-dsl[lsp]'",
            exitcodes.RUNTIME,
        )
    serve()
