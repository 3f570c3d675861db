"""instraug-dsl: a declarative language and compiler for instruction augmentation.

The public API is staged like the pipeline (see :mod:`instraug_dsl.api`)::

    import instraug_dsl as iat

    iat.check(["templates/multiinstruct"])            # diagnostics
    iat.compile(["templates/multiinstruct"], out="compiled/")
    iat.augment(["templates/multiinstruct"], "run/", backend=iat.Backend(model="offline/rules"))
    iat.materialize("run/", "instances.jsonl", "data/")
    iat.stats("run/")

``augment_async`` and ``run_async`` await inside a running event loop.  Every error a user
can cause is an :class:`IatError`.  See ARCHITECTURE.md for the code map.
"""

from __future__ import annotations

from ._version import __version__ as __version__
from .api import Backend as Backend
from .api import CheckResult as CheckResult
from .api import CompileResult as CompileResult
from .api import MaterializeResult as MaterializeResult
from .api import Preview as Preview
from .api import RunResult as RunResult
from .api import augment as augment
from .api import augment_async as augment_async
from .api import bootstrap as bootstrap
from .api import check as check
from .api import check_text as check_text
from .api import compile as compile
from .api import load as load
from .api import load_catalog as load_catalog
from .api import materialize as materialize
from .api import merge as merge
from .api import merge_async as merge_async
from .api import preview as preview
from .api import run as run
from .api import run_async as run_async
from .api import stats as stats
from .contract.dataset import MaterializeOptions as MaterializeOptions
from .errors import BudgetExceeded as BudgetExceeded
from .errors import DataError as DataError
from .errors import IatCheckError as IatCheckError
from .errors import IatCompileError as IatCompileError
from .errors import IatError as IatError
from .errors import IatRuntimeError as IatRuntimeError
from .errors import OutputError as OutputError
from .errors import ProviderError as ProviderError
from .errors import RecordError as RecordError
from .errors import RunLocked as RunLocked
from .errors import UsageError as UsageError
from .lang.diagnostics import CODES as CODES
from .lang.diagnostics import Diagnostic as Diagnostic
from .lang.diagnostics import render as render_diagnostic
from .lang.model import Catalog as Catalog
from .lang.parser import parse as parse

__all__ = [
    "CODES",
    "Backend",
    "BudgetExceeded",
    "Catalog",
    "CheckResult",
    "CompileResult",
    "DataError",
    "Diagnostic",
    "IatCheckError",
    "IatCompileError",
    "IatError",
    "IatRuntimeError",
    "MaterializeOptions",
    "MaterializeResult",
    "OutputError",
    "Preview",
    "ProviderError",
    "RecordError",
    "RunLocked",
    "RunResult",
    "UsageError",
    "augment",
    "augment_async",
    "bootstrap",
    "check",
    "check_text",
    "compile",
    "load",
    "load_catalog",
    "materialize",
    "merge",
    "merge_async",
    "parse",
    "preview",
    "render_diagnostic",
    "run",
    "run_async",
    "stats",
]
