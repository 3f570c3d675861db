"""Check passes: name resolution, types, constraints; diagnostics only.

Each pass is a plain function ``(program, context) -> None`` that appends to
``context.diagnostics``; :data:`PASSES` lists them in order.  Passes never
raise for user mistakes and never mutate the IR.  Run them all with
:func:`check_program`.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import ir
from ..diagnostics import Diagnostics
from .context import BOOTSTRAP_VARS as BOOTSTRAP_VARS
from .context import BUILTIN_TYPES as BUILTIN_TYPES
from .context import JUDGE_REQUIRED as JUDGE_REQUIRED
from .context import JUDGE_VARS as JUDGE_VARS
from .context import LANGUAGES as LANGUAGES
from .context import MAX_RANGE_VALUES as MAX_RANGE_VALUES
from .context import METAPROMPT_VARS as METAPROMPT_VARS
from .context import NO_JUDGE as NO_JUDGE
from .context import OPTION_OWNERS as OPTION_OWNERS
from .context import PLACEHOLDER_POLICIES as PLACEHOLDER_POLICIES
from .context import REJECTABLE as REJECTABLE
from .context import REQUIRED_OPTIONS as REQUIRED_OPTIONS
from .context import SAMPLING_MODES as SAMPLING_MODES
from .context import SPLITS as SPLITS
from .context import THRESHOLD_BOUNDS as THRESHOLD_BOUNDS
from .context import Context as Context
from .context import D as D
from .context import Decl as Decl
from .context import all_of as all_of
from .context import field_path_keys as field_path_keys
from .context import task_augmentable as task_augmentable
from .context import task_instructions as task_instructions
from .context import task_props as task_props
from .context import task_slots as task_slots
from .context import task_split as task_split
from .declarations import check_duplicate_members as check_duplicate_members
from .declarations import collect_declarations as collect_declarations
from .inheritance import Inheriting as Inheriting
from .inheritance import check_references as check_references
from .inheritance import inheritance_chain as inheritance_chain
from .inheritance import inheritance_order as inheritance_order
from .inheritance import plan_chain as plan_chain
from .inheritance import prompt_members as prompt_members
from .inheritance import uses_a_metaprompt as uses_a_metaprompt
from .instructions import check_instructions as check_instructions
from .plans import check_plans as check_plans
from .templates import check_metaprompts as check_metaprompts
from .types import ResolvedType as ResolvedType
from .types import check_types as check_types
from .types import resolve_type as resolve_type
from .types import resolved_type as resolved_type
from .values import check_enums as check_enums
from .values import check_numbers as check_numbers
from .values import range_values as range_values

Pass = Callable[[ir.Program, Context], None]


#: The check passes, in order.  ``collect_declarations`` must stay first.
PASSES: tuple[Pass, ...] = (
    collect_declarations,
    check_duplicate_members,
    check_types,
    check_instructions,
    check_enums,
    check_numbers,
    check_references,
    check_plans,
    check_metaprompts,
)


def check_program(program: ir.Program, diagnostics: Diagnostics | None = None) -> Context:
    """Run every pass; return the context holding symbols and diagnostics."""
    ctx = Context(diagnostics if diagnostics is not None else Diagnostics())
    for check_pass in PASSES:
        check_pass(program, ctx)
    return ctx
