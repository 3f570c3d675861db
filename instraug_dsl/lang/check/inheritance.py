"""References between declarations and inheritance (`extends`): unknown names, cycles."""

from __future__ import annotations

import typing as t

from .. import ir
from ..diagnostics import did_you_mean
from .context import NO_JUDGE, Context, _items


def check_references(program: ir.Program, ctx: Context) -> None:
    """Unknown names (E013) with hints; plan inheritance cycles (E052)."""

    def unknown(name: ir.Name, kind: str, table: t.Iterable[str]) -> None:
        # Past what is shown, skip the did-you-mean: thousands of unknown names
        # against thousands of declared ones would take minutes.
        crowded = ctx.diagnostics.crowded("E013", name.span.path)
        ctx.diagnostics.add(
            "E013",
            f"unknown {kind} `{name.value}`",
            name.span,
            hint=None if crowded else did_you_mean(name.value, table),
        )

    usable = {**ctx.metaprompts}
    for item in _items(program):
        if isinstance(item, ir.MetaPrompt):
            if item.extends is not None and item.extends.value not in ctx.metaprompts:
                unknown(item.extends, "meta-prompt", ctx.metaprompts)
            for pm in item.members:
                if isinstance(pm, ir.PromptStrategies) and pm.name.value not in ctx.strategies:
                    unknown(pm.name, "strategy list", ctx.strategies)
        elif isinstance(item, ir.Plan):
            if item.extends is not None and item.extends.value not in ctx.plans:
                unknown(item.extends, "plan", ctx.plans)
            for m in item.members:
                if isinstance(m, ir.Use) and m.metaprompt.value not in usable:
                    unknown(m.metaprompt, "meta-prompt", usable)
                elif isinstance(m, ir.Tasks) and isinstance(m.selector, ir.SelectNames):
                    for n in m.selector.names:
                        if n.value not in ctx.tasks:
                            unknown(n, "task", ctx.tasks)
                elif (
                    isinstance(m, ir.JudgeRef)
                    and m.name.value != NO_JUDGE
                    and m.name.value not in ctx.judges
                ):
                    unknown(m.name, "judge", ctx.judges)
        elif isinstance(item, ir.Sampling):
            for s in item.members:
                if isinstance(s, ir.SamplingPlanRef) and s.name.value not in ctx.plans:
                    unknown(s.name, "plan", ctx.plans)
    _report_cycles("plan", ctx.plans, ctx)
    _report_cycles("meta-prompt", ctx.metaprompts, ctx)


def _report_cycles(kind: str, table: t.Mapping[str, Inheriting], ctx: Context) -> None:
    """E052 on every declaration of an inheritance cycle."""
    for group, cyclic in inheritance_order(table):
        if not cyclic:
            continue
        names = [d.name.value for d in group]
        for i, decl in enumerate(group):
            ctx.diagnostics.add(
                "E052",
                f"{kind} `{decl.name.value}` extends itself: {_cycle_text(names, i)}",
                decl.extends.span if decl.extends else decl.name.span,
            )


def _cycle_text(cycle: t.Sequence[str], start: int, shown: int = 12) -> str:
    """``b -> c -> a -> b`` for the cycle ``[a, b, c]`` from ``b``; long cycles are shortened."""
    k = len(cycle)
    steps = list(range(k + 1))
    if k + 1 > shown:
        half = shown // 2
        steps = [*range(half), -1, *range(k + 1 - half, k + 1)]
    more = f"... ({k + 1 - 2 * (shown // 2)} more)"
    return " -> ".join(more if j < 0 else cycle[(start + j) % k] for j in steps)


Inheriting = t.TypeVar("Inheriting", ir.Plan, ir.MetaPrompt)


def inheritance_chain(decl: Inheriting, table: t.Mapping[str, Inheriting]) -> list[Inheriting]:
    """The declaration and its ancestors, most derived first (cycles cut)."""
    chain = [decl]
    seen = {id(decl)}
    while chain[-1].extends is not None and chain[-1].extends.value in table:
        parent = table[chain[-1].extends.value]
        if id(parent) in seen:
            break
        chain.append(parent)
        seen.add(id(parent))
    return chain


def inheritance_order(
    table: t.Mapping[str, Inheriting],
) -> list[tuple[list[Inheriting], bool]]:
    """Every declaration of ``table`` in groups, each group after its parent's group.

    A group is one declaration (``False``), or all the declarations of one
    inheritance cycle (``True``) in cycle order: each extends the next, the
    last extends the first.  Linear: every chain is followed once, so what
    is derived from inheritance can be computed parent first with a memo.
    """
    state: dict[str, bool] = {}  # False: on the path being followed; True: placed
    groups: list[tuple[list[Inheriting], bool]] = []
    for name in table:
        if name in state:
            continue
        path: list[str] = []
        where: dict[str, int] = {}
        cur: str | None = name
        while cur is not None and cur not in state:
            state[cur] = False
            where[cur] = len(path)
            path.append(cur)
            ext = table[cur].extends
            cur = ext.value if ext is not None and ext.value in table else None
        cut = len(path)
        if cur is not None and state[cur] is False:  # the path closed a cycle
            cut = where[cur]
            groups.append(([table[n] for n in path[cut:]], True))
        groups.extend(([table[n]], False) for n in reversed(path[:cut]))
        for n in path:
            state[n] = True
    return groups


def _inherit(
    own: t.Sequence[ir.PromptMember], inherited: t.Sequence[ir.PromptMember]
) -> list[ir.PromptMember]:
    kinds = {type(m) for m in own}
    return [*own, *(m for m in inherited if type(m) not in kinds)]


def _cycle_members(cycle: list[ir.MetaPrompt]) -> dict[str, list[ir.PromptMember]]:
    """Effective members of the meta-prompts of one cycle, without walking it per member.

    The chain of ``cycle[i]`` is ``cycle[i], cycle[i+1], ...`` once around; each
    kind of member comes from the first declaration of that chain that has it.
    """
    k = len(cycle)
    kinds = [{type(m) for m in d.members} for d in cycle]
    nearest: dict[type, int] = {}  # kind -> first position at or after `pos` having it
    out: dict[str, list[ir.PromptMember]] = {}
    for pos in range(2 * k - 1, -1, -1):
        for kind in kinds[pos % k]:
            nearest[kind] = pos
        if pos >= k:
            continue
        by_position: dict[int, set[type]] = {}
        for kind, at in nearest.items():
            if at - pos < k:
                by_position.setdefault(at, set()).add(kind)
        members: list[ir.PromptMember] = []
        for at in sorted(by_position):
            members.extend(m for m in cycle[at % k].members if type(m) in by_position[at])
        out[cycle[pos].name.value] = members
    return out


def prompt_members(mp: ir.MetaPrompt, ctx: Context) -> list[ir.PromptMember]:
    """A meta-prompt's effective members: its own, then inherited ones it does not set."""
    memo: dict[str, list[ir.PromptMember]] | None = ctx.derived.get("prompt_members")
    if memo is None:
        memo = {}
        for group, cyclic in inheritance_order(ctx.metaprompts):
            if cyclic:
                memo.update(_cycle_members(group))
            else:
                decl = group[0]
                parent = decl.extends.value if decl.extends is not None else ""
                memo[decl.name.value] = _inherit(decl.members, memo.get(parent, ()))
        ctx.derived["prompt_members"] = memo
    if ctx.metaprompts.get(mp.name.value) is mp:
        return list(memo[mp.name.value])
    # A second declaration of the name (E010) inherits like the first.
    parent = mp.extends.value if mp.extends is not None else ""
    return _inherit(mp.members, memo.get(parent, ()))


def plan_chain(plan: ir.Plan, ctx: Context) -> list[ir.Plan]:
    """The plan and its ancestors, most derived first (cycles cut)."""
    return inheritance_chain(plan, ctx.plans)


def uses_a_metaprompt(plan: ir.Plan, ctx: Context) -> bool:
    """Whether the plan or one of its ancestors has a ``use`` (memoized, linear)."""

    def own(p: ir.Plan) -> bool:
        return any(isinstance(m, ir.Use) for m in p.members)

    memo: dict[str, bool] | None = ctx.derived.get("plan_uses")
    if memo is None:
        memo = {}
        for group, cyclic in inheritance_order(ctx.plans):
            if cyclic:
                found = any(own(p) for p in group)
                memo.update((p.name.value, found) for p in group)
            else:
                p = group[0]
                parent = p.extends.value if p.extends is not None else ""
                memo[p.name.value] = own(p) or memo.get(parent, False)
        ctx.derived["plan_uses"] = memo
    if ctx.plans.get(plan.name.value) is plan:
        return memo[plan.name.value]
    parent = plan.extends.value if plan.extends is not None else ""
    return own(plan) or memo.get(parent, False)
