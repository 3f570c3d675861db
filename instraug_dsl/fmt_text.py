"""Spelling of the formatter's atoms: string literals, types, field paths.

Kept apart from :mod:`fmt` (which does layout and comments) so the rules for
writing one value back as source text live in one small place.
"""

from __future__ import annotations

import re

from . import ir
from .strings import decode, quote

#: The NAME terminal of ``grammar/iat.lark``: keys matching it print as ``.key``.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(value: str, triple: bool) -> str:
    """``quote`` without the delimiters; lone surrogates (from ``\\uD800``) are
    escaped too, because they cannot be written to a UTF-8 file."""
    delim = 3 if triple else 1
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", quote(value, triple)[delim:-delim])


def _body(value: str, triple: bool) -> str:
    """The inside of a literal.  A triple-quoted string keeps a ``"`` raw when
    a non-quote character follows it (it can then neither close the string
    nor run into the closing quotes), so Jinja templates stay readable."""
    if not triple:
        return _escaped(value, False)
    parts = value.split('"')
    out = [_escaped(parts[0], True)]
    for part in parts[1:]:
        out.append('"' if part else '\\"')
        out.append(_escaped(part, True))
    return "".join(out)


def string(lit: ir.StringLit) -> str:
    """Re-quote a literal in its own style (plain or triple-quoted).

    Escapes that carry meaning survive: ``\\{``/``\\}`` (a literal brace,
    not a placeholder) and, in a triple-quoted string, ``\\n`` (an escaped
    line break never ends a ``{placeholder}`` scan).  Everything else is
    written the way :func:`strings.quote` spells it.
    """
    chars, _ = decode(lit.raw) if lit.raw else ([], [])
    if "".join(c.ch for c in chars) != lit.value:  # built in code: no spelling to keep
        chars = []
        run = lit.value
    else:
        run = ""
    out: list[str] = []
    for c in chars:
        keep = c.escaped and (c.ch in "{}" or (c.ch == "\n" and lit.triple))
        if not keep:
            run += c.ch
            continue
        out.append(_body(run, lit.triple))
        out.append("\\n" if c.ch == "\n" else "\\" + c.ch)
        run = ""
    out.append(_body(run, lit.triple))
    delim = '"""' if lit.triple else '"'
    return delim + "".join(out) + delim


def type_expr(texpr: ir.TypeExpr) -> str:
    """``text[]? sep "..." prefix "..."`` or ``const "..."``."""
    if texpr.const_value is not None:
        out = f"const {string(texpr.const_value)}"
    else:
        out = texpr.base.value
    out += ("[]" if texpr.is_list else "") + ("?" if texpr.optional else "")
    if texpr.sep is not None:
        out += f" sep {string(texpr.sep)}"
    if texpr.prefix is not None:
        out += f" prefix {string(texpr.prefix)}"
    return out


def field_path(path: ir.FieldPath) -> str:
    """``head.key[0]["odd key"]``: dotted where the key is a plain name."""
    out = path.head.value
    for step in path.steps:
        if isinstance(step, ir.IndexStep):
            out += f"[{step.index}]"
        elif NAME.match(step.key):
            out += f".{step.key}"
        else:
            out += f"[{_quoted(step.key)}]"
    return out


def _quoted(value: str) -> str:
    return '"' + _body(value, False) + '"'
