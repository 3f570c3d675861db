"""Rendering meta-prompts into chat messages (sandboxed Jinja, values as data).

The meta-prompt templates are user-authored and rendered only through
:mod:`instraug_dsl.lang.templating`; the protected instruction, the tokens and the
strategy are *values* of the render, never template source, so braces or
Jinja syntax inside an instruction stay inert text.
"""

from __future__ import annotations

import re

from jinja2 import TemplateError

from ..contract.compiled import Message
from ..errors import IatCompileError
from ..lang import ir
from ..lang.model import BootstrapSpec, MetaPromptSpec, TaskSpec
from ..lang.templating import render_template
from .tokens import FAMILIES, TokenFamily, template_pieces

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORDS = re.compile(r"[^\W_]+")


def _render(source: str, variables: dict[str, object], what: str) -> str:
    try:
        return render_template(source, variables)
    except TemplateError as exc:  # a sandbox refusal, a rendering limit, a filter error
        raise IatCompileError(f"{what}: template failed to render: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - user code: `{{ 1 / 0 }}`, `{{ "a" + 1 }}`...
        raise IatCompileError(
            f"{what}: template failed to render: {type(exc).__name__}: {exc}"
        ) from None


def zero_token(family: TokenFamily, index: int) -> str:
    """The ``index``-th (1-based) example token: the family's shape with label ``0``, ``00``...

    Never a real token (labels start at 1 or A), so a reply that copies it is rejected.
    """
    return f"{family.open}{family.prefix}{'0' * index}{family.close}"


def render_example(text: str, family: TokenFamily) -> str:
    """An example's ``{slot}`` text with each distinct slot as a :func:`zero_token`."""
    names: dict[str, str] = {}
    out = []
    for piece in template_pieces(text):
        if isinstance(piece, ir.SlotRef):
            out.append(names.setdefault(piece.name, zero_token(family, len(names) + 1)))
        else:
            out.append(piece.text)
    return "".join(out)


def pick_example(mp: MetaPromptSpec, has_tokens: bool) -> tuple[str, str] | None:
    """The first example whose having placeholders matches the request's, else the first."""
    for example in mp.examples:
        if any(isinstance(p, ir.SlotRef) for p in template_pieces(example[0])) == has_tokens:
            return example
    return mp.examples[0] if mp.examples else None


def render_messages(
    mp: MetaPromptSpec,
    protected: str,
    tokens: tuple[str, ...],
    task: TaskSpec,
    n: int = 1,
    *,
    family: TokenFamily | str = "brace_alpha",
) -> tuple[Message, ...]:
    """The chat messages for one request: optional system, then user.

    Template variables: ``instruction`` (protected text), ``tokens`` (list of
    tokens, order of first use), ``n`` (rewrites asked for), ``strategy``
    (guided prompts), ``task``, ``category``, and ``example_instruction`` /
    ``example_rewrite`` (the meta-prompt's example for this request, its
    placeholders as never-real tokens of ``family``; empty without an example).
    """
    fam = FAMILIES[family] if isinstance(family, str) else family
    example = pick_example(mp, bool(tokens))
    variables: dict[str, object] = {
        "instruction": protected,
        "tokens": list(tokens),
        "n": n,
        "strategy": mp.strategy if mp.strategy is not None else "",
        "task": task.name,
        "category": task.category,
        "example_instruction": render_example(example[0], fam) if example else "",
        "example_rewrite": render_example(example[1], fam) if example else "",
    }
    out = []
    if mp.system is not None:
        out.append(
            Message("system", _render(mp.system, variables, f"meta-prompt `{mp.name}` system"))
        )
    out.append(Message("user", _render(mp.user, variables, f"meta-prompt `{mp.name}` user")))
    return tuple(out)


def machinery_lines(messages: tuple[Message, ...], hide: tuple[str, ...]) -> list[str]:
    """The prompt's own wording: every line of ``messages`` with the ``hide`` texts removed.

    ``hide`` holds the protected instruction and the rendered examples (checked on their
    own), so what is left is the scaffolding a reply must not echo.
    """
    lines: list[str] = []
    for m in messages:
        text = m.content
        for h in sorted((h for h in hide if h), key=len, reverse=True):
            text = text.replace(h, "\n")
        for line in text.splitlines():
            lines.extend(
                s for s in _SENTENCE_END.split(line.strip()) if len(_WORDS.findall(s)) >= 3
            )
    return lines


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
