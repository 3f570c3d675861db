"""Runtime commands: ``iatc augment``, ``iatc bootstrap`` and ``iatc run``."""

from __future__ import annotations

from ..cli import app  # noqa: F401
