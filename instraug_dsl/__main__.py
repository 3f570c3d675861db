"""``python -m instraug_dsl``: the same as the ``iatc`` command."""

from __future__ import annotations

from .commands.main import main

main()
