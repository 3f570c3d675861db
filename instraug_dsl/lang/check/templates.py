"""Meta-prompt, bootstrap and judge templates, checked in the sandbox at check time."""

from __future__ import annotations

import typing as t

from .. import ir
from ..diagnostics import did_you_mean
from ..source import Span
from ..strings import sub_span
from .context import BOOTSTRAP_VARS, JUDGE_REQUIRED, JUDGE_VARS, METAPROMPT_VARS, Context, all_of
from .inheritance import prompt_members

if t.TYPE_CHECKING:
    from ..templating import TrialBudget


def check_metaprompts(program: ir.Program, ctx: Context) -> None:
    """Jinja syntax (E054), unknown variables (E055), missing instruction hole (E056),
    and what the sandbox refuses or cannot render within its limits (E070-E074); the same
    for the templates of judges, which must show ``original`` and ``rewrite`` (E056)."""
    if not (ctx.metaprompts or ctx.bootstraps or ctx.judges):
        return  # importing jinja2 costs start-up time; only templates need it
    from ..templating import TrialBudget

    budget = TrialBudget()

    prompts: list[ir.MetaPrompt | ir.Bootstrap] = [
        *all_of(program, ir.MetaPrompt),
        *ctx.bootstraps.values(),
    ]
    for item in prompts:
        is_boot = isinstance(item, ir.Bootstrap)
        allowed = BOOTSTRAP_VARS if is_boot else METAPROMPT_VARS
        # Inherited members count for what the prompt contains; template
        # errors are reported once, where the template is written.
        effective = prompt_members(item, ctx) if isinstance(item, ir.MetaPrompt) else item.members
        user = [m for m in effective if isinstance(m, ir.PromptUser)]
        if not user:
            ctx.diagnostics.add(
                "E056",
                f"{'bootstrap prompt' if is_boot else 'meta-prompt'} `{item.name.value}`"
                " has no `user` message",
                item.name.span,
            )
        referenced, unparsed = _check_templates(effective, item.members, allowed, ctx, budget)
        if not is_boot and user and not unparsed and "instruction" not in referenced:
            ctx.diagnostics.add(
                "E056",
                f"meta-prompt `{item.name.value}` never shows the model the instruction",
                item.name.span,
                hint="use {{ instruction }} in the user message",
            )
        if (
            not is_boot
            and "strategy" in referenced
            and not any(isinstance(m, ir.PromptStrategies) for m in effective)
        ):
            ctx.diagnostics.add(
                "E055",
                "`strategy` is only defined in a meta-prompt that names `strategies`",
                item.name.span,
            )
    for judge in all_of(program, ir.Judge):
        if not any(isinstance(m, ir.PromptUser) for m in judge.members):
            ctx.diagnostics.add(
                "E056", f"judge `{judge.name.value}` has no `user` message", judge.name.span
            )
            continue
        referenced, unparsed = _check_templates(
            judge.members, judge.members, JUDGE_VARS, ctx, budget
        )
        missing = [v for v in JUDGE_REQUIRED if v not in referenced]
        if missing and not unparsed:
            ctx.diagnostics.add(
                "E056",
                f"judge `{judge.name.value}` never shows the model the {missing[0]}",
                judge.name.span,
                hint="use {{ original }} and {{ rewrite }} in its messages",
            )


def _check_templates(
    effective: t.Sequence[object],
    own_members: t.Sequence[object],
    allowed: frozenset[str],
    ctx: Context,
    budget: TrialBudget,
) -> tuple[set[str], bool]:
    """Check the ``system``/``user`` templates of one prompt; return the variables they use
    and whether one of them could not be parsed (then it may use anything)."""
    from ..templating import analyse_template, trial_render

    referenced: set[str] = set()
    unparsed = False  # a broken template may well use the instruction
    for m in effective:
        if not isinstance(m, ir.PromptSystem | ir.PromptUser):
            continue
        own = m in own_members
        report = analyse_template(m.template.value)
        if own:
            if report.syntax_error is not None:
                ctx.diagnostics.add(
                    "E054", f"invalid template: {report.syntax_error}", m.template.span
                )
            spans = _TemplateSpans(m.template)
            for f in report.findings:
                ctx.diagnostics.add(f.code, f.message, spans.span(f.start, f.end), hint=f.hint)
        if not report.parsed:
            unparsed = True
            continue
        variables = set(report.variables)
        referenced |= variables
        if own and not report.findings and variables <= allowed:
            # Limits are per render: a template that exceeds one with sample
            # values exceeds it with any values (loop counts, sizes of constants).
            limit = trial_render(m.template.value, allowed, budget)
            if limit is not None:
                ctx.diagnostics.add(
                    "E074",
                    f"this template goes over a rendering limit: {limit}",
                    m.template.span,
                    hint="a meta-prompt is rendered once per request:"
                    " keep its loops and texts small",
                )
        for var in sorted(variables - allowed) if own else ():
            ctx.diagnostics.add(
                "E055",
                f"unknown template variable `{var}`",
                m.template.span,
                hint=did_you_mean(var, allowed) or f"available: {', '.join(sorted(allowed))}",
            )
    return referenced, unparsed


class _TemplateSpans:
    """Spans of parts of a template literal, from offsets into its (unescaped) value."""

    def __init__(self, lit: ir.StringLit) -> None:
        self.lit = lit
        self._chars: list[tuple[int, int]] | None = None

    def span(self, start: int | None, end: int | None) -> Span:
        if start is None or end is None:
            return self.lit.span
        if self._chars is None:
            from ..strings import decode

            self._chars = [(c.start, c.end) for c in decode(self.lit.raw)[0]]
        chars = self._chars
        if not chars:
            return self.lit.span
        first = chars[min(start, len(chars) - 1)][0]
        last = chars[min(max(end, start + 1), len(chars)) - 1][1]
        return sub_span(self.lit, first, last)
