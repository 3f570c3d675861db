"""The staged public API (facade over every stage)."""

from __future__ import annotations

from .lang.frontend import CheckResult as CheckResult
from .lang.frontend import check as check
from .lang.frontend import check_text as check_text
from .lang.frontend import load_catalog as load_catalog
