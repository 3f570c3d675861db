"""Check passes: name resolution, types, constraints; diagnostics only.

Each pass is a plain function ``(program, context) -> None`` that appends to
``context.diagnostics``; :data:`PASSES` lists them in order.  Passes never
raise for user mistakes and never mutate the IR.  Run them all with
:func:`check_program`.
"""

from __future__ import annotations

import typing as t
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from . import ir
from .diagnostics import Diagnostics, did_you_mean
from .enumeration import counter_position
from .source import Span
from .strings import sub_span

if t.TYPE_CHECKING:
    from .templating import TrialBudget

#: Built-in slot types: name -> (may be a list, takes sep, takes prefix).
BUILTIN_TYPES: dict[str, tuple[bool, bool, bool]] = {
    "text": (True, True, False),
    "bbox": (True, True, False),
    "choices": (False, True, True),
    "const": (False, False, False),
    "label": (True, True, False),
    "choice": (True, True, False),
}
#: The type options only some built-in types take: option keyword -> the type taking it.
OPTION_OWNERS = {"names": "label", "shuffle": "choices", "enumerate": "choices", "of": "choice"}
#: Options a built-in type cannot do without (E027).
REQUIRED_OPTIONS = {"label": "names", "choice": "of"}
SPLITS = ("train", "test")
PLACEHOLDER_POLICIES = ("multiset", "exact")
#: ``filter { reject ... }`` names (``none`` alone turns them all off) and ``language`` values.
REJECTABLE = ("answers", "echoes", "examples")
LANGUAGES = ("en", "any")
SAMPLING_MODES = ("mixed", "uniform")
#: Variables a meta-prompt template may use, by kind.
METAPROMPT_VARS = frozenset(
    {
        "instruction",
        "strategy",
        "n",
        "task",
        "category",
        "tokens",
        "example_instruction",
        "example_rewrite",
    }
)
BOOTSTRAP_VARS = frozenset({"count"})
#: Variables a judge template may use; it must show the model ``original`` and ``rewrite``.
JUDGE_VARS = frozenset({"original", "rewrite", "task", "category"})
JUDGE_REQUIRED = ("original", "rewrite")
#: ``judge none`` in a plan turns an inherited judge off, so no judge may be called that.
NO_JUDGE = "none"
#: Bounds of a judge's ``threshold`` (a difference of log-probabilities).
THRESHOLD_BOUNDS = (-50.0, 50.0)
MAX_RANGE_VALUES = 1000

Decl = (
    ir.TypeAlias
    | ir.Task
    | ir.MetaPrompt
    | ir.Strategies
    | ir.Bootstrap
    | ir.Plan
    | ir.Sampling
    | ir.Judge
)


@dataclass
class Context:
    """What passes share: the diagnostics sink and the symbol tables."""

    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    types: dict[str, ir.TypeAlias] = field(default_factory=dict)
    tasks: dict[str, ir.Task] = field(default_factory=dict)
    metaprompts: dict[str, ir.MetaPrompt] = field(default_factory=dict)
    strategies: dict[str, ir.Strategies] = field(default_factory=dict)
    bootstraps: dict[str, ir.Bootstrap] = field(default_factory=dict)
    plans: dict[str, ir.Plan] = field(default_factory=dict)
    samplings: dict[str, ir.Sampling] = field(default_factory=dict)
    judges: dict[str, ir.Judge] = field(default_factory=dict)
    #: Facts derived from the tables once per program (inheritance), by name.
    derived: dict[str, t.Any] = field(default_factory=dict, repr=False)


def _items(program: ir.Program) -> Iterator[ir.Item]:
    for module in program.modules:
        yield from module.items


D = t.TypeVar("D", ir.Task, ir.Plan, ir.MetaPrompt, ir.Judge)


def all_of(program: ir.Program, kind: type[D]) -> list[D]:
    """Every declaration of one kind, duplicates included, so each body is checked."""
    return [item for item in _items(program) if isinstance(item, kind)]


def task_props(task: ir.Task) -> Iterator[ir.TaskProp]:
    """The metadata members of a task (not slots or instructions)."""
    for m in task.members:
        if not isinstance(m, ir.Slot | ir.Instruction):
            yield m


def task_slots(task: ir.Task) -> list[ir.Slot]:
    """The slots of a task in source order."""
    return [m for m in task.members if isinstance(m, ir.Slot)]


def task_instructions(task: ir.Task) -> list[ir.Instruction]:
    """The instructions of a task in source order."""
    return [m for m in task.members if isinstance(m, ir.Instruction)]


def task_split(task: ir.Task) -> str:
    """``train`` unless the task says ``split test``."""
    for p in task_props(task):
        if isinstance(p, ir.Split):
            return p.value.value
    return "train"


def task_augmentable(task: ir.Task) -> bool:
    """False when the task says ``augment false``."""
    return all(p.value for p in task_props(task) if isinstance(p, ir.Augment))


def _member_key(member: object) -> str:
    return type(member).__name__


# ----------------------------------------------------------------- passes


def collect_declarations(program: ir.Program, ctx: Context) -> None:
    """Build the symbol tables; report duplicate declarations (E010)."""
    tables: dict[type, tuple[str, dict[str, t.Any]]] = {
        ir.TypeAlias: ("type", ctx.types),
        ir.Task: ("task", ctx.tasks),
        ir.MetaPrompt: ("meta-prompt", ctx.metaprompts),
        ir.Strategies: ("strategy list", ctx.strategies),
        ir.Bootstrap: ("bootstrap prompt", ctx.bootstraps),
        ir.Plan: ("plan", ctx.plans),
        ir.Sampling: ("sampling plan", ctx.samplings),
        ir.Judge: ("judge", ctx.judges),
    }
    for item in _items(program):
        if isinstance(item, ir.Import):
            continue
        kind, table = tables[type(item)]
        name = item.name.value
        if name in BUILTIN_TYPES and isinstance(item, ir.TypeAlias):
            ctx.diagnostics.add(
                "E010", f"type `{name}` is built in and cannot be redeclared", item.name.span
            )
            continue
        if name == NO_JUDGE and isinstance(item, ir.Judge):
            ctx.diagnostics.add(
                "E010",
                f"`{NO_JUDGE}` is reserved and cannot name a judge",
                item.name.span,
                hint=f"`judge {NO_JUDGE}` in a plan turns the judge off; choose another name",
            )
            continue
        if name in table:
            first = table[name].name.span
            ctx.diagnostics.add(
                "E010",
                f"{kind} `{name}` is declared twice",
                item.name.span,
                hint=f"first declared at {first.path}:{first.line}:{first.col}",
            )
            continue
        table[name] = item
    # Meta-prompts and bootstraps share the `use` namespace.
    for name, boot in ctx.bootstraps.items():
        if name in ctx.metaprompts:
            ctx.diagnostics.add(
                "E010", f"`{name}` is both a meta-prompt and a bootstrap prompt", boot.name.span
            )


def check_duplicate_members(program: ir.Program, ctx: Context) -> None:
    """Duplicate slots (E011), instruction names (E012) and properties (E014)."""
    for item in _items(program):
        members: tuple[object, ...]
        if isinstance(item, ir.Task):
            seen_slots: dict[str, ir.Slot] = {}
            seen_instr: dict[str, ir.Instruction] = {}
            for m in item.members:
                if isinstance(m, ir.Slot):
                    if m.name.value in seen_slots:
                        ctx.diagnostics.add(
                            "E011",
                            f"slot `{m.name.value}` is declared twice in task `{item.name.value}`",
                            m.name.span,
                        )
                    seen_slots.setdefault(m.name.value, m)
                elif isinstance(m, ir.Instruction):
                    if m.name.value in seen_instr:
                        ctx.diagnostics.add(
                            "E012",
                            f"instruction `{m.name.value}` is declared twice"
                            f" in task `{item.name.value}`",
                            m.name.span,
                        )
                    seen_instr.setdefault(m.name.value, m)
            members = tuple(task_props(item))
        elif isinstance(item, ir.MetaPrompt | ir.Bootstrap | ir.Sampling | ir.Judge):
            # A meta-prompt may show several examples.
            members = tuple(m for m in item.members if not isinstance(m, ir.PromptExample))
            for carry in (m for m in item.members if isinstance(m, ir.Carry)):
                carried: set[tuple[str | int, ...]] = set()
                for path in carry.paths:
                    keys = field_path_keys(path)
                    if keys in carried:
                        ctx.diagnostics.add(
                            "E014", f"`{path.dotted()}` is carried twice", path.span
                        )
                    carried.add(keys)
        elif isinstance(item, ir.Plan):
            members = tuple(m for m in item.members if not isinstance(m, ir.Use))
            for pm in item.members:
                if isinstance(pm, ir.Filter):
                    _report_repeats(pm.members, ctx)
            uses = Counter(u.metaprompt.value for u in item.members if isinstance(u, ir.Use))
            for u in item.members:
                if isinstance(u, ir.Use) and uses[u.metaprompt.value] > 1:
                    ctx.diagnostics.add(
                        "E014",
                        f"meta-prompt `{u.metaprompt.value}` is used twice"
                        f" in plan `{item.name.value}`",
                        u.metaprompt.span,
                    )
                    uses[u.metaprompt.value] = 0
        elif isinstance(item, ir.Strategies):
            names: set[str] = set()
            for s in item.items:
                if s.name.value in names:
                    ctx.diagnostics.add(
                        "E014",
                        f"strategy `{s.name.value}` is listed twice in `{item.name.value}`",
                        s.name.span,
                    )
                names.add(s.name.value)
            continue
        else:
            continue
        _report_repeats(members, ctx)


_PROPERTY_WORDS = {
    "PromptSystem": "system",
    "PromptUser": "user",
    "PromptDescription": "description",
    "PromptStrategies": "strategies",
    "PromptCount": "count",
    "PromptTake": "take",
    "TopP": "top_p",
    "MaxTokens": "max_tokens",
    "SamplingPlanRef": "plan",
    "SamplingInstances": "instances",
    "RawShare": "raw_share",
    "PerTask": "per_task",
    "LengthRatio": "length_ratio",
    "PlaceholderPolicy": "placeholders",
    "Reject": "reject",
    "Language": "language",
    "JudgeRef": "judge",
    "JudgeModel": "model",
    "JudgeThreshold": "threshold",
}


def _report_repeats(members: t.Iterable[object], ctx: Context) -> None:
    seen: set[str] = set()
    for m in members:
        key = _member_key(m)
        if key in seen:
            word = _PROPERTY_WORDS.get(key, key.lower())
            span = t.cast(t.Any, m).span
            ctx.diagnostics.add(
                "E014", f"`{word}` is given twice in this block", span, hint="remove one of them"
            )
        seen.add(key)


@dataclass(frozen=True, slots=True)
class ResolvedType:
    """A type with its aliases followed: the built-in base, flags and options.

    Options of inner aliases lose to outer ones.  For an alias cycle (E026)
    ``base`` is the alias name where the cycle closes.
    """

    base: str
    is_list: bool = False
    optional: bool = False
    sep: str | None = None
    prefix: str | None = None
    const: str | None = None
    names: tuple[str, ...] | None = None
    shuffle: bool | None = None
    enumeration: str | None = None
    of: ir.Name | None = None

    def under(self, texpr: ir.TypeExpr) -> ResolvedType:
        """This (inner) type as seen through ``texpr``, which refers to it."""
        return ResolvedType(
            self.base,
            texpr.is_list or self.is_list,
            texpr.optional or self.optional,
            texpr.sep.value if texpr.sep else self.sep,
            texpr.prefix.value if texpr.prefix else self.prefix,
            texpr.const_value.value if texpr.const_value else self.const,
            tuple(n.value for n in texpr.names.values) if texpr.names else self.names,
            texpr.shuffle.value if texpr.shuffle else self.shuffle,
            texpr.enumeration.value if texpr.enumeration else self.enumeration,
            texpr.of or self.of,
        )


def _resolved_aliases(ctx: Context) -> dict[str, ResolvedType]:
    """Every alias resolved once: a chain of thousands of aliases is followed once."""
    memo: dict[str, ResolvedType] | None = ctx.derived.get("aliases")
    if memo is not None:
        return memo
    memo = {}
    for name in ctx.types:
        path: list[str] = []
        on_path: set[str] = set()
        cur = name
        while cur in ctx.types and cur not in memo and cur not in on_path:
            path.append(cur)
            on_path.add(cur)
            cur = ctx.types[cur].type.base.value
        tail = memo[cur] if cur in memo else ResolvedType(cur)
        for alias in reversed(path):
            tail = memo[alias] = tail.under(ctx.types[alias].type)
    ctx.derived["aliases"] = memo
    return memo


def resolved_type(texpr: ir.TypeExpr, ctx: Context) -> ResolvedType:
    """The type ``texpr`` names, aliases followed, with its options."""
    base = texpr.base.value
    if base in BUILTIN_TYPES or base not in ctx.types:
        return ResolvedType(base).under(texpr)
    return _resolved_aliases(ctx)[base].under(texpr)


def resolve_type(texpr: ir.TypeExpr, ctx: Context, _depth: int = 0) -> tuple[str, bool, bool]:
    """Return (builtin base, is_list, optional) after following aliases."""
    resolved = resolved_type(texpr, ctx)
    return resolved.base, resolved.is_list, resolved.optional


def check_types(program: ir.Program, ctx: Context) -> None:
    """Unknown types (E022), bad options (E023), alias cycles (E026), sources (E024, E025)."""
    # Each alias is followed once (a chain of thousands must not be walked
    # thousands of times): an alias refers to itself when its chain of
    # aliases runs into a cycle.
    loops: dict[str, bool] = {}
    for name in ctx.types:
        path: list[str] = []
        on_path: set[str] = set()
        base = name
        while base in ctx.types and base not in loops and base not in on_path:
            path.append(base)
            on_path.add(base)
            base = ctx.types[base].type.base.value
        looped = base in on_path or loops.get(base, False)
        for step in path:
            loops[step] = looped
    for alias in ctx.types.values():
        if loops[alias.name.value]:
            ctx.diagnostics.add(
                "E026",
                f"type alias `{alias.name.value}` refers to itself",
                alias.type.base.span,
            )
    exprs: list[ir.TypeExpr] = [a.type for a in ctx.types.values()]
    for task in all_of(program, ir.Task):
        exprs.extend(s.type for s in task_slots(task))
    for texpr in exprs:
        _check_type_expr(texpr, ctx)
    for task in all_of(program, ir.Task):
        slots = {s.name.value: s for s in task_slots(task)}
        for slot in task_slots(task):
            resolved = resolved_type(slot.type, ctx)
            base, is_list = resolved.base, resolved.is_list
            if base == "const" and slot.source is not None:
                ctx.diagnostics.add(
                    "E024",
                    f"const slot `{slot.name.value}` cannot take a value `from` a record",
                    slot.source.span,
                )
            if slot.each is not None and base in ("label", "choice"):
                ctx.diagnostics.add(
                    "E025",
                    f"`each` does not apply to the {base} slot `{slot.name.value}`: its values"
                    f" render as {'their names' if base == 'label' else 'option labels'}",
                    slot.each.span,
                )
            elif slot.each is not None and not (is_list or base == "choices"):
                ctx.diagnostics.add(
                    "E025",
                    f"`each` formats list elements, but slot `{slot.name.value}` is not a list",
                    slot.each.span,
                    hint=f"declare it as `{slot.type.base.value}[]`",
                )
            _check_required_options(slot, resolved, ctx)
            if base == "choice" and resolved.of is not None:
                _check_choice_of(task, slot, resolved.of, slots, ctx)


def _check_required_options(slot: ir.Slot, resolved: ResolvedType, ctx: Context) -> None:
    """A ``label`` slot needs ``names``, a ``choice`` slot ``of`` (E027)."""
    needed = REQUIRED_OPTIONS.get(resolved.base)
    if needed is None or getattr(resolved, needed) is not None:
        return
    hint = {
        "names": 'write e.g. `label names "no", "yes"` (the names of 0, 1, ...)',
        "of": "write e.g. `choice of options`, naming an enumerated `choices` slot of the task",
    }[needed]
    ctx.diagnostics.add(
        "E027",
        f"slot `{slot.name.value}` of type `{resolved.base}` needs `{needed}`",
        slot.type.span,
        hint=hint,
    )


def _check_choice_of(
    task: ir.Task, slot: ir.Slot, of: ir.Name, slots: dict[str, ir.Slot], ctx: Context
) -> None:
    """``choice of NAME``: NAME is an enumerated ``choices`` slot of the task (E028)."""
    # An `of` given through a type alias is reported at the slot's type.
    span = (
        of.span
        if of.span.path == slot.type.span.path
        and (slot.type.span.start <= of.span.start < slot.type.span.end)
        else slot.type.span
    )
    target = slots.get(of.value)
    if target is None:
        ctx.diagnostics.add(
            "E028",
            f"`{of.value}` is not a slot of task `{task.name.value}`",
            span,
            hint=did_you_mean(of.value, [n for n in slots if n != slot.name.value])
            or "`of` names the task's `choices` slot whose options the value is one of",
        )
        return
    options = resolved_type(target.type, ctx)
    if options.base != "choices":
        ctx.diagnostics.add(
            "E028",
            f"`choice of {of.value}`: slot `{of.value}` is `{options.base}`, not `choices`",
            span,
            hint="a choice slot renders the label of an option of a `choices` slot",
        )
    elif options.enumeration is None:
        ctx.diagnostics.add(
            "E028",
            f"`choice of {of.value}`: the options of `{of.value}` are not enumerated,"
            " so they have no labels",
            span,
            hint=f'number them: `slot {of.value}: choices enumerate "(A) "`',
        )


def _check_type_expr(texpr: ir.TypeExpr, ctx: Context) -> None:
    name = texpr.base.value
    if name not in BUILTIN_TYPES and name not in ctx.types:
        ctx.diagnostics.add(
            "E022",
            f"unknown slot type `{name}`",
            texpr.base.span,
            hint=did_you_mean(name, [*BUILTIN_TYPES, *ctx.types])
            or "built-in types are text, bbox, choices, const, label and choice",
        )
        return
    _check_new_options(texpr, ctx)
    if name not in BUILTIN_TYPES:
        return
    can_list, takes_sep, takes_prefix = BUILTIN_TYPES[name]
    if texpr.is_list and not can_list:
        ctx.diagnostics.add(
            "E023",
            f"`{name}` cannot be a list",
            texpr.base.span,
            hint="choices is already a list of options" if name == "choices" else None,
        )
    if texpr.sep is not None and not (takes_sep and (texpr.is_list or name == "choices")):
        ctx.diagnostics.add(
            "E023", f"`sep` applies to list and choices types, not `{name}`", texpr.sep.span
        )
    if texpr.prefix is not None and not takes_prefix:
        ctx.diagnostics.add("E023", f"`prefix` applies to choices, not `{name}`", texpr.prefix.span)


def _check_new_options(texpr: ir.TypeExpr, ctx: Context) -> None:
    """``names``, ``shuffle``, ``enumerate`` and ``of`` only on the type taking them (E023),
    and an ``enumerate`` pattern with a counter (E023).  A use of an alias is checked
    against the built-in type the alias resolves to."""
    base = resolved_type(texpr, ctx).base
    if base not in BUILTIN_TYPES:
        return  # unknown (E022) or an alias cycle (E026)
    given = {
        "names": texpr.names,
        "shuffle": texpr.shuffle,
        "enumerate": texpr.enumeration,
        "of": texpr.of,
    }
    for option, node in given.items():
        owner = OPTION_OWNERS[option]
        if node is not None and base != owner:
            ctx.diagnostics.add("E023", f"`{option}` applies to {owner}, not `{base}`", node.span)
    pattern = texpr.enumeration
    if pattern is not None and base == "choices" and counter_position(pattern.value) is None:
        ctx.diagnostics.add(
            "E023",
            f"the enumerate pattern {pattern.raw} has no counter",
            pattern.span,
            hint='put one of A, a, 1 or i in it, standing alone: "(A) ", "a. ", "1) ", "i. "',
        )


def _segments_text(instr: ir.Instruction) -> str:
    return "".join(seg.literal.value for seg in instr.segments)


def check_instructions(program: ir.Program, ctx: Context) -> None:
    """Placeholders (E020, W021, E031, E032), emptiness (E030, E035), pins (E033), W034."""
    for task in all_of(program, ir.Task):
        slots = {s.name.value: s for s in task_slots(task)}
        used: set[str] = set()
        instructions = task_instructions(task)
        if not instructions:
            ctx.diagnostics.add(
                "E035", f"task `{task.name.value}` has no instructions", task.name.span
            )
        texts: dict[str, ir.Instruction] = {}
        for instr in instructions:
            text = _segments_text(instr)
            if not text.strip():
                ctx.diagnostics.add(
                    "E030", f"instruction `{instr.name.value}` is empty", instr.span
                )
            elif text in texts and task_augmentable(task):
                # Repeats only matter where paraphrases are judged against originals.
                ctx.diagnostics.add(
                    "W034",
                    f"instruction `{instr.name.value}` repeats instruction"
                    f" `{texts[text].name.value}` word for word",
                    instr.name.span,
                )
            texts.setdefault(text, instr)
            for seg in instr.segments:
                _check_pieces(task, instr, seg.pieces, slots, used, ctx)
            if instr.target is not None:
                _check_pieces(task, instr, instr.target.pieces, slots, used, ctx)
            pins = [seg.pinned for seg in instr.segments]
            first_free = pins.index(False) if False in pins else len(pins)
            last_free = len(pins) - 1 - pins[::-1].index(False) if False in pins else -1
            for i, seg in enumerate(instr.segments):
                if seg.pinned and first_free < i < last_free:
                    ctx.diagnostics.add(
                        "E033",
                        "a pinned segment may only start or end an instruction",
                        seg.span,
                        hint="pinned text is held out of the paraphrase"
                        " and re-attached at the edge it came from",
                    )
        # The options a used `choice` slot labels are used through it.
        for name in list(used):
            slot = slots.get(name)
            of = resolved_type(slot.type, ctx).of if slot is not None else None
            if of is not None:
                used.add(of.value)
        for name, slot in slots.items():
            if name not in used:
                ctx.diagnostics.add(
                    "W021",
                    f"slot `{name}` is not used by any instruction of task `{task.name.value}`",
                    slot.name.span,
                )
        _check_target_leaks(task, instructions, slots, ctx)


def _check_pieces(
    task: ir.Task,
    instr: ir.Instruction,
    pieces: t.Iterable[ir.Piece],
    slots: dict[str, ir.Slot],
    used: set[str],
    ctx: Context,
) -> None:
    """Placeholders of one string of an instruction (or of its target): E020, E031, E032."""
    for piece in pieces:
        if isinstance(piece, ir.SlotRef):
            used.add(piece.name)
            if piece.name not in slots:
                # No did-you-mean past what is shown: it is quadratic.
                crowded = ctx.diagnostics.crowded("E020", piece.span.path)
                ctx.diagnostics.add(
                    "E020",
                    f"undeclared slot `{piece.name}` in task `{task.name.value}`",
                    piece.span,
                    hint=(None if crowded else did_you_mean(piece.name, slots))
                    or f"declare it: `slot {piece.name}: text`",
                )
        elif isinstance(piece, ir.BadBrace):
            if piece.kind == "bad_name":
                ctx.diagnostics.add(
                    "E032",
                    f"`{piece.text}` is not a placeholder: names are letters, digits and `_`",
                    piece.span,
                    hint=r"write literal braces as \{ and \}",
                )
            else:
                ctx.diagnostics.add(
                    "E031",
                    f"stray `{piece.text}` in instruction `{instr.name.value}`",
                    piece.span,
                    hint=r"write a literal brace as \{ or \}",
                )


def field_path_keys(path: ir.FieldPath) -> tuple[str | int, ...]:
    """A field path as its keys (head first), as the model stores it."""
    keys: list[str | int] = [path.head.value]
    keys.extend(s.key if isinstance(s, ir.KeyStep) else s.index for s in path.steps)
    return tuple(keys)


def _overlap(a: tuple[str | int, ...], b: tuple[str | int, ...]) -> bool:
    """True when one path reads into the other (``answers`` and ``answers[0]``)."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _spelled(path: tuple[str | int, ...]) -> str:
    """A path as written in ``.iat`` (``meta.answers[0]``), for messages."""
    out = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)
    return out[1:]


def _check_target_leaks(
    task: ir.Task, instructions: list[ir.Instruction], slots: dict[str, ir.Slot], ctx: Context
) -> None:
    """W036: a slot shown in a prompt reads the task's target field, or the field of a slot
    that only targets use (or a path into or around one): the model would see the answer."""
    target: tuple[str | int, ...] = ("target",)
    for p in task_props(task):
        if isinstance(p, ir.Target):
            target = field_path_keys(p.path)

    def refs(pieces: t.Iterable[ir.Piece]) -> Iterator[ir.SlotRef]:
        return (p for p in pieces if isinstance(p, ir.SlotRef) and p.name in slots)

    def source(name: str) -> tuple[str | int, ...] | None:
        slot = slots[name]
        if resolved_type(slot.type, ctx).base == "const":
            return None
        return field_path_keys(slot.source) if slot.source is not None else (name,)

    in_prompts = {r.name for i in instructions for s in i.segments for r in refs(s.pieces)}
    in_targets = {r.name for i in instructions if i.target for r in refs(i.target.pieces)}
    leaks: list[tuple[tuple[str | int, ...], str]] = [(target, "the task's target field")]
    for name in sorted(in_targets - in_prompts):
        path = source(name)
        if path is not None:
            leaks.append((path, f"the field of slot `{name}`, which only targets show"))
    for instr in instructions:
        for seg in instr.segments:
            for ref in refs(seg.pieces):
                path = source(ref.name)
                if path is None:
                    continue
                found = next(((p, why) for p, why in leaks if _overlap(path, p)), None)
                if found is None:
                    continue
                leak, why = found
                if leak == path:
                    reads = f"`{_spelled(path)}`, {why}"
                elif len(path) < len(leak):
                    reads = f"`{_spelled(path)}`, which holds `{_spelled(leak)}`, {why}"
                else:
                    reads = f"`{_spelled(path)}`, part of `{_spelled(leak)}`, {why}"
                ctx.diagnostics.add(
                    "W036",
                    f"slot `{ref.name}` may show the answer in the prompt of instruction"
                    f" `{instr.name.value}`: it reads {reads}",
                    ref.span,
                    hint="a prompt that holds its answer teaches copying it;"
                    " show another field in the prompt",
                )


def check_enums(program: ir.Program, ctx: Context) -> None:
    """Values of enumerated properties (E042)."""

    def check(name: ir.Name, allowed: tuple[str, ...], what: str) -> None:
        if name.value not in allowed:
            ctx.diagnostics.add(
                "E042",
                f"{what} must be {' or '.join(f'`{a}`' for a in allowed)}, not `{name.value}`",
                name.span,
                hint=did_you_mean(name.value, allowed),
            )

    for item in _items(program):
        if isinstance(item, ir.Task):
            for p in task_props(item):
                if isinstance(p, ir.Split):
                    check(p.value, SPLITS, "split")
        elif isinstance(item, ir.Plan):
            for m in item.members:
                if isinstance(m, ir.Filter):
                    for f in m.members:
                        if isinstance(f, ir.PlaceholderPolicy):
                            check(f.value, PLACEHOLDER_POLICIES, "placeholders")
                        elif isinstance(f, ir.Language):
                            check(f.value, LANGUAGES, "language")
                        elif isinstance(f, ir.Reject):
                            _check_reject(f, ctx)
        elif isinstance(item, ir.Sampling):
            for s in item.members:
                if isinstance(s, ir.Mode):
                    check(s.value, SAMPLING_MODES, "mode")


def _check_reject(f: ir.Reject, ctx: Context) -> None:
    """``reject`` names: known (E042), each once (E014), ``none`` only alone (E042)."""
    seen: set[str] = set()
    for n in f.names:
        if n.value == "none" and len(f.names) > 1:
            ctx.diagnostics.add(
                "E042",
                "`none` turns every check off and cannot be listed with others",
                n.span,
                hint="write `reject none` alone, or list only the checks to keep",
            )
        elif n.value != "none" and n.value not in REJECTABLE:
            ctx.diagnostics.add(
                "E042",
                f"reject takes {', '.join(f'`{a}`' for a in REJECTABLE)} or `none`,"
                f" not `{n.value}`",
                n.span,
                hint=did_you_mean(n.value, (*REJECTABLE, "none")),
            )
        elif n.value in seen:
            ctx.diagnostics.add("E014", f"`{n.value}` is listed twice", n.span)
        seen.add(n.value)


def _bound(
    ctx: Context,
    lit: ir.NumberLit | ir.IntLit,
    what: str,
    lo: float,
    hi: float,
    lo_open: bool = False,
) -> None:
    v = lit.value
    if v < lo or v > hi or (lo_open and v == lo):
        lo_txt = f"greater than {lo:g}" if lo_open else f"at least {lo:g}"
        hi_txt = f"at most {hi:g}" if hi != float("inf") else ""
        # str() for integers: `:g` converts to float, which overflows on huge literals.
        shown = str(v) if isinstance(lit, ir.IntLit) else f"{v:g}"
        bounds = lo_txt + (" and " + hi_txt if hi_txt else "")
        ctx.diagnostics.add("E040", f"{what} must be {bounds}, not {shown}", lit.span)


def range_values(rng: ir.NumberRange) -> list[float]:
    """Expand ``lo..hi step s`` inclusively, rounding away float drift."""
    lo, hi, step = rng.low.value, rng.high.value, rng.step.value
    if step <= 0 or hi < lo:
        return []
    count = int(round((hi - lo) / step + 1e-9)) + 1
    decimals = max(
        len(x.text.split(".")[1]) if "." in x.text else 0 for x in (rng.low, rng.high, rng.step)
    )
    return [round(lo + i * step, decimals + 2) for i in range(count) if lo + i * step <= hi + 1e-9]


def check_numbers(program: ir.Program, ctx: Context) -> None:
    """Numeric bounds (E040) and ranges (E041)."""
    inf = float("inf")
    for item in _items(program):
        if isinstance(item, ir.Plan):
            for m in item.members:
                if isinstance(m, ir.Use) and m.samples is not None:
                    _bound(ctx, m.samples, "samples", 1, 1000)
                elif isinstance(m, ir.Temperature):
                    if isinstance(m.values, ir.NumberRange):
                        r = m.values
                        if r.step.value <= 0:
                            ctx.diagnostics.add(
                                "E041", "the step of a range must be positive", r.step.span
                            )
                        elif r.high.value < r.low.value:
                            ctx.diagnostics.add(
                                "E041",
                                f"range {r.low.text}..{r.high.text} is empty:"
                                " the low end is above the high end",
                                r.span,
                            )
                        elif (r.high.value - r.low.value) / r.step.value > MAX_RANGE_VALUES:
                            ctx.diagnostics.add(
                                "E041", f"range has more than {MAX_RANGE_VALUES} values", r.span
                            )
                        for lit in (r.low, r.high):
                            _bound(ctx, lit, "temperature", 0, 2)
                    else:
                        for lit in m.values.values:
                            _bound(ctx, lit, "temperature", 0, 2)
                elif isinstance(m, ir.TopP):
                    _bound(ctx, m.value, "top_p", 0, 1, lo_open=True)
                elif isinstance(m, ir.MaxTokens):
                    _bound(ctx, m.value, "max_tokens", 1, 1_000_000)
                elif isinstance(m, ir.Iterations):
                    _bound(ctx, m.value, "iterations", 0, 10)
                elif isinstance(m, ir.Attempts):
                    _bound(ctx, m.value, "attempts", 1, 20)
                elif isinstance(m, ir.Seed):
                    _bound(ctx, m.value, "seed", 0, 2**63 - 1)
                elif isinstance(m, ir.Filter):
                    for f in m.members:
                        if isinstance(f, ir.LengthRatio):
                            _bound(ctx, f.low, "the low length ratio", 0, inf)
                            if f.high.value <= f.low.value:
                                ctx.diagnostics.add(
                                    "E041",
                                    f"length ratio {f.low.text}..{f.high.text} is empty",
                                    f.span,
                                )
                        elif isinstance(f, ir.Dedup):
                            _bound(ctx, f.value, "the dedup threshold", 0, 1)
        elif isinstance(item, ir.Sampling):
            for s in item.members:
                if isinstance(s, ir.RawShare):
                    _bound(ctx, s.value, "raw_share", 0, 1)
                elif isinstance(s, ir.PerTask):
                    _bound(ctx, s.value, "per_task", 1, inf)
                elif isinstance(s, ir.Seed):
                    _bound(ctx, s.value, "seed", 0, 2**63 - 1)
        elif isinstance(item, ir.Judge):
            for jm in item.members:
                if isinstance(jm, ir.JudgeThreshold):
                    _bound(ctx, jm.value, "a judge's threshold", *THRESHOLD_BOUNDS)
        elif isinstance(item, ir.MetaPrompt | ir.Bootstrap):
            for pm in item.members:
                if isinstance(pm, ir.PromptCount | ir.PromptTake):
                    _bound(
                        ctx, pm.value, "count" if isinstance(pm, ir.PromptCount) else "take", 1, 100
                    )


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


def _uses_a_metaprompt(plan: ir.Plan, ctx: Context) -> bool:
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
        if not _uses_a_metaprompt(plan, ctx):
            ctx.diagnostics.add(
                "E053",
                f"plan `{plan.name.value}` uses no meta-prompt",
                plan.name.span,
                hint="add `use NAME` for a declared meta-prompt",
            )


def check_metaprompts(program: ir.Program, ctx: Context) -> None:
    """Jinja syntax (E054), unknown variables (E055), missing instruction hole (E056),
    and what the sandbox refuses or cannot render within its limits (E070-E074); the same
    for the templates of judges, which must show ``original`` and ``rewrite`` (E056)."""
    if not (ctx.metaprompts or ctx.bootstraps or ctx.judges):
        return  # importing jinja2 costs start-up time; only templates need it
    from .templating import TrialBudget

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
    from .templating import analyse_template, trial_render

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
            from .strings import decode

            self._chars = [(c.start, c.end) for c in decode(self.lit.raw)[0]]
        chars = self._chars
        if not chars:
            return self.lit.span
        first = chars[min(start, len(chars) - 1)][0]
        last = chars[min(max(end, start + 1), len(chars)) - 1][1]
        return sub_span(self.lit, first, last)


Pass = Callable[[ir.Program, Context], None]

#: The check passes, in order.  ``collect_declarations`` must stay first.
PASSES: tuple[Pass, ...] = (
    collect_declarations,
    check_duplicate_members,
    check_types,
    check_instructions,
    check_enums,
    check_numbers,
    check_references,
    check_plans,
    check_metaprompts,
)


def check_program(program: ir.Program, diagnostics: Diagnostics | None = None) -> Context:
    """Run every pass; return the context holding symbols and diagnostics."""
    ctx = Context(diagnostics if diagnostics is not None else Diagnostics())
    for check_pass in PASSES:
        check_pass(program, ctx)
    return ctx
