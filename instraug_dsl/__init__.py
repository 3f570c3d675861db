"""instraug-dsl: a declarative language and compiler for instruction augmentation.

The public API is staged like the pipeline: :func:`check` (load + check +
resolve) → ``compile`` → run → materialize.  See ARCHITECTURE.md.
"""

from __future__ import annotations

from .api import CheckResult as CheckResult
from .api import check as check
from .api import check_text as check_text
from .api import load_catalog as load_catalog
from .errors import DataError as DataError
from .errors import IatCheckError as IatCheckError
from .errors import IatCompileError as IatCompileError
from .errors import IatError as IatError
from .errors import IatRuntimeError as IatRuntimeError
from .errors import ProviderError as ProviderError
from .lang.diagnostics import CODES as CODES
from .lang.diagnostics import Diagnostic as Diagnostic
from .lang.diagnostics import render as render_diagnostic
from .lang.model import Catalog as Catalog
from .lang.parser import parse as parse

__version__ = "0.1.0"

__all__ = [
    "CODES",
    "Catalog",
    "CheckResult",
    "DataError",
    "Diagnostic",
    "IatCheckError",
    "IatCompileError",
    "IatError",
    "IatRuntimeError",
    "ProviderError",
    "check",
    "check_text",
    "load_catalog",
    "parse",
    "render_diagnostic",
]
