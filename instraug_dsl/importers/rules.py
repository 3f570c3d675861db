"""What the JSONL importer knows: slot rules, categories and overrides.

A :class:`SlotRule` says how one placeholder becomes a ``slot`` declaration
(type, record source, ``each``/``default``/rendering options).  The importer
looks a placeholder up in a task's overrides, then the overrides' global
slots, then :data:`BUILTIN_SLOTS` (MultiInstruct's placeholder names, see
docs/importer.md), and otherwise falls back to a ``text`` slot read
from the record field of the same name, flagged with a ``# check:`` comment.

Overrides are JSON (never Python: an overrides file is data, not code), so
re-running an import with the same overrides reproduces the same files.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import DataError

#: Type aliases the importer may emit, written once to ``_types.iat``.
TYPE_ALIASES: dict[str, str] = {"regions": 'bbox[] sep "||||"'}

_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[\])?\Z")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[-?[0-9]+\])*\Z")
_CONDITION = re.compile(r"(not\s+)?(?P<path>\S+)\Z")


@dataclass(frozen=True, slots=True)
class SlotRule:
    """How a placeholder is declared.

    ``type`` is a built-in (``text``, ``bbox``, ``choices``, ``const``), an
    alias from :data:`TYPE_ALIASES`, optionally with ``[]``.  ``source`` is a
    record field path in ``.iat`` syntax (``None``: the field named like the
    slot).  ``value`` is the text of a ``const``.  ``check`` asks a human to
    look at the slot (emitted as a ``# check:`` comment).  ``pin`` says
    whether a trailing occurrence is pinned (``None``: only ``choices`` are).
    """

    type: str
    source: str | None = None
    sep: str | None = None
    prefix: str | None = None
    value: str | None = None
    each: str | None = None
    default: str | None = None
    check: str | None = None
    pin: bool | None = None

    @property
    def base(self) -> str:
        """The type name without ``[]``."""
        return self.type.removesuffix("[]")


_MI_OPTIONS = "\n\n[Options]:"

#: MultiInstruct's placeholder names and how each renders (table in docs/importer.md).
BUILTIN_SLOTS: dict[str, SlotRule] = {
    "question": SlotRule("text"),
    "text": SlotRule("text"),
    "answer": SlotRule("text"),
    "context": SlotRule("text"),
    # "\n\n[Options]: " + "||||".join(options): the choices defaults.
    "options": SlotRule("choices"),
    "options_list": SlotRule("choices", source="options", prefix=""),
    "options_token": SlotRule("const", value=_MI_OPTIONS),
    "image_token": SlotRule("const", value="image"),
    "region_token": SlotRule("const", value="Regions: "),
    "region": SlotRule("regions"),
    "region_0": SlotRule("bbox", source="region[0]"),
    "region_1": SlotRule("bbox", source="region[1]"),
    "given_region": SlotRule("regions", source="meta_data.object_regions.given_region"),
    "relation": SlotRule("text", source="meta_data.relation"),
    "method": SlotRule("text", source="meta_data.method"),
    "dial_history": SlotRule("text[]", source="meta_data.dialog_hist", sep=" ", each="{q}, {a};"),
    # One mapping formatted once: `each` iterates a mapping's items only when
    # the format names {key} or {value} (instraug_dsl/dataset/eachfmt.py).
    "dial_history_last": SlotRule("text[]", source="meta_data.dialog_hist[-1]", each="{q}, {a};"),
    "region_info": SlotRule(
        "text[]", source="meta_data.object_regions", sep=" ", each="{key} is in {value[0]}."
    ),
}

#: Task-name patterns to categories, first match wins (MultiInstruct's families).
CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    (r"^medic_", "disaster classification"),
    (r"^wikihow_", "temporal ordering"),
    (r"^(image_generation|infilling|im_|image_completion)", "image generation"),
    (r"^visual_dialog", "visual dialogue"),
    (r"^(commonsense_VQA|visual_answer_justification)$", "commonsense reasoning"),
    (
        r"^(ocr|visual_text_extraction|text_(legibility|type|localization)|region_text_match)$",
        "OCR",
    ),
    (r"(^|_)(VQA|vqa)($|_)", "VQA"),
    (
        r"^(object_relationship|visual_(object|subject)_(identification|region))$",
        "visual relationship",
    ),
    (r"^(select_.*region|if_region_overlap|visual_attribute)$", "region understanding"),
    (
        r"^(ITM|image_text_selection|question_image_match|multimodal_factual_checking)$",
        "image-text matching",
    ),
    (r"(_select|_selection|_match|^GC_|^VG_)", "grounded matching"),
    (
        r"^(GC|VG|object_grounding|region_generation|object_description_generate)$|_generate$",
        "grounded generation",
    ),
    (
        r"^(visual_nli|natural_language_visual_reasoning|visual_spatial_reasoning)$",
        "visual reasoning",
    ),
    (r"^(image_caption|image_quality|hateful_content_detection)$", "image understanding"),
)


def category_for(task: str) -> str | None:
    """The category of a task name by :data:`CATEGORY_RULES`, or ``None``."""
    for pattern, category in CATEGORY_RULES:
        if re.search(pattern, task):
            return category
    return None


@dataclass(frozen=True, slots=True)
class TaskOverride:
    """Per-task settings that replace what the importer would infer."""

    category: str | None = None
    source: str | None = None
    notes: str | None = None
    augment: bool | None = None
    instances: str | None = None
    where: str | None = None
    target: str | None = None
    slots: dict[str, SlotRule] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Overrides:
    """An overrides file: global slot rules and per-task overrides."""

    slots: dict[str, SlotRule] = field(default_factory=dict)
    tasks: dict[str, TaskOverride] = field(default_factory=dict)
    path: str = ""

    def rule(self, task: str, name: str) -> SlotRule | None:
        """The most specific rule for placeholder ``name`` of ``task``."""
        own = self.tasks.get(task)
        if own is not None and name in own.slots:
            return own.slots[name]
        return self.slots.get(name, BUILTIN_SLOTS.get(name))


_RULE_KEYS = {"type", "from", "sep", "prefix", "value", "each", "default", "check", "pin"}
_TASK_KEYS = {f.name for f in fields(TaskOverride)}


def _want(where: str, value: object, kind: type) -> t.Any:
    if not isinstance(value, kind):
        raise DataError(f"{where}: expected a {kind.__name__}, got {json.dumps(value)}")
    return value


def _rule(where: str, raw: object) -> SlotRule:
    spec = dict(_want(where, raw, dict))
    unknown = sorted(set(spec) - _RULE_KEYS)
    if unknown:
        raise DataError(
            f"{where}: unknown key `{unknown[0]}` (known: {', '.join(sorted(_RULE_KEYS))})"
        )
    if "type" not in spec:
        raise DataError(f"{where}: a slot rule needs `type`")
    pin = _want(f"{where}.pin", spec.pop("pin"), bool) if "pin" in spec else None
    values = {k: _want(f"{where}.{k}", v, str) for k, v in spec.items()}
    type_ = values["type"]
    if not _TYPE.match(type_):
        raise DataError(
            f"{where}.type: `{type_}` is not a type name (e.g. `text`, `text[]`, `regions`)"
        )
    source = values.get("from")
    if source is not None and not _PATH.match(source):
        raise DataError(
            f"{where}.from: `{source}` is not a field path (e.g. `meta_data.method`, `region[0]`)"
        )
    if (type_ == "const") != ("value" in values):
        raise DataError(f"{where}: `value` goes with type `const` and only with it")
    return SlotRule(
        type_,
        source,
        values.get("sep"),
        values.get("prefix"),
        values.get("value"),
        values.get("each"),
        values.get("default"),
        values.get("check"),
        pin,
    )


def _rules(where: str, raw: object) -> dict[str, SlotRule]:
    spec = _want(where, raw, dict)
    return {name: _rule(f"{where}.{name}", r) for name, r in spec.items()}


def _task(where: str, raw: object) -> TaskOverride:
    spec = _want(where, raw, dict)
    unknown = sorted(set(spec) - _TASK_KEYS)
    if unknown:
        raise DataError(
            f"{where}: unknown key `{unknown[0]}` (known: {', '.join(sorted(_TASK_KEYS))})"
        )
    values: dict[str, t.Any] = {}
    for key, value in spec.items():
        if key == "slots":
            values[key] = _rules(f"{where}.slots", value)
        elif key == "augment":
            values[key] = _want(f"{where}.augment", value, bool)
        else:
            values[key] = _want(f"{where}.{key}", value, str)
    if "target" in values and not _PATH.match(values["target"]):
        raise DataError(f"{where}.target: `{values['target']}` is not a field path")
    where_cond = values.get("where")
    if where_cond is not None:
        m = _CONDITION.match(where_cond.strip())
        if m is None or not _PATH.match(m["path"]):
            raise DataError(
                f"{where}.where: `{where_cond}` is not a condition (`[not] field.path`)"
            )
    return TaskOverride(**values)


def load_overrides(path: str | Path) -> Overrides:
    """Read an overrides JSON file; raise :class:`DataError` naming the bad key.

    Shape: ``{"slots": {NAME: RULE}, "tasks": {TASK: {"category", "source",
    "notes", "augment", "instances", "where", "target", "slots": {NAME: RULE}}}}``
    where ``RULE`` is ``{"type", "from", "sep", "prefix", "value", "each",
    "default", "check", "pin"}`` (only ``type`` required; ``pin`` is a bool).
    Keys starting with ``_`` are comments.
    """
    where = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{where}: cannot read overrides: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: invalid JSON: {exc}") from None
    data = {k: v for k, v in _want(where, data, dict).items() if not k.startswith("_")}
    unknown = sorted(set(data) - {"slots", "tasks"})
    if unknown:
        raise DataError(f"{where}: unknown key `{unknown[0]}` (known: slots, tasks)")
    tasks = {
        name: _task(
            f"{where}: tasks.{name}",
            {k: v for k, v in spec.items() if not k.startswith("_")}
            if isinstance(spec, dict)
            else spec,
        )
        for name, spec in _want(f"{where}: tasks", data.get("tasks", {}), dict).items()
    }
    return Overrides(_rules(f"{where}: slots", data.get("slots", {})), tasks, where)
