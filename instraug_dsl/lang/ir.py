"""The intermediate representation: frozen, slotted dataclasses with spans.

One class per grammar alias (see ``grammar/iat.lark``), grouped under a few
abstract bases so passes can ``match`` exhaustively.  Lowering
(:mod:`instraug_dsl.lang.lower`) builds these nodes mechanically; the check passes
(:mod:`instraug_dsl.lang.check`) read them; nothing mutates them (rewrites use
:func:`dataclasses.replace`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .source import Span

# --------------------------------------------------------------------- atoms


@dataclass(frozen=True, slots=True)
class Name:
    """An identifier as written, e.g. a task, slot or plan name."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class StringLit:
    """A string literal: ``value`` is unescaped; ``triple`` keeps the ``\"\"\"`` form.

    ``raw`` is the literal exactly as written (quotes included) so passes can
    map a character of ``value`` back to a source offset.
    """

    value: str
    triple: bool
    raw: str
    span: Span


@dataclass(frozen=True, slots=True)
class NumberLit:
    """A number; ``text`` is the spelling kept for the formatter."""

    value: float
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class IntLit:
    """An integer literal."""

    value: int
    span: Span


# ---------------------------------------------------------- template pieces


@dataclass(frozen=True, slots=True)
class TextPiece:
    """Literal text of an instruction (escapes already resolved)."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class SlotRef:
    """A ``{name}`` placeholder inside an instruction string."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class BadBrace:
    """A brace problem found while splitting a string (reported by check).

    ``kind`` is ``"stray_open"``, ``"stray_close"`` or ``"bad_name"``;
    ``text`` is what was found.
    """

    kind: str
    text: str
    span: Span


Piece = TextPiece | SlotRef | BadBrace


@dataclass(frozen=True, slots=True)
class Segment:
    """One string of an instruction; ``pinned`` segments never reach the LLM."""

    pinned: bool
    literal: StringLit
    pieces: tuple[Piece, ...]
    span: Span


# -------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class LabelNames:
    """``names "entailment", "neutral"``: the texts a ``label`` value 0, 1, ... selects."""

    values: tuple[StringLit, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ShuffleOption:
    """``shuffle true|false``: whether a ``choices`` slot's options are shuffled per instance."""

    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class TypeExpr:
    """A slot type: ``base`` (a built-in or alias name) plus modifiers.

    ``const_value`` is set for ``const "..."`` (and ``base`` is ``const``);
    ``is_list`` for ``T[]``; ``optional`` for ``T?``; ``sep``/``prefix`` are
    rendering options (list separator, choices prefix).  ``names`` (``label``),
    ``shuffle`` and ``enumeration`` (``choices``, written ``enumerate "(A) "``) and
    ``of`` (``choice of OPTIONS_SLOT``) are the options of the newer types.
    """

    base: Name
    is_list: bool
    optional: bool
    sep: StringLit | None
    prefix: StringLit | None
    const_value: StringLit | None
    span: Span
    names: LabelNames | None = None
    shuffle: ShuffleOption | None = None
    enumeration: StringLit | None = None
    of: Name | None = None


@dataclass(frozen=True, slots=True)
class KeyStep:
    """``.name`` in a field path."""

    key: str
    span: Span


@dataclass(frozen=True, slots=True)
class IndexStep:
    """``[n]`` in a field path (negative counts from the end)."""

    index: int
    span: Span


PathStep = KeyStep | IndexStep


@dataclass(frozen=True, slots=True)
class FieldPath:
    """Where a value lives in an instance record, e.g. ``meta_data.relation``."""

    head: Name
    steps: tuple[PathStep, ...]
    span: Span

    def dotted(self) -> str:
        """Return the path in source syntax (``a.b[0]``)."""
        out = self.head.value
        for step in self.steps:
            if isinstance(step, KeyStep):
                is_plain = step.key.isidentifier()
                out += f".{step.key}" if is_plain else f'["{step.key}"]'
            else:
                out += f"[{step.index}]"
        return out


# --------------------------------------------------------------- top level


@dataclass(frozen=True, slots=True)
class Import:
    """``import "path.iat"``: path relative to the importing file."""

    path: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class TypeAlias:
    """``type region = bbox[] sep "||||"``."""

    name: Name
    type: TypeExpr
    span: Span


@dataclass(frozen=True, slots=True)
class Condition:
    """``[not] path``: true when the value at ``path`` is present and non-empty."""

    negated: bool
    path: FieldPath
    span: Span


# ---- task members


@dataclass(frozen=True, slots=True)
class Category:
    """``category "VQA"``."""

    value: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class Split:
    """``split train|test``: test tasks are held out from augmentation."""

    value: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Source:
    """``source "MSCOCO2014"``: the dataset the task's instances come from."""

    value: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class Notes:
    """``notes "..."``: free text for humans."""

    value: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class Augment:
    """``augment true|false``: false marks a task that must not be paraphrased."""

    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Instances:
    """``instances "task_name" [where cond]``: which instance records belong here.

    By default a task takes the records whose ``task_name`` equals its name.
    """

    task_name: StringLit
    condition: Condition | None
    span: Span


@dataclass(frozen=True, slots=True)
class Target:
    """``target from path``: the record field holding the answer."""

    path: FieldPath
    span: Span


@dataclass(frozen=True, slots=True)
class Slot:
    """``slot name: type [from path] [each "fmt"] [default "text"]``."""

    name: Name
    type: TypeExpr
    source: FieldPath | None
    each: StringLit | None
    default: StringLit | None
    span: Span


@dataclass(frozen=True, slots=True)
class TargetTemplate:
    """``-> "template"`` after an instruction's strings: the target rendered for rows drawn
    with this instruction (or a rewrite of it); never sent to the model."""

    literal: StringLit
    pieces: tuple[Piece, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Instruction:
    """``instruction name = "text" [pin "text"] ... [-> "target"]``: one original instruction."""

    name: Name
    segments: tuple[Segment, ...]
    span: Span
    target: TargetTemplate | None = None


TaskProp = Category | Split | Source | Notes | Augment | Instances | Target
TaskMember = TaskProp | Slot | Instruction


@dataclass(frozen=True, slots=True)
class Task:
    """``task name { ... }``: metadata, slots and original instructions."""

    name: Name
    members: tuple[TaskMember, ...]
    span: Span


# ---- meta-prompts


@dataclass(frozen=True, slots=True)
class PromptSystem:
    """``system "..."``: a system-message Jinja template."""

    template: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class PromptUser:
    """``user "..."``: a user-message Jinja template."""

    template: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class PromptDescription:
    """``description "..."``: documentation for humans."""

    value: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class PromptStrategies:
    """``strategies name``: expand into one guided meta-prompt per strategy."""

    name: Name
    span: Span


@dataclass(frozen=True, slots=True)
class PromptCount:
    """``count n``: how many strategies a bootstrap prompt asks for."""

    value: IntLit
    span: Span


@dataclass(frozen=True, slots=True)
class PromptTake:
    """``take n``: how many bootstrapped strategies to keep."""

    value: IntLit
    span: Span


@dataclass(frozen=True, slots=True)
class PromptExample:
    """``example "instruction" -> "rewrite"``: a worked example for a meta-prompt.

    Its ``{name}`` placeholders are shown to the model as never-real tokens of the
    request's family (``{0}``, ``⟦0⟧``); the validators reject replies that parrot it.
    Several may be given: a request uses the first whose having placeholders matches its own.
    """

    instruction: StringLit
    rewrite: StringLit
    span: Span


PromptMember = (
    PromptSystem
    | PromptUser
    | PromptDescription
    | PromptStrategies
    | PromptCount
    | PromptTake
    | PromptExample
)


@dataclass(frozen=True, slots=True)
class MetaPrompt:
    """``metaprompt name [extends base] { ... }``: direct, or guided when it names strategies.

    With ``extends``, members not given here are taken from ``base``.
    """

    name: Name
    extends: Name | None
    members: tuple[PromptMember, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Strategy:
    """``name: "text"``: one rewriting strategy, written as data."""

    name: Name
    text: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class Strategies:
    """``strategies name { a: "..." ... }``: a list of guiding strategies."""

    name: Name
    items: tuple[Strategy, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """``bootstrap name { ... }``: a prompt asking a model for rewriting strategies."""

    name: Name
    members: tuple[PromptMember, ...]
    span: Span


# ---- plans


@dataclass(frozen=True, slots=True)
class NumberList:
    """``0.5, 0.6``: explicit values."""

    values: tuple[NumberLit, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class NumberRange:
    """``lo..hi step s``: inclusive arithmetic range."""

    low: NumberLit
    high: NumberLit
    step: NumberLit
    span: Span


NumberSet = NumberList | NumberRange


@dataclass(frozen=True, slots=True)
class Use:
    """``use metaprompt [samples n]``."""

    metaprompt: Name
    samples: IntLit | None
    span: Span


@dataclass(frozen=True, slots=True)
class Temperature:
    """``temperature 0.6`` or ``temperature 0.5..1.0 step 0.05``."""

    values: NumberSet
    span: Span


@dataclass(frozen=True, slots=True)
class TopP:
    """``top_p 0.9``."""

    value: NumberLit
    span: Span


@dataclass(frozen=True, slots=True)
class MaxTokens:
    """``max_tokens 512``."""

    value: IntLit
    span: Span


@dataclass(frozen=True, slots=True)
class Model:
    """``model "litellm/model-string"``: the plan's default model."""

    value: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class Seed:
    """``seed n``."""

    value: IntLit
    span: Span


@dataclass(frozen=True, slots=True)
class Iterations:
    """``iterations n``: further rounds rephrasing accepted outputs (MIns+_Iter)."""

    value: IntLit
    span: Span


@dataclass(frozen=True, slots=True)
class Attempts:
    """``attempts n``: how often a request may be (re-)asked."""

    value: IntLit
    span: Span


@dataclass(frozen=True, slots=True)
class SelectAll:
    """``tasks all``: every augmentable training task."""

    span: Span


@dataclass(frozen=True, slots=True)
class SelectNames:
    """``tasks a, b``."""

    names: tuple[Name, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class SelectCategory:
    """``tasks category "VQA"``."""

    category: StringLit
    span: Span


TaskSelector = SelectAll | SelectNames | SelectCategory


@dataclass(frozen=True, slots=True)
class Tasks:
    """``tasks ...``: which tasks a plan augments."""

    selector: TaskSelector
    span: Span


@dataclass(frozen=True, slots=True)
class LengthRatio:
    """``length_ratio lo..hi``: keep when lo < words(new)/words(source) < hi."""

    low: NumberLit
    high: NumberLit
    span: Span


@dataclass(frozen=True, slots=True)
class PlaceholderPolicy:
    """``placeholders exact|multiset``: how output placeholders are compared."""

    value: Name
    span: Span


@dataclass(frozen=True, slots=True)
class Dedup:
    """``dedup 0.7``: ROUGE-L F1 near-duplicate threshold."""

    value: NumberLit
    span: Span


@dataclass(frozen=True, slots=True)
class Reject:
    """``reject answers, echoes, examples`` (or ``reject none``): content checks of rewrites.

    ``answers``: the rewrite answers or asserts instead of instructing; ``echoes``: it repeats
    the prompt's own directions or a re-ask; ``examples``: it parrots the meta-prompt's example.
    """

    names: tuple[Name, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Language:
    """``language en|any``: the language rewrites must be written in (``any``: unchecked)."""

    value: Name
    span: Span


FilterMember = LengthRatio | PlaceholderPolicy | Dedup | Reject | Language


@dataclass(frozen=True, slots=True)
class Filter:
    """``filter { ... }``: output filter settings of a plan."""

    members: tuple[FilterMember, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class JudgeRef:
    """``judge name`` (or ``judge none``): the judge that checks the plan's accepted rewrites."""

    name: Name
    span: Span


PlanMember = (
    Use
    | Temperature
    | TopP
    | MaxTokens
    | Model
    | Seed
    | Iterations
    | Attempts
    | Tasks
    | Filter
    | JudgeRef
)


@dataclass(frozen=True, slots=True)
class Plan:
    """``[default] plan name [extends base] { ... }``: an augmentation plan.

    ``default`` marks the plan used when a command names none (not inherited).
    """

    name: Name
    extends: Name | None
    members: tuple[PlanMember, ...]
    span: Span
    default: bool = False


# ---- judges


@dataclass(frozen=True, slots=True)
class JudgeModel:
    """``model "provider/name"``: the model a judge asks (default: the run's model)."""

    value: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class JudgeThreshold:
    """``threshold -0.5``: keep a rewrite when log P(yes) - log P(no) is at least this."""

    value: NumberLit
    span: Span


JudgeMember = PromptSystem | PromptUser | PromptDescription | JudgeModel | JudgeThreshold


@dataclass(frozen=True, slots=True)
class Judge:
    """``judge name { ... }``: a second model pass asking whether a rewrite asks for the
    same task as its original (templates see ``original`` and ``rewrite``)."""

    name: Name
    members: tuple[JudgeMember, ...]
    span: Span


# ---- sampling


@dataclass(frozen=True, slots=True)
class SamplingPlanRef:
    """``plan name``: the augmentation plan whose output is sampled."""

    name: Name
    span: Span


@dataclass(frozen=True, slots=True)
class SamplingInstances:
    """``instances "file.jsonl"``: instance records, relative to the file."""

    path: StringLit
    span: Span


@dataclass(frozen=True, slots=True)
class RawShare:
    """``raw_share 0.5``: probability of drawing an original instruction."""

    value: NumberLit
    span: Span


@dataclass(frozen=True, slots=True)
class Mode:
    """``mode mixed|uniform``."""

    value: Name
    span: Span


@dataclass(frozen=True, slots=True)
class PerTask:
    """``per_task n``: instance budget per task."""

    value: IntLit
    span: Span


@dataclass(frozen=True, slots=True)
class Carry:
    """``carry image_path, meta.source``: instance fields copied into every output row."""

    paths: tuple[FieldPath, ...]
    span: Span


SamplingMember = SamplingPlanRef | SamplingInstances | RawShare | Mode | PerTask | Seed | Carry


@dataclass(frozen=True, slots=True)
class Sampling:
    """``sampling name { ... }``: how MIns+ is drawn from instances."""

    name: Name
    members: tuple[SamplingMember, ...]
    span: Span


Item = Import | TypeAlias | Task | MetaPrompt | Strategies | Bootstrap | Plan | Sampling | Judge


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``# ...`` comment, kept only so the formatter can put it back."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed `.iat` file."""

    path: str
    items: tuple[Item, ...]
    comments: tuple[Comment, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Program:
    """All modules reachable from the entry files, in load order."""

    modules: tuple[Module, ...]
