"""Sandboxed Jinja for user-authored meta-prompts, and nothing else.

Meta-prompt templates are written by users; the instruction, strategy and
other values are passed to them as *data*.  LLM output and instruction text
are never rendered as templates.  Only :class:`SandboxedEnvironment` is used.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment


@functools.lru_cache(maxsize=1)
def environment() -> SandboxedEnvironment:
    """One sandbox per process; undefined variables are errors, not blanks."""
    return SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=False,
    )


def template_problems(source: str) -> tuple[str | None, set[str]]:
    """Return (syntax problem or None, variables the template reads)."""
    env = environment()
    try:
        ast = env.parse(source)
    except TemplateSyntaxError as exc:
        return (f"{exc.message} (template line {exc.lineno})", set())
    return None, set(meta.find_undeclared_variables(ast))


@functools.lru_cache(maxsize=512)
def _compiled(source: str):  # type: ignore[no-untyped-def]
    return environment().from_string(source)


def render_template(source: str, variables: Mapping[str, object]) -> str:
    """Render a user template with values passed as data."""
    return str(_compiled(source).render(**variables))
