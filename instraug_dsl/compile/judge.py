"""Rendering a judge's prompt for one rewrite (sandboxed Jinja, values as data).

A judge (``judge NAME { ... }`` in ``.iat``, docs/language.md) is a second model pass over the
rewrites the validators accepted: it asks whether the rewrite asks for exactly the same task as
its original.  Its templates see ``original`` (the root original's paraphrased part, with
``{slot}`` references), ``rewrite`` (the accepted rewrite, the same way), ``task`` and
``category``.  Both texts are *values* of the render: a rewrite is model output and is never
itself rendered as a template, so braces or Jinja syntax in it reach the judge verbatim.
"""

from __future__ import annotations

from ..contract.compiled import Message
from ..lang.model import JudgeSpec
from .prompt import _render

#: What a judge's first answer token is read as (case, spaces and punctuation aside).
YES = "yes"
NO = "no"


def render_judge(
    spec: JudgeSpec, original: str, rewrite: str, task: str = "", category: str = ""
) -> tuple[Message, ...]:
    """The chat messages asking ``spec`` about one rewrite: optional system, then user."""
    variables: dict[str, object] = {
        "original": original,
        "rewrite": rewrite,
        "task": task,
        "category": category,
    }
    out = []
    if spec.system is not None:
        out.append(
            Message("system", _render(spec.system, variables, f"judge `{spec.name}` system"))
        )
    out.append(Message("user", _render(spec.user, variables, f"judge `{spec.name}` user")))
    return tuple(out)


def answer_word(text: str) -> str | None:
    """``yes`` or ``no`` when ``text`` (a token or a short reply) starts with that word."""
    word = text.strip().lstrip("*_\"'`([").lower()
    for candidate in (YES, NO):
        if word.startswith(candidate):
            rest = word[len(candidate) :]
            if not rest or not rest[0].isalpha():
                return candidate
    return None
