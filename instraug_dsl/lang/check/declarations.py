"""Collecting declarations (duplicates, E010) and repeated members or properties (E014)."""

from __future__ import annotations

import typing as t
from collections import Counter

from .. import ir
from .context import BUILTIN_TYPES, NO_JUDGE, Context, _items, field_path_keys, task_props


def _member_key(member: object) -> str:
    return type(member).__name__


def collect_declarations(program: ir.Program, ctx: Context) -> None:
    """Build the symbol tables; report duplicate declarations (E010)."""
    tables: dict[type, tuple[str, dict[str, t.Any]]] = {
        ir.TypeAlias: ("type", ctx.types),
        ir.Task: ("task", ctx.tasks),
        ir.MetaPrompt: ("meta-prompt", ctx.metaprompts),
        ir.Strategies: ("strategy list", ctx.strategies),
        ir.Bootstrap: ("bootstrap prompt", ctx.bootstraps),
        ir.Plan: ("plan", ctx.plans),
        ir.Sampling: ("sampling plan", ctx.samplings),
        ir.Judge: ("judge", ctx.judges),
    }
    for item in _items(program):
        if isinstance(item, ir.Import):
            continue
        kind, table = tables[type(item)]
        name = item.name.value
        if name in BUILTIN_TYPES and isinstance(item, ir.TypeAlias):
            ctx.diagnostics.add(
                "E010", f"type `{name}` is built in and cannot be redeclared", item.name.span
            )
            continue
        if name == NO_JUDGE and isinstance(item, ir.Judge):
            ctx.diagnostics.add(
                "E010",
                f"`{NO_JUDGE}` is reserved and cannot name a judge",
                item.name.span,
                hint=f"`judge {NO_JUDGE}` in a plan turns the judge off; choose another name",
            )
            continue
        if name in table:
            first = table[name].name.span
            ctx.diagnostics.add(
                "E010",
                f"{kind} `{name}` is declared twice",
                item.name.span,
                hint=f"first declared at {first.path}:{first.line}:{first.col}",
            )
            continue
        table[name] = item
    # Meta-prompts and bootstraps share the `use` namespace.
    for name, boot in ctx.bootstraps.items():
        if name in ctx.metaprompts:
            ctx.diagnostics.add(
                "E010", f"`{name}` is both a meta-prompt and a bootstrap prompt", boot.name.span
            )


def check_duplicate_members(program: ir.Program, ctx: Context) -> None:
    """Duplicate slots (E011), instruction names (E012) and properties (E014)."""
    for item in _items(program):
        members: tuple[object, ...]
        if isinstance(item, ir.Task):
            seen_slots: dict[str, ir.Slot] = {}
            seen_instr: dict[str, ir.Instruction] = {}
            for m in item.members:
                if isinstance(m, ir.Slot):
                    if m.name.value in seen_slots:
                        ctx.diagnostics.add(
                            "E011",
                            f"slot `{m.name.value}` is declared twice in task `{item.name.value}`",
                            m.name.span,
                        )
                    seen_slots.setdefault(m.name.value, m)
                elif isinstance(m, ir.Instruction):
                    if m.name.value in seen_instr:
                        ctx.diagnostics.add(
                            "E012",
                            f"instruction `{m.name.value}` is declared twice"
                            f" in task `{item.name.value}`",
                            m.name.span,
                        )
                    seen_instr.setdefault(m.name.value, m)
            members = tuple(task_props(item))
        elif isinstance(item, ir.MetaPrompt | ir.Bootstrap | ir.Sampling | ir.Judge):
            # A meta-prompt may show several examples.
            members = tuple(m for m in item.members if not isinstance(m, ir.PromptExample))
            for carry in (m for m in item.members if isinstance(m, ir.Carry)):
                carried: set[tuple[str | int, ...]] = set()
                for path in carry.paths:
                    keys = field_path_keys(path)
                    if keys in carried:
                        ctx.diagnostics.add(
                            "E014", f"`{path.dotted()}` is carried twice", path.span
                        )
                    carried.add(keys)
        elif isinstance(item, ir.Plan):
            members = tuple(m for m in item.members if not isinstance(m, ir.Use))
            for pm in item.members:
                if isinstance(pm, ir.Filter):
                    _report_repeats(pm.members, ctx)
            uses = Counter(u.metaprompt.value for u in item.members if isinstance(u, ir.Use))
            for u in item.members:
                if isinstance(u, ir.Use) and uses[u.metaprompt.value] > 1:
                    ctx.diagnostics.add(
                        "E014",
                        f"meta-prompt `{u.metaprompt.value}` is used twice"
                        f" in plan `{item.name.value}`",
                        u.metaprompt.span,
                    )
                    uses[u.metaprompt.value] = 0
        elif isinstance(item, ir.Strategies):
            names: set[str] = set()
            for s in item.items:
                if s.name.value in names:
                    ctx.diagnostics.add(
                        "E014",
                        f"strategy `{s.name.value}` is listed twice in `{item.name.value}`",
                        s.name.span,
                    )
                names.add(s.name.value)
            continue
        else:
            continue
        _report_repeats(members, ctx)


_PROPERTY_WORDS = {
    "PromptSystem": "system",
    "PromptUser": "user",
    "PromptDescription": "description",
    "PromptStrategies": "strategies",
    "PromptCount": "count",
    "PromptTake": "take",
    "TopP": "top_p",
    "MaxTokens": "max_tokens",
    "SamplingPlanRef": "plan",
    "SamplingInstances": "instances",
    "RawShare": "raw_share",
    "PerTask": "per_task",
    "LengthRatio": "length_ratio",
    "PlaceholderPolicy": "placeholders",
    "Reject": "reject",
    "Language": "language",
    "JudgeRef": "judge",
    "JudgeModel": "model",
    "JudgeThreshold": "threshold",
}


def _report_repeats(members: t.Iterable[object], ctx: Context) -> None:
    seen: set[str] = set()
    for m in members:
        key = _member_key(m)
        if key in seen:
            word = _PROPERTY_WORDS.get(key, key.lower())
            span = t.cast(t.Any, m).span
            ctx.diagnostics.add(
                "E014", f"`{word}` is given twice in this block", span, hint="remove one of them"
            )
        seen.add(key)
