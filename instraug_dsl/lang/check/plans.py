"""Plans: held-out tasks, non-augmentable tasks, meta-prompts used, default plans."""

from __future__ import annotations

from .. import ir
from .context import Context, all_of, task_augmentable, task_split
from .inheritance import uses_a_metaprompt


def check_plans(program: ir.Program, ctx: Context) -> None:
    """Held-out tasks (E050), non-augmentable tasks (W051), no meta-prompt (E053),
    more than one ``default plan`` (E057)."""
    first_default: ir.Plan | None = None
    for plan in all_of(program, ir.Plan):
        if plan.default and first_default is None:
            first_default = plan
        elif plan.default and first_default is not None:
            where = first_default.span
            ctx.diagnostics.add(
                "E057",
                f"plan `{plan.name.value}` is marked `default`, but "
                f"`{first_default.name.value}` already is",
                plan.name.span,
                hint=f"keep `default` on one plan only (the other is at "
                f"{where.path}:{where.line}:{where.col})",
            )
        for m in plan.members:
            if isinstance(m, ir.Tasks) and isinstance(m.selector, ir.SelectNames):
                for n in m.selector.names:
                    task = ctx.tasks.get(n.value)
                    if task is None:
                        continue
                    if task_split(task) == "test":
                        ctx.diagnostics.add(
                            "E050",
                            f"task `{n.value}` is held out (split test)"
                            " and must never be augmented",
                            n.span,
                            hint="remove it from the plan; held-out tasks are for evaluation only",
                        )
                    elif not task_augmentable(task):
                        ctx.diagnostics.add(
                            "W051",
                            f"task `{n.value}` is marked `augment false` and will be skipped",
                            n.span,
                        )
        if not uses_a_metaprompt(plan, ctx):
            ctx.diagnostics.add(
                "E053",
                f"plan `{plan.name.value}` uses no meta-prompt",
                plan.name.span,
                hint="add `use NAME` for a declared meta-prompt",
            )
