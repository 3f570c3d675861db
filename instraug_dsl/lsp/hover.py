"""Hover: what a name means, resolved, and what the diagnostics at the cursor mean.

* a slot (declared, or ``{slot}`` in an instruction): its type with aliases followed, list
  separator, choices prefix, optional/default/each, and the record path it is read from;
* a type: the built-in type it resolves to, with its options;
* a meta-prompt (or bootstrap prompt): its description and what it inherits;
* a plan: its settings after inheritance and defaults (what ``iatc compile`` uses);
* a task, strategy list, sampling block or import: a short summary;
* a diagnostic: its code, title (``CODES``), message and hint.
"""

from __future__ import annotations

from collections.abc import Callable

from lsprotocol import types

from ..lang import ir, model
from ..lang.check import Context, prompt_members, resolved_type, task_slots
from ..lang.diagnostics import CODES, Diagnostic
from ..lang.source import Span
from ..lang.strings import quote
from .definitions import import_target
from .documents import Analysis, file_path
from .index import Ref, is_builtin_type, lookup, ref_at, slot_of

#: One line per built-in type.
BUILTIN_DOCS = {
    "text": 'free text; `text[]` is a list joined by `sep` (default `"||||"`)',
    "bbox": "a region (bounding box) rendered as text; `bbox[]` is a list joined by `sep`",
    "choices": 'a list of options, rendered after `prefix` (default `"\\n\\n[Options]: "`)',
    "const": 'a fixed value written in the type: `const "image"`; read from no record field',
    "label": 'a number selecting a name, 0-based: `label names "no", "yes"`',
    "choice": "the label (`B`) of the option equal to the value: `choice of options`, "
    "options in the order the enumerated `choices` slot shows them",
}


def _code(text: str) -> str:
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _diagnostic(diag: Diagnostic) -> str:
    level = diag.severity.value
    title = CODES.get(diag.code, "")
    lines = [f"**{level}[{diag.code}]** {title}", "", diag.message]
    if diag.hint:
        lines += ["", f"hint: {diag.hint}"]
    return "\n".join(lines)


def _type_text(base: str, is_list: bool, optional: bool) -> str:
    return f"{base}{'[]' if is_list else ''}{'?' if optional else ''}"


def _resolved_type_lines(texpr: ir.TypeExpr, ctx: Context) -> list[str]:
    """The type written, what it resolves to, and its rendering options."""
    rt = resolved_type(texpr, ctx)
    lines = []
    alias = texpr.base.value
    if alias != rt.base and not is_builtin_type(alias):
        lines.append(f"- type alias {_code(alias)} of {_code(rt.base)}")
    if rt.base == "const":
        lines.append(f"- constant {_code(quote(rt.const or ''))}")
    if not is_builtin_type(rt.base):
        lines.append(f"- unknown type {_code(rt.base)}")
    if rt.is_list:
        lines.append(f"- list separator {_code(quote(rt.sep or model.DEFAULT_SEP))}")
    if rt.base == "choices":
        lines.append(f"- prefix {_code(quote(rt.prefix or model.DEFAULT_CHOICES_PREFIX))}")
    elif rt.prefix is not None:
        lines.append(f"- prefix {_code(quote(rt.prefix))}")
    if rt.names is not None:
        lines.append("- names: " + ", ".join(_code(quote(n)) for n in rt.names))
    if rt.base == "choices":
        if rt.enumeration is not None:
            lines.append(f"- enumerate {_code(quote(rt.enumeration))}")
        lines.append(f"- shuffled per instance: {'no' if rt.shuffle is False else 'yes'}")
    if rt.of is not None:
        lines.append(f"- labels an option of {_code(rt.of.value)}")
    lines.append(f"- optional: {'yes' if rt.optional else 'no'}")
    return lines


def _slot(slot: ir.Slot, task: ir.Task | None, ctx: Context) -> str:
    rt = resolved_type(slot.type, ctx)
    where = f" of task {_code(task.name.value)}" if task is not None else ""
    spelled = _type_text(rt.base, rt.is_list, rt.optional)
    head = f"**slot {_code(slot.name.value)}**{where}: {_code(spelled)}"
    lines = [head, "", *_resolved_type_lines(slot.type, ctx)]
    if rt.base == "const":
        lines.append("- source: none (a constant)")
    elif slot.source is not None:
        lines.append(f"- source: {_code(slot.source.dotted())} (record field)")
    else:
        lines.append(f"- source: {_code(slot.name.value)} (the record field of its name)")
    if slot.default is not None:
        lines.append(f"- default: {_code(quote(slot.default.value))}")
    if slot.each is not None:
        lines.append(f"- each: {_code(quote(slot.each.value))}")
    return "\n".join(lines)


def _type(name: str, ctx: Context) -> str:
    if is_builtin_type(name):
        return f"**built-in type {_code(name)}**\n\n{BUILTIN_DOCS.get(name, '')}"
    alias = ctx.types.get(name)
    if alias is None:
        return f"unknown type {_code(name)}"
    rt = resolved_type(alias.type, ctx)
    head = f"**type {_code(name)}** = {_code(_type_text(rt.base, rt.is_list, rt.optional))}"
    return "\n".join([head, "", *_resolved_type_lines(alias.type, ctx)])


def _metaprompt(mp: ir.MetaPrompt, ctx: Context) -> str:
    extends = f" extends {_code(mp.extends.value)}" if mp.extends else ""
    lines = [f"**metaprompt {_code(mp.name.value)}**{extends}"]
    try:
        members = prompt_members(mp, ctx)
    except (KeyError, RecursionError):  # an inheritance cycle: only its own members
        members = list(mp.members)
    description = next((m for m in members if isinstance(m, ir.PromptDescription)), None)
    if description is not None:
        lines += ["", description.value.value]
    strategies = next((m for m in members if isinstance(m, ir.PromptStrategies)), None)
    details = []
    if strategies is not None:
        items = ctx.strategies.get(strategies.name.value)
        count = f" ({len(items.items)} strategies)" if items is not None else ""
        details.append(
            f"- guided: one meta-prompt per strategy of {_code(strategies.name.value)}{count}"
        )
    else:
        details.append("- direct: one meta-prompt")
    examples = sum(isinstance(m, ir.PromptExample) for m in members)
    if examples:
        details.append(f"- examples: {examples}")
    has_system = any(isinstance(m, ir.PromptSystem) for m in members)
    details.append(f"- system message: {'yes' if has_system else 'no'}")
    return "\n".join([*lines, "", *details])


def _bootstrap(boot: ir.Bootstrap) -> str:
    count = next((m.value.value for m in boot.members if isinstance(m, ir.PromptCount)), 10)
    take = next((m.value.value for m in boot.members if isinstance(m, ir.PromptTake)), count)
    return (
        f"**bootstrap {_code(boot.name.value)}**\n\n"
        f"asks a model for {count} rewriting strategies and keeps {take}"
    )


def _catalog(analysis: Analysis) -> model.Catalog | None:
    """The resolved catalog; while there are errors, what can be resolved of it."""
    if analysis.result.catalog is not None:
        return analysis.result.catalog
    try:
        return model.resolve(analysis.result.context)
    except Exception:  # noqa: BLE001 - errors make some references unresolvable
        return None


def _number(value: float) -> str:
    return f"{value:g}"


def _plan(plan: ir.Plan, analysis: Analysis) -> str:
    extends = f" extends {_code(plan.extends.value)}" if plan.extends else ""
    default = " (the default plan)" if plan.default else ""
    head = f"**plan {_code(plan.name.value)}**{extends}{default}"
    catalog = _catalog(analysis)
    spec = catalog.plans.get(plan.name.value) if catalog is not None else None
    if spec is None:
        return f"{head}\n\n(settings unavailable until the errors are fixed)"
    temps = ", ".join(_number(v) for v in spec.temperatures)
    if spec.task_names is not None:
        tasks = ", ".join(_code(n) for n in spec.task_names)
    elif spec.task_category is not None:
        tasks = f"category {_code(quote(spec.task_category))}"
    else:
        tasks = "all augmentable training tasks"
    uses = ", ".join(f"{_code(n)} × {k}" for n, k in spec.uses) or "none"
    low, high = spec.length_ratio
    several = len(spec.temperatures) > 1
    lines = [
        head,
        "",
        "Resolved settings (inheritance and defaults applied):",
        "",
        f"- use: {uses}",
        f"- temperature: {temps}" + (f" ({len(spec.temperatures)} values)" if several else ""),
        f"- top_p: {_number(spec.top_p)}",
        f"- max_tokens: {spec.max_tokens}",
        f"- model: {_code(spec.model)}",
        f"- seed: {spec.seed}",
        f"- iterations: {spec.iterations}",
        f"- attempts: {spec.attempts}",
        f"- tasks: {tasks}",
        f"- filter: length_ratio {_number(low)}..{_number(high)}, "
        f"placeholders {spec.placeholder_policy}, dedup {_number(spec.dedup)}, "
        f"reject {', '.join(spec.reject) or 'none'}, language {spec.language}",
    ]
    return "\n".join(lines)


def _task(task: ir.Task) -> str:
    slots = task_slots(task)
    instructions = sum(isinstance(m, ir.Instruction) for m in task.members)
    meta = {}
    for m in task.members:
        if isinstance(m, ir.Category):
            meta["category"] = _code(quote(m.value.value))
        elif isinstance(m, ir.Split):
            meta["split"] = m.value.value
        elif isinstance(m, ir.Augment):
            meta["augment"] = "true" if m.value else "false"
    lines = [f"**task {_code(task.name.value)}**", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    names = ", ".join(_code(s.name.value) for s in slots) or "none"
    lines += [f"- slots: {names}", f"- instructions: {instructions}"]
    return "\n".join(lines)


def _strategies(items: ir.Strategies) -> str:
    lines = [f"**strategies {_code(items.name.value)}** ({len(items.items)})", ""]
    lines += [f"- {_code(s.name.value)}: {s.text.value}" for s in items.items]
    return "\n".join(lines)


def _sampling(sampling: ir.Sampling, analysis: Analysis) -> str:
    catalog = _catalog(analysis)
    spec = catalog.samplings.get(sampling.name.value) if catalog is not None else None
    head = f"**sampling {_code(sampling.name.value)}**"
    if spec is None:
        return head
    per_task = spec.per_task if spec.per_task is not None else "all"
    return "\n".join(
        [
            head,
            "",
            f"- plan: {_code(spec.plan) if spec.plan else 'the default'}",
            f"- instances: {_code(spec.instances) if spec.instances else 'none'}",
            f"- raw_share: {_number(spec.raw_share)}",
            f"- mode: {spec.mode}",
            f"- per_task: {per_task}",
            f"- seed: {spec.seed}",
        ]
    )


def _declaration(found: object, analysis: Analysis) -> str | None:
    ctx = analysis.result.context
    if isinstance(found, ir.MetaPrompt):
        return _metaprompt(found, ctx)
    if isinstance(found, ir.Bootstrap):
        return _bootstrap(found)
    if isinstance(found, ir.Plan):
        return _plan(found, analysis)
    if isinstance(found, ir.Task):
        return _task(found)
    if isinstance(found, ir.Strategies):
        return _strategies(found)
    if isinstance(found, ir.Sampling):
        return _sampling(found, analysis)
    if isinstance(found, ir.TypeAlias):
        return _type(found.name.value, ctx)
    name = getattr(getattr(found, "name", None), "value", None)
    if isinstance(name, str):  # a declaration this module does not know in detail
        return f"**{type(found).__name__.lower()} {_code(name)}**"
    return None


def describe(ref: Ref, analysis: Analysis) -> str | None:
    """Markdown about the name under the cursor."""
    ctx = analysis.result.context
    if ref.kind == "slot":
        task = ref.enclosing(ir.Task)
        parent = ref.path[-2] if len(ref.path) > 1 else None
        slot = parent if isinstance(parent, ir.Slot) else slot_of(task, ref.name)
        if slot is None:
            return f"undeclared slot {_code(ref.name)}"
        return _slot(slot, task, ctx)
    if ref.kind == "import":
        target = import_target(ref.name, file_path(analysis.uri))
        shown = str(target) if target is not None else "not found"
        return f"**import** {_code(quote(ref.name))}\n\n- file: {_code(shown)}"
    if ref.kind == "type":
        return _type(ref.name, ctx)
    found = lookup(ctx, ref.kind, ref.name)
    if found is None:
        return None
    return _declaration(found, analysis)


def hover(
    analysis: Analysis,
    offset: int,
    markup: types.MarkupKind,
    to_range: Callable[[Span], types.Range],
) -> types.Hover | None:
    """The hover at ``offset`` of the analysed document: diagnostics there, then the name."""
    parts = [
        _diagnostic(d)
        for d in analysis.result.diagnostics
        if d.span.path == analysis.key and d.span.start <= offset <= max(d.span.end, d.span.start)
    ]
    ref = ref_at(analysis.module, offset) if analysis.module is not None else None
    if ref is not None:
        text = describe(ref, analysis)
        if text:
            parts.append(text)
    if not parts:
        return None
    value = "\n\n---\n\n".join(parts)
    if markup == types.MarkupKind.PlainText:
        value = value.replace("**", "").replace("`", "")
    rng = to_range(ref.span) if ref is not None else None
    return types.Hover(contents=types.MarkupContent(kind=markup, value=value), range=rng)
