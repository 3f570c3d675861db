"""The resolved model: what the compiler, runtime and materializer consume.

Built from a checked :class:`~instraug_dsl.lang.ir.Program` by :func:`resolve`:
type aliases followed, plan inheritance and defaults applied, guided
meta-prompts expanded per strategy.  Only call it on programs without
errors; the checker guarantees the references it follows exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ir
from .check import (
    NO_JUDGE,
    REJECTABLE,
    Context,
    field_path_keys,
    prompt_members,
    range_values,
    resolved_type,
    task_instructions,
    task_props,
    task_slots,
)

#: The defaults of the paper's single run (plan `paper`, see docs/compiler.md).
#: The tool's one default model: ``$IATC_GGUF`` when set, else the bundled Qwen2.5-Coder-0.5B.
DEFAULT_MODEL = "embedded/default"
DEFAULT_TEMPERATURE = 0.6
DEFAULT_TOP_P = 0.9
DEFAULT_MAX_TOKENS = 512
DEFAULT_SEED = 1
DEFAULT_ATTEMPTS = 3
DEFAULT_LENGTH_RATIO = (0.0, 2.0)
DEFAULT_DEDUP = 0.7
#: Content checks on unless a plan says otherwise (``filter { reject ... }``).
DEFAULT_REJECT = REJECTABLE
#: ``filter { language ... }``: ``any`` leaves the language of rewrites unchecked.
DEFAULT_LANGUAGE = "any"
#: A judge keeps a rewrite when log P(yes) - log P(no) of its first answer token is at least
#: its ``threshold``; 0 means "yes is at least as likely as no".
DEFAULT_JUDGE_THRESHOLD = 0.0
DEFAULT_CHOICES_PREFIX = "\n\n[Options]: "
DEFAULT_SEP = "||||"

PathKey = str | int


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """A slot with its type resolved to a built-in base.

    ``source`` is the record path (head first); ``None`` for const slots.  ``names`` are a
    ``label`` slot's names; ``shuffle`` and ``enumeration`` (the ``enumerate`` pattern)
    apply to ``choices`` slots; ``of`` is the ``choices`` slot a ``choice`` slot labels.
    """

    name: str
    base: str
    is_list: bool
    optional: bool
    sep: str
    prefix: str
    const_value: str | None
    source: tuple[PathKey, ...] | None
    each: ir.StringLit | None
    default: str | None
    names: tuple[str, ...] = ()
    shuffle: bool = True
    enumeration: str | None = None
    of: str | None = None


@dataclass(frozen=True, slots=True)
class InstructionSpec:
    """An original instruction split into pinned edges and the paraphrasable body.

    ``target`` is its own target template (``-> "..."``), ``None`` for the task's
    ``target from`` path; rewrites of the instruction keep it.  The compiler never sends it.
    """

    task: str
    name: str
    index: int
    lead: tuple[ir.Piece, ...]
    body: tuple[ir.Piece, ...]
    trail: tuple[ir.Piece, ...]
    target: tuple[ir.Piece, ...] | None = None

    @property
    def pieces(self) -> tuple[ir.Piece, ...]:
        """All pieces in order (lead, body, trail)."""
        return (*self.lead, *self.body, *self.trail)

    @property
    def text(self) -> str:
        """The whole template with ``{slot}`` references."""
        return pieces_text(self.pieces)

    @property
    def target_text(self) -> str | None:
        """The target template with ``{slot}`` references (``None``: the task's target)."""
        return pieces_text(self.target) if self.target is not None else None

    @property
    def body_text(self) -> str:
        """The paraphrasable part with ``{slot}`` references."""
        return pieces_text(self.body)

    @property
    def pure_placeholder(self) -> bool:
        """True when the body has no words, only placeholders and whitespace."""
        return not any(isinstance(p, ir.TextPiece) and p.text.strip() for p in self.body)


def pieces_text(pieces: tuple[ir.Piece, ...]) -> str:
    """Join pieces back into ``{slot}`` template text (braces in text stay literal)."""
    out = []
    for p in pieces:
        if isinstance(p, ir.SlotRef):
            out.append("{" + p.name + "}")
        else:
            out.append(p.text)
    return "".join(out)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task with metadata defaults applied."""

    name: str
    category: str
    split: str
    source: str
    notes: str
    augment: bool
    instances_task: str
    condition: tuple[bool, tuple[PathKey, ...]] | None
    target: tuple[PathKey, ...]
    slots: tuple[SlotSpec, ...]
    instructions: tuple[InstructionSpec, ...]

    def slot(self, name: str) -> SlotSpec:
        """Look a slot up by name."""
        for s in self.slots:
            if s.name == name:
                return s
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class MetaPromptSpec:
    """A direct meta-prompt, or one guided meta-prompt per strategy."""

    name: str
    base: str
    system: str | None
    user: str
    strategy: str | None
    #: Worked examples as (instruction, rewrite) ``{slot}`` text, in declaration order.
    examples: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BootstrapSpec:
    """A prompt asking a model for ``count`` strategies, keeping ``take``."""

    name: str
    system: str | None
    user: str
    count: int
    take: int


@dataclass(frozen=True, slots=True)
class JudgeSpec:
    """A judge: the templates asking whether a rewrite asks for the same task as its
    original, the model asked (``None``: the run's model) and the decision threshold on
    log P(yes) - log P(no)."""

    name: str
    model: str | None
    system: str | None
    user: str
    threshold: float = DEFAULT_JUDGE_THRESHOLD
    description: str = ""


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """An augmentation plan with inheritance and defaults applied."""

    name: str
    uses: tuple[tuple[str, int], ...]
    temperatures: tuple[float, ...]
    top_p: float
    max_tokens: int
    model: str
    seed: int
    iterations: int
    attempts: int
    task_names: tuple[str, ...] | None
    task_category: str | None
    length_ratio: tuple[float, float]
    placeholder_policy: str
    dedup: float
    reject: tuple[str, ...] = DEFAULT_REJECT
    language: str = DEFAULT_LANGUAGE
    #: The judge run on accepted rewrites (``None``: no judge).
    judge: JudgeSpec | None = None


@dataclass(frozen=True, slots=True)
class SamplingSpec:
    """A dataset-construction plan; ``carry`` lists the record paths copied into every row
    (``None``: the materializer's default columns)."""

    name: str
    plan: str | None
    instances: str | None
    raw_share: float
    mode: str
    per_task: int | None
    seed: int
    carry: tuple[tuple[PathKey, ...], ...] | None = None


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything declared, resolved; keyed by name in declaration order."""

    tasks: dict[str, TaskSpec]
    metaprompts: dict[str, tuple[MetaPromptSpec, ...]]
    bootstraps: dict[str, BootstrapSpec]
    plans: dict[str, PlanSpec]
    samplings: dict[str, SamplingSpec]
    source_paths: dict[str, str]
    default_plan: str | None = None
    judges: dict[str, JudgeSpec] = field(default_factory=dict)


def _path(fp: ir.FieldPath) -> tuple[PathKey, ...]:
    return field_path_keys(fp)


def _slot(slot: ir.Slot, ctx: Context) -> SlotSpec:
    # Aliases resolved once per program (innermost alias options lose to outer ones).
    resolved = resolved_type(slot.type, ctx)
    base, is_list, optional = resolved.base, resolved.is_list, resolved.optional
    sep, prefix, const = resolved.sep, resolved.prefix, resolved.const
    if base == "choices":
        default_prefix = DEFAULT_CHOICES_PREFIX
    else:
        default_prefix = ""
    source = (
        None if base == "const" else (_path(slot.source) if slot.source else (slot.name.value,))
    )
    return SlotSpec(
        slot.name.value,
        base,
        is_list,
        optional,
        sep if sep is not None else DEFAULT_SEP,
        prefix if prefix is not None else default_prefix,
        const,
        source,
        slot.each,
        slot.default.value if slot.default else None,
        names=resolved.names or (),
        shuffle=resolved.shuffle if resolved.shuffle is not None else True,
        enumeration=resolved.enumeration,
        of=resolved.of.value if resolved.of is not None else None,
    )


def _instruction(task: str, index: int, instr: ir.Instruction) -> InstructionSpec:
    segs = instr.segments
    free = [i for i, s in enumerate(segs) if not s.pinned]
    first, last = (free[0], free[-1]) if free else (len(segs), len(segs) - 1)
    lead = tuple(p for s in segs[:first] for p in s.pieces)
    body = tuple(p for s in segs[first : last + 1] for p in s.pieces)
    trail = tuple(p for s in segs[last + 1 :] for p in s.pieces)
    target = instr.target.pieces if instr.target is not None else None
    return InstructionSpec(task, instr.name.value, index, lead, body, trail, target)


def _task(task: ir.Task, ctx: Context) -> TaskSpec:
    meta: dict[str, object] = {}
    for p in task_props(task):
        match p:
            case ir.Category(value=v) | ir.Source(value=v) | ir.Notes(value=v):
                meta[type(p).__name__] = v.value
            case ir.Split(value=v):
                meta["Split"] = v.value
            case ir.Augment(value=b):
                meta["Augment"] = b
            case ir.Instances(task_name=n, condition=c):
                meta["Instances"] = n.value
                meta["Condition"] = (c.negated, _path(c.path)) if c else None
            case ir.Target(path=fp):
                meta["Target"] = _path(fp)
    name = task.name.value
    return TaskSpec(
        name=name,
        category=str(meta.get("Category", "")),
        split=str(meta.get("Split", "train")),
        source=str(meta.get("Source", "")),
        notes=str(meta.get("Notes", "")),
        augment=bool(meta.get("Augment", True)),
        instances_task=str(meta.get("Instances", name)),
        condition=meta.get("Condition"),  # type: ignore[arg-type]
        target=meta.get("Target", ("target",)),  # type: ignore[arg-type]
        slots=tuple(_slot(s, ctx) for s in task_slots(task)),
        instructions=tuple(
            _instruction(name, i, ins) for i, ins in enumerate(task_instructions(task))
        ),
    )


def _metaprompts(mp: ir.MetaPrompt, ctx: Context) -> tuple[MetaPromptSpec, ...]:
    members = prompt_members(mp, ctx)
    system = next((m.template.value for m in members if isinstance(m, ir.PromptSystem)), None)
    user = next((m.template.value for m in members if isinstance(m, ir.PromptUser)), "")
    strat = next((m.name.value for m in members if isinstance(m, ir.PromptStrategies)), None)
    examples = tuple(
        (m.instruction.value, m.rewrite.value) for m in members if isinstance(m, ir.PromptExample)
    )
    name = mp.name.value
    if strat is None:
        return (MetaPromptSpec(name, name, system, user, None, examples),)
    return tuple(
        MetaPromptSpec(f"{name}.{s.name.value}", name, system, user, s.text.value, examples)
        for s in ctx.strategies[strat].items
    )


#: What a plan sets, inherited included: (found properties, uses), by plan name.
_PlanState = dict[str, tuple[dict[str, object], dict[str, int]]]


def _unresolved_chain(
    plan: ir.Plan, ctx: Context, memo: _PlanState
) -> tuple[list[ir.Plan], str | None]:
    """The plan and its ancestors not resolved yet (most derived first), and the
    nearest resolved ancestor: a chain of thousands of plans is followed once, not
    once per plan."""
    chain: list[ir.Plan] = []
    seen: set[str] = set()
    p: ir.Plan | None = plan
    while p is not None and p.name.value not in memo and p.name.value not in seen:
        chain.append(p)
        seen.add(p.name.value)
        p = ctx.plans.get(p.extends.value) if p.extends is not None else None
    return chain, (p.name.value if p is not None and p.name.value in memo else None)


def _plan(
    plan: ir.Plan,
    ctx: Context,
    memo: _PlanState | None = None,
    judges: dict[str, JudgeSpec] | None = None,
) -> PlanSpec:
    memo = {} if memo is None else memo
    pending, resolved = _unresolved_chain(plan, ctx, memo)
    found: dict[str, object] = dict(memo[resolved][0]) if resolved else {}
    uses: dict[str, int] = dict(memo[resolved][1]) if resolved else {}
    previous: ir.Plan | None = None
    for p in reversed(pending):  # base first, derived overrides
        if previous is not None:  # what plans extending the previous one start from
            memo[previous.name.value] = (dict(found), dict(uses))
        previous = p
        for m in p.members:
            match m:
                case ir.Use(metaprompt=n, samples=s):
                    uses[n.value] = s.value if s else 1
                case ir.Temperature(values=ir.NumberRange() as rng):
                    found["temperatures"] = tuple(range_values(rng))
                case ir.Temperature(values=ir.NumberList(values=vals)):
                    found["temperatures"] = tuple(v.value for v in vals)
                case ir.TopP(value=v):
                    found["top_p"] = v.value
                case (
                    ir.MaxTokens(value=i)
                    | ir.Seed(value=i)
                    | ir.Iterations(value=i)
                    | ir.Attempts(value=i)
                ):
                    found[type(m).__name__] = i.value
                case ir.Model(value=s):
                    found["model"] = s.value
                case ir.JudgeRef(name=n):
                    found["judge"] = None if n.value == NO_JUDGE else n.value
                case ir.Tasks(selector=ir.SelectAll()):
                    found["task_names"], found["task_category"] = None, None
                case ir.Tasks(selector=ir.SelectNames(names=names)):
                    found["task_names"], found["task_category"] = (
                        tuple(n.value for n in names),
                        None,
                    )
                case ir.Tasks(selector=ir.SelectCategory(category=c)):
                    found["task_names"], found["task_category"] = None, c.value
                case ir.Filter(members=fms):
                    for f in fms:
                        match f:
                            case ir.LengthRatio(low=lo, high=hi):
                                found["length_ratio"] = (lo.value, hi.value)
                            case ir.PlaceholderPolicy(value=policy):
                                found["placeholder_policy"] = policy.value
                            case ir.Dedup(value=threshold):
                                found["dedup"] = threshold.value
                            case ir.Reject(names=names):
                                found["reject"] = tuple(n.value for n in names if n.value != "none")
                            case ir.Language(value=lang):
                                found["language"] = lang.value
    memo[plan.name.value] = (dict(found), dict(uses))
    return PlanSpec(
        name=plan.name.value,
        uses=tuple(uses.items()),
        temperatures=found.get("temperatures", (DEFAULT_TEMPERATURE,)),  # type: ignore[arg-type]
        top_p=float(found.get("top_p", DEFAULT_TOP_P)),  # type: ignore[arg-type]
        max_tokens=int(found.get("MaxTokens", DEFAULT_MAX_TOKENS)),  # type: ignore[call-overload]
        model=str(found.get("model", DEFAULT_MODEL)),
        seed=int(found.get("Seed", DEFAULT_SEED)),  # type: ignore[call-overload]
        iterations=int(found.get("Iterations", 0)),  # type: ignore[call-overload]
        attempts=int(found.get("Attempts", DEFAULT_ATTEMPTS)),  # type: ignore[call-overload]
        task_names=found.get("task_names"),  # type: ignore[arg-type]
        task_category=found.get("task_category"),  # type: ignore[arg-type]
        length_ratio=found.get("length_ratio", DEFAULT_LENGTH_RATIO),  # type: ignore[arg-type]
        placeholder_policy=str(found.get("placeholder_policy", "multiset")),
        dedup=float(found.get("dedup", DEFAULT_DEDUP)),  # type: ignore[arg-type]
        reject=tuple(found.get("reject", DEFAULT_REJECT)),  # type: ignore[arg-type]
        language=str(found.get("language", DEFAULT_LANGUAGE)),
        judge=(judges or {}).get(str(found["judge"])) if found.get("judge") else None,
    )


def _judge(j: ir.Judge) -> JudgeSpec:
    found: dict[str, object] = {}
    for m in j.members:
        match m:
            case ir.PromptSystem(template=s) | ir.PromptUser(template=s):
                found[type(m).__name__] = s.value
            case ir.PromptDescription(value=s):
                found["description"] = s.value
            case ir.JudgeModel(value=s):
                found["model"] = s.value
            case ir.JudgeThreshold(value=v):
                found["threshold"] = v.value
    return JudgeSpec(
        name=j.name.value,
        model=found.get("model"),  # type: ignore[arg-type]
        system=found.get("PromptSystem"),  # type: ignore[arg-type]
        user=str(found.get("PromptUser", "")),
        threshold=float(found.get("threshold", DEFAULT_JUDGE_THRESHOLD)),  # type: ignore[arg-type]
        description=str(found.get("description", "")),
    )


def _sampling(s: ir.Sampling) -> SamplingSpec:
    found: dict[str, object] = {}
    for m in s.members:
        match m:
            case ir.SamplingPlanRef(name=n):
                found["plan"] = n.value
            case ir.SamplingInstances(path=p):
                found["instances"] = p.value
            case ir.RawShare(value=v):
                found["raw_share"] = v.value
            case ir.Mode(value=v):
                found["mode"] = v.value
            case ir.PerTask(value=i):
                found["per_task"] = i.value
            case ir.Seed(value=i):
                found["seed"] = i.value
            case ir.Carry(paths=paths):
                found["carry"] = tuple(_path(p) for p in paths)
    return SamplingSpec(
        s.name.value,
        found.get("plan"),  # type: ignore[arg-type]
        found.get("instances"),  # type: ignore[arg-type]
        float(found.get("raw_share", 0.5)),  # type: ignore[arg-type]
        str(found.get("mode", "mixed")),
        found.get("per_task"),  # type: ignore[arg-type]
        int(found.get("seed", 0)),  # type: ignore[call-overload]
        found.get("carry"),  # type: ignore[arg-type]
    )


def resolve(ctx: Context) -> Catalog:
    """Build the resolved catalog from a checked context."""
    boots = {}
    for name, b in ctx.bootstraps.items():
        system = next((m.template.value for m in b.members if isinstance(m, ir.PromptSystem)), None)
        user = next((m.template.value for m in b.members if isinstance(m, ir.PromptUser)), "")
        count = next((m.value.value for m in b.members if isinstance(m, ir.PromptCount)), 10)
        take = next((m.value.value for m in b.members if isinstance(m, ir.PromptTake)), count)
        boots[name] = BootstrapSpec(name, system, user, count, take)
    plan_memo: _PlanState = {}
    judges = {n: _judge(j) for n, j in ctx.judges.items()}
    return Catalog(
        tasks={n: _task(t, ctx) for n, t in ctx.tasks.items()},
        metaprompts={n: _metaprompts(m, ctx) for n, m in ctx.metaprompts.items()},
        bootstraps=boots,
        plans={n: _plan(p, ctx, plan_memo, judges) for n, p in ctx.plans.items()},
        samplings={n: _sampling(s) for n, s in ctx.samplings.items()},
        source_paths={n: t.span.path for n, t in ctx.tasks.items()},
        default_plan=next((n for n, p in ctx.plans.items() if p.default), None),
        judges=judges,
    )
