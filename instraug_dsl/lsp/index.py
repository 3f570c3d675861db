"""What the cursor is on: the innermost IR node at an offset, and what a name refers to.

The IR is walked generically (every frozen dataclass with a ``span``), so declarations
added to the language later are found too; a name whose role is not known here is looked
up in every symbol table of the checker's :class:`~instraug_dsl.lang.check.Context`.
"""

from __future__ import annotations

import dataclasses
import typing as t
from collections.abc import Iterator
from dataclasses import dataclass

from ..lang import ir
from ..lang.check import BUILTIN_TYPES, Context
from ..lang.source import Span

#: (node class, field) -> the kind of declaration a name in that field refers to.
ROLES: dict[tuple[type, str], str] = {
    (ir.TypeExpr, "base"): "type",
    (ir.TypeAlias, "name"): "type",
    (ir.Task, "name"): "task",
    (ir.SelectNames, "names"): "task",
    (ir.MetaPrompt, "name"): "metaprompt",
    (ir.MetaPrompt, "extends"): "metaprompt",
    (ir.Use, "metaprompt"): "metaprompt",
    (ir.Strategies, "name"): "strategies",
    (ir.PromptStrategies, "name"): "strategies",
    (ir.Bootstrap, "name"): "bootstrap",
    (ir.Plan, "name"): "plan",
    (ir.Plan, "extends"): "plan",
    (ir.SamplingPlanRef, "name"): "plan",
    (ir.Sampling, "name"): "sampling",
    (ir.Slot, "name"): "slot",
    (ir.TypeExpr, "of"): "slot",  # `choice of options`: a slot of the enclosing task
}

#: The symbol tables (fields of ``Context``) a kind of name is looked up in, in order.
TABLES: dict[str, tuple[str, ...]] = {
    "type": ("types",),
    "task": ("tasks",),
    "metaprompt": ("metaprompts", "bootstraps"),  # `use` takes either
    "strategies": ("strategies",),
    "bootstrap": ("bootstraps",),
    "plan": ("plans",),
    "sampling": ("samplings",),
}


def _children(node: object) -> Iterator[object]:
    if not dataclasses.is_dataclass(node):
        return
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            yield from (v for v in value if isinstance(getattr(v, "span", None), Span))
        elif isinstance(getattr(value, "span", None), Span):
            yield value


def _contains(node: object, offset: int) -> bool:
    span = getattr(node, "span", None)
    return isinstance(span, Span) and span.start <= offset <= span.end


def nodes_at(module: ir.Module, offset: int) -> list[object]:
    """The nodes whose span holds ``offset``, outermost (the module) first.

    Where children overlap (a string and the ``{slot}`` pieces split from it) the
    smallest wins; an offset just past a name still counts as on it.
    """
    path: list[object] = [module]
    node: object = module
    while True:
        inside = [c for c in _children(node) if _contains(c, offset)]
        if not inside:
            return path
        node = min(inside, key=lambda c: c.span.end - c.span.start)  # type: ignore[attr-defined]
        path.append(node)


def _field_of(parent: object, child: object) -> str | None:
    if not dataclasses.is_dataclass(parent):
        return None
    for f in dataclasses.fields(parent):
        value = getattr(parent, f.name)
        if value is child or (isinstance(value, tuple) and any(v is child for v in value)):
            return f.name
    return None


@dataclass(frozen=True)
class Ref:
    """A name under the cursor: ``kind`` is a key of :data:`TABLES`, ``"slot"``,
    ``"import"`` or ``"name"`` (role unknown: look it up everywhere)."""

    kind: str
    name: str
    span: Span
    #: The enclosing nodes, outermost first (the module, the declaration, ...).
    path: tuple[object, ...]

    def enclosing(self, kind: type[T]) -> T | None:
        """The innermost enclosing node of a class (the task of a ``{slot}``)."""
        for node in reversed(self.path):
            if isinstance(node, kind):
                return node
        return None


T = t.TypeVar("T")


def ref_at(module: ir.Module, offset: int) -> Ref | None:
    """The name, ``{slot}`` or import path at ``offset``, if any."""
    path = nodes_at(module, offset)
    node = path[-1]
    parent = path[-2] if len(path) > 1 else None
    if isinstance(node, ir.SlotRef):
        return Ref("slot", node.name, node.span, tuple(path))
    if isinstance(node, ir.StringLit) and isinstance(parent, ir.Import):
        return Ref("import", node.value, node.span, tuple(path))
    if isinstance(node, ir.Name) and parent is not None:
        field = _field_of(parent, node)
        kind = ROLES.get((type(parent), field or ""), "name")
        return Ref(kind, node.value, node.span, tuple(path))
    return None


def lookup(ctx: Context, kind: str, name: str) -> object | None:
    """The declaration ``name`` refers to (``kind`` as in :class:`Ref`), else ``None``."""
    if kind in TABLES:
        tables = TABLES[kind]
    else:  # every table, so declarations added to the language later are found too
        tables = tuple(
            f.name
            for f in dataclasses.fields(ctx)
            if f.name not in ("diagnostics", "derived") and isinstance(getattr(ctx, f.name), dict)
        )
    for table in tables:
        found = getattr(ctx, table, {}).get(name)
        if found is not None:
            return t.cast(object, found)
    return None


def slot_of(task: ir.Task | None, name: str) -> ir.Slot | None:
    """The slot ``name`` of a task (the first, if declared twice)."""
    if task is None:
        return None
    return next((m for m in task.members if isinstance(m, ir.Slot) and m.name.value == name), None)


def is_builtin_type(name: str) -> bool:
    """``text``, ``bbox``, ``choices``, ``const``."""
    return name in BUILTIN_TYPES
