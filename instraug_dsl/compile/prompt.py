"""Rendering meta-prompts into chat messages (sandboxed Jinja, values as data).

The meta-prompt templates are user-authored and rendered only through
:mod:`instraug_dsl.lang.templating`; the protected instruction, the tokens and the
strategy are *values* of the render, never template source, so braces or
Jinja syntax inside an instruction stay inert text.
"""

from __future__ import annotations

from jinja2 import TemplateError

from ..errors import IatCompileError
from ..lang.model import BootstrapSpec, MetaPromptSpec, TaskSpec
from ..lang.templating import render_template
from ..contract.compiled import Message


def _render(source: str, variables: dict[str, object], what: str) -> str:
    try:
        return render_template(source, variables)
    except TemplateError as exc:  # e.g. a sandbox violation or a filter error
        raise IatCompileError(f"{what}: template failed to render: {exc}") from None


def render_messages(
    mp: MetaPromptSpec,
    protected: str,
    tokens: tuple[str, ...],
    task: TaskSpec,
    n: int = 1,
) -> tuple[Message, ...]:
    """The chat messages for one request: optional system, then user.

    Template variables: ``instruction`` (protected text), ``tokens`` (list of
    tokens, order of first use), ``n`` (rewrites asked for), ``strategy``
    (guided prompts), ``task`` and ``category``.
    """
    variables: dict[str, object] = {
        "instruction": protected,
        "tokens": list(tokens),
        "n": n,
        "strategy": mp.strategy if mp.strategy is not None else "",
        "task": task.name,
        "category": task.category,
    }
    out = []
    if mp.system is not None:
        out.append(
            Message("system", _render(mp.system, variables, f"meta-prompt `{mp.name}` system"))
        )
    out.append(Message("user", _render(mp.user, variables, f"meta-prompt `{mp.name}` user")))
    return tuple(out)


def render_bootstrap(spec: BootstrapSpec) -> tuple[Message, ...]:
    """The chat messages asking a model for ``spec.count`` rewriting strategies."""
    variables: dict[str, object] = {"count": spec.count}
    out = []
    if spec.system is not None:
        out.append(
            Message("system", _render(spec.system, variables, f"bootstrap `{spec.name}` system"))
        )
    out.append(Message("user", _render(spec.user, variables, f"bootstrap `{spec.name}` user")))
    return tuple(out)
