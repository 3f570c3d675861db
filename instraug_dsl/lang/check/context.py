"""Shared by every pass: the symbol tables, the constants of the language, IR helpers."""

from __future__ import annotations

import typing as t
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import ir
from ..diagnostics import Diagnostics

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


def field_path_keys(path: ir.FieldPath) -> tuple[str | int, ...]:
    """A field path as its keys (head first), as the model stores it."""
    keys: list[str | int] = [path.head.value]
    keys.extend(s.key if isinstance(s, ir.KeyStep) else s.index for s in path.steps)
    return tuple(keys)
