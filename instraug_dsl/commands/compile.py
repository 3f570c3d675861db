"""``iatc compile``: write requests, validators and manifest."""

from __future__ import annotations

from ..cli import app  # noqa: F401
