"""Dataset commands: ``iatc materialize`` and ``iatc stats``."""

from __future__ import annotations

from ..cli import app  # noqa: F401
