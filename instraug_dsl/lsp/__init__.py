"""``iatc lsp``: a language server for `.iat` files (the ``[lsp]`` extra, built on pygls).

Only :mod:`.server` talks to pygls; it wires the feature modules, which read the front end's
results (:mod:`instraug_dsl.lang`) and answer with lsprotocol types:

* :mod:`.positions`: LSP positions (UTF-16 by default) <-> character offsets and spans;
* :mod:`.documents`: open documents, checking one with its imports (unsaved text wins);
* :mod:`.index`: what the cursor is on (a reference, a declaration, a ``{slot}``);
* :mod:`.diagnostics`, :mod:`.hover`, :mod:`.definitions`, :mod:`.completion`,
  :mod:`.formatting`: one LSP feature each.

Nothing outside ``commands/lsp.py`` imports this package, so ``iatc check`` never loads pygls.
"""
