"""Slot types: aliases resolved, options checked (E022-E028)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import ir
from ..diagnostics import did_you_mean
from ..enumeration import counter_position
from .context import BUILTIN_TYPES, OPTION_OWNERS, REQUIRED_OPTIONS, Context, all_of, task_slots


@dataclass(frozen=True, slots=True)
class ResolvedType:
    """A type with its aliases followed: the built-in base, flags and options.

    Options of inner aliases lose to outer ones.  For an alias cycle (E026)
    ``base`` is the alias name where the cycle closes.
    """

    base: str
    is_list: bool = False
    optional: bool = False
    sep: str | None = None
    prefix: str | None = None
    const: str | None = None
    names: tuple[str, ...] | None = None
    shuffle: bool | None = None
    enumeration: str | None = None
    of: ir.Name | None = None

    def under(self, texpr: ir.TypeExpr) -> ResolvedType:
        """This (inner) type as seen through ``texpr``, which refers to it."""
        return ResolvedType(
            self.base,
            texpr.is_list or self.is_list,
            texpr.optional or self.optional,
            texpr.sep.value if texpr.sep else self.sep,
            texpr.prefix.value if texpr.prefix else self.prefix,
            texpr.const_value.value if texpr.const_value else self.const,
            tuple(n.value for n in texpr.names.values) if texpr.names else self.names,
            texpr.shuffle.value if texpr.shuffle else self.shuffle,
            texpr.enumeration.value if texpr.enumeration else self.enumeration,
            texpr.of or self.of,
        )


def _alias_chain(
    ctx: Context, name: str, known: Mapping[str, object]
) -> tuple[list[str], str, set[str]]:
    """The aliases from ``name`` on, followed until a name that is no alias, is ``known``
    (already done) or repeats: (the aliases walked, where it stopped, the set walked)."""
    path: list[str] = []
    on_path: set[str] = set()
    cur = name
    while cur in ctx.types and cur not in known and cur not in on_path:
        path.append(cur)
        on_path.add(cur)
        cur = ctx.types[cur].type.base.value
    return path, cur, on_path


def _resolved_aliases(ctx: Context) -> dict[str, ResolvedType]:
    """Every alias resolved once: a chain of thousands of aliases is followed once."""
    memo: dict[str, ResolvedType] | None = ctx.derived.get("aliases")
    if memo is not None:
        return memo
    memo = {}
    for name in ctx.types:
        path, cur, _ = _alias_chain(ctx, name, memo)
        tail = memo[cur] if cur in memo else ResolvedType(cur)
        for alias in reversed(path):
            tail = memo[alias] = tail.under(ctx.types[alias].type)
    ctx.derived["aliases"] = memo
    return memo


def resolved_type(texpr: ir.TypeExpr, ctx: Context) -> ResolvedType:
    """The type ``texpr`` names, aliases followed, with its options."""
    base = texpr.base.value
    if base in BUILTIN_TYPES or base not in ctx.types:
        return ResolvedType(base).under(texpr)
    return _resolved_aliases(ctx)[base].under(texpr)


def resolve_type(texpr: ir.TypeExpr, ctx: Context, _depth: int = 0) -> tuple[str, bool, bool]:
    """Return (builtin base, is_list, optional) after following aliases."""
    resolved = resolved_type(texpr, ctx)
    return resolved.base, resolved.is_list, resolved.optional


def check_types(program: ir.Program, ctx: Context) -> None:
    """Unknown types (E022), bad options (E023), alias cycles (E026), sources (E024, E025)."""
    # Each alias is followed once (a chain of thousands must not be walked
    # thousands of times): an alias refers to itself when its chain of
    # aliases runs into a cycle.
    loops: dict[str, bool] = {}
    for name in ctx.types:
        path, base, on_path = _alias_chain(ctx, name, loops)
        looped = base in on_path or loops.get(base, False)
        for step in path:
            loops[step] = looped
    for alias in ctx.types.values():
        if loops[alias.name.value]:
            ctx.diagnostics.add(
                "E026",
                f"type alias `{alias.name.value}` refers to itself",
                alias.type.base.span,
            )
    exprs: list[ir.TypeExpr] = [a.type for a in ctx.types.values()]
    for task in all_of(program, ir.Task):
        exprs.extend(s.type for s in task_slots(task))
    for texpr in exprs:
        _check_type_expr(texpr, ctx)
    for task in all_of(program, ir.Task):
        slots = {s.name.value: s for s in task_slots(task)}
        for slot in task_slots(task):
            resolved = resolved_type(slot.type, ctx)
            base, is_list = resolved.base, resolved.is_list
            if base == "const" and slot.source is not None:
                ctx.diagnostics.add(
                    "E024",
                    f"const slot `{slot.name.value}` cannot take a value `from` a record",
                    slot.source.span,
                )
            if slot.each is not None and base in ("label", "choice"):
                ctx.diagnostics.add(
                    "E025",
                    f"`each` does not apply to the {base} slot `{slot.name.value}`: its values"
                    f" render as {'their names' if base == 'label' else 'option labels'}",
                    slot.each.span,
                )
            elif slot.each is not None and not (is_list or base == "choices"):
                ctx.diagnostics.add(
                    "E025",
                    f"`each` formats list elements, but slot `{slot.name.value}` is not a list",
                    slot.each.span,
                    hint=f"declare it as `{slot.type.base.value}[]`",
                )
            _check_required_options(slot, resolved, ctx)
            if base == "choice" and resolved.of is not None:
                _check_choice_of(task, slot, resolved.of, slots, ctx)


def _check_required_options(slot: ir.Slot, resolved: ResolvedType, ctx: Context) -> None:
    """A ``label`` slot needs ``names``, a ``choice`` slot ``of`` (E027)."""
    needed = REQUIRED_OPTIONS.get(resolved.base)
    if needed is None or getattr(resolved, needed) is not None:
        return
    hint = {
        "names": 'write e.g. `label names "no", "yes"` (the names of 0, 1, ...)',
        "of": "write e.g. `choice of options`, naming an enumerated `choices` slot of the task",
    }[needed]
    ctx.diagnostics.add(
        "E027",
        f"slot `{slot.name.value}` of type `{resolved.base}` needs `{needed}`",
        slot.type.span,
        hint=hint,
    )


def _check_choice_of(
    task: ir.Task, slot: ir.Slot, of: ir.Name, slots: dict[str, ir.Slot], ctx: Context
) -> None:
    """``choice of NAME``: NAME is an enumerated ``choices`` slot of the task (E028)."""
    # An `of` given through a type alias is reported at the slot's type.
    span = (
        of.span
        if of.span.path == slot.type.span.path
        and (slot.type.span.start <= of.span.start < slot.type.span.end)
        else slot.type.span
    )
    target = slots.get(of.value)
    if target is None:
        ctx.diagnostics.add(
            "E028",
            f"`{of.value}` is not a slot of task `{task.name.value}`",
            span,
            hint=did_you_mean(of.value, [n for n in slots if n != slot.name.value])
            or "`of` names the task's `choices` slot whose options the value is one of",
        )
        return
    options = resolved_type(target.type, ctx)
    if options.base != "choices":
        ctx.diagnostics.add(
            "E028",
            f"`choice of {of.value}`: slot `{of.value}` is `{options.base}`, not `choices`",
            span,
            hint="a choice slot renders the label of an option of a `choices` slot",
        )
    elif options.enumeration is None:
        ctx.diagnostics.add(
            "E028",
            f"`choice of {of.value}`: the options of `{of.value}` are not enumerated,"
            " so they have no labels",
            span,
            hint=f'number them: `slot {of.value}: choices enumerate "(A) "`',
        )


def _check_type_expr(texpr: ir.TypeExpr, ctx: Context) -> None:
    name = texpr.base.value
    if name not in BUILTIN_TYPES and name not in ctx.types:
        ctx.diagnostics.add(
            "E022",
            f"unknown slot type `{name}`",
            texpr.base.span,
            hint=did_you_mean(name, [*BUILTIN_TYPES, *ctx.types])
            or "built-in types are text, bbox, choices, const, label and choice",
        )
        return
    _check_new_options(texpr, ctx)
    if name not in BUILTIN_TYPES:
        return
    can_list, takes_sep, takes_prefix = BUILTIN_TYPES[name]
    if texpr.is_list and not can_list:
        ctx.diagnostics.add(
            "E023",
            f"`{name}` cannot be a list",
            texpr.base.span,
            hint="choices is already a list of options" if name == "choices" else None,
        )
    if texpr.sep is not None and not (takes_sep and (texpr.is_list or name == "choices")):
        ctx.diagnostics.add(
            "E023", f"`sep` applies to list and choices types, not `{name}`", texpr.sep.span
        )
    if texpr.prefix is not None and not takes_prefix:
        ctx.diagnostics.add("E023", f"`prefix` applies to choices, not `{name}`", texpr.prefix.span)


def _check_new_options(texpr: ir.TypeExpr, ctx: Context) -> None:
    """``names``, ``shuffle``, ``enumerate`` and ``of`` only on the type taking them (E023),
    and an ``enumerate`` pattern with a counter (E023).  A use of an alias is checked
    against the built-in type the alias resolves to."""
    base = resolved_type(texpr, ctx).base
    if base not in BUILTIN_TYPES:
        return  # unknown (E022) or an alias cycle (E026)
    given = {
        "names": texpr.names,
        "shuffle": texpr.shuffle,
        "enumerate": texpr.enumeration,
        "of": texpr.of,
    }
    for option, node in given.items():
        owner = OPTION_OWNERS[option]
        if node is not None and base != owner:
            ctx.diagnostics.add("E023", f"`{option}` applies to {owner}, not `{base}`", node.span)
    pattern = texpr.enumeration
    if pattern is not None and base == "choices" and counter_position(pattern.value) is None:
        ctx.diagnostics.add(
            "E023",
            f"the enumerate pattern {pattern.raw} has no counter",
            pattern.span,
            hint='put one of A, a, 1 or i in it, standing alone: "(A) ", "a. ", "1) ", "i. "',
        )
