"""Spelling of the formatter's one-line pieces: literals, types, paths, members.

Kept apart from :mod:`fmt` (which does layout and comments) so the rules for
writing one construct back as source text live in one small place.
"""

from __future__ import annotations

import re
import typing as t

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
    """``text[]? sep "..." prefix "..."`` or ``const "..."``; options in the order
    ``of``, ``names``, ``sep``, ``prefix``, ``enumerate``, ``shuffle``."""
    if texpr.const_value is not None:
        out = f"const {string(texpr.const_value)}"
    else:
        out = texpr.base.value
    out += ("[]" if texpr.is_list else "") + ("?" if texpr.optional else "")
    if texpr.of is not None:
        out += f" of {texpr.of.value}"
    if texpr.names is not None:
        out += " names " + ", ".join(string(n) for n in texpr.names.values)
    if texpr.sep is not None:
        out += f" sep {string(texpr.sep)}"
    if texpr.prefix is not None:
        out += f" prefix {string(texpr.prefix)}"
    if texpr.enumeration is not None:
        out += f" enumerate {string(texpr.enumeration)}"
    if texpr.shuffle is not None:
        out += f" shuffle {'true' if texpr.shuffle.value else 'false'}"
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


# --------------------------------------------------- one-line members


def slot_line(s: ir.Slot) -> str:
    """``slot name: type from ... each ... default ...``."""
    out = f"slot {s.name.value}: {type_expr(s.type)}"
    if s.source is not None:
        out += f" from {field_path(s.source)}"
    if s.each is not None:
        out += f" each {string(s.each)}"
    if s.default is not None:
        out += f" default {string(s.default)}"
    return out


def task_prop_line(m: ir.TaskProp) -> str:
    """A task property such as ``category "VQA"``."""
    match m:
        case ir.Category(value=s):
            return f"category {string(s)}"
        case ir.Split(value=n):
            return f"split {n.value}"
        case ir.Source(value=s):
            return f"source {string(s)}"
        case ir.Notes(value=s):
            return f"notes {string(s)}"
        case ir.Augment(value=b):
            return f"augment {'true' if b else 'false'}"
        case ir.Instances(task_name=s, condition=cond):
            out = f"instances {string(s)}"
            if cond is not None:
                out += " where " + ("not " if cond.negated else "") + field_path(cond.path)
            return out
        case ir.Target(path=p):
            return f"target from {field_path(p)}"
        case _:
            t.assert_never(m)


def plan_line(m: ir.PlanMember) -> str:
    """A plan setting (not ``filter``, which is a block)."""
    match m:
        case ir.Use(metaprompt=n, samples=s):
            return f"use {n.value}" + (f" samples {s.value}" if s is not None else "")
        case ir.Temperature(values=values):
            if isinstance(values, ir.NumberRange):
                lo, hi, step = values.low.text, values.high.text, values.step.text
                return f"temperature {lo}..{hi} step {step}"
            return "temperature " + ", ".join(v.text for v in values.values)
        case ir.TopP(value=v):
            return f"top_p {v.text}"
        case ir.MaxTokens(value=i):
            return f"max_tokens {i.value}"
        case ir.Model(value=s):
            return f"model {string(s)}"
        case ir.Seed(value=i):
            return f"seed {i.value}"
        case ir.Iterations(value=i):
            return f"iterations {i.value}"
        case ir.Attempts(value=i):
            return f"attempts {i.value}"
        case ir.Tasks(selector=selector):
            if isinstance(selector, ir.SelectAll):
                return "tasks all"
            if isinstance(selector, ir.SelectNames):
                return "tasks " + ", ".join(n.value for n in selector.names)
            return f"tasks category {string(selector.category)}"
        case ir.JudgeRef(name=n):
            return f"judge {n.value}"
        case ir.Filter():  # pragma: no cover - formatted as a block by the caller
            raise TypeError("filter is a block")
        case _:
            t.assert_never(m)


def prompt_line(m: ir.PromptMember) -> str:
    """A member of a metaprompt or bootstrap block."""
    match m:
        case ir.PromptSystem(template=s):
            return f"system {string(s)}"
        case ir.PromptUser(template=s):
            return f"user {string(s)}"
        case ir.PromptDescription(value=s):
            return f"description {string(s)}"
        case ir.PromptStrategies(name=n):
            return f"strategies {n.value}"
        case ir.PromptCount(value=i):
            return f"count {i.value}"
        case ir.PromptTake(value=i):
            return f"take {i.value}"
        case ir.PromptExample(instruction=a, rewrite=b):
            return f"example {string(a)} -> {string(b)}"
        case _:
            t.assert_never(m)


def judge_line(m: ir.JudgeMember) -> str:
    """A member of a judge block."""
    match m:
        case ir.JudgeModel(value=s):
            return f"model {string(s)}"
        case ir.JudgeThreshold(value=v):
            return f"threshold {v.text}"
        case ir.PromptSystem() | ir.PromptUser() | ir.PromptDescription():
            return prompt_line(m)
        case _:
            t.assert_never(m)


def filter_line(m: ir.FilterMember) -> str:
    """A setting of a filter block."""
    match m:
        case ir.LengthRatio(low=lo, high=hi):
            return f"length_ratio {lo.text}..{hi.text}"
        case ir.PlaceholderPolicy(value=n):
            return f"placeholders {n.value}"
        case ir.Dedup(value=v):
            return f"dedup {v.text}"
        case ir.Reject(names=names):
            return "reject " + ", ".join(n.value for n in names)
        case ir.Language(value=n):
            return f"language {n.value}"
        case _:
            t.assert_never(m)


def sampling_line(m: ir.SamplingMember) -> str:
    """A setting of a sampling block."""
    match m:
        case ir.SamplingPlanRef(name=n):
            return f"plan {n.value}"
        case ir.SamplingInstances(path=p):
            return f"instances {string(p)}"
        case ir.RawShare(value=v):
            return f"raw_share {v.text}"
        case ir.Mode(value=n):
            return f"mode {n.value}"
        case ir.PerTask(value=i):
            return f"per_task {i.value}"
        case ir.Seed(value=i):
            return f"seed {i.value}"
        case ir.Carry(paths=paths):
            return "carry " + ", ".join(field_path(p) for p in paths)
        case _:
            t.assert_never(m)


def target_text(target: ir.TargetTemplate) -> str:
    """``-> "template"``: an instruction's own target, after its strings."""
    return f"-> {string(target.literal)}"
