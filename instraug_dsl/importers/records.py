"""Reading JSONL instruction records for the importer.

A record is one line: a JSON object with ``task`` and ``template`` (and
optionally ``index``, ``split``, ``category``, ``source``, ``notes``).  A
template follows ``str.format`` conventions: ``{name}`` is a placeholder
(an identifier) and ``{{``/``}}`` are literal braces; anything else in braces
is an error, reported with the file, line, field and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import DataError
from ..fsio import json_kind

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# The grammar's NAME: MultiInstruct task names contain hyphens (open-domain_VQA).
_TASK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*\Z")
_SPLITS = ("train", "test")
_MAX_REPORTED = 20


class Part(NamedTuple):
    """A piece of a template: literal text, or a placeholder name when ``slot``."""

    slot: bool
    value: str


@dataclass(frozen=True, slots=True)
class Record:
    """One input line: where it was and what it says."""

    line: int
    task: str
    template: str
    parts: tuple[Part, ...]
    index: int | None = None
    split: str | None = None
    category: str | None = None
    source: str | None = None
    notes: str | None = None


def parse_template(template: str) -> tuple[Part, ...]:
    """Split ``template`` into text and placeholders; raise :class:`ValueError`.

    >>> parse_template("a {b} {{c}}")
    (Part(slot=False, value='a '), Part(slot=True, value='b'), Part(slot=False, value=' {c}'))
    """
    parts: list[Part] = []
    buf: list[str] = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch in "{}" and template[i : i + 2] == ch * 2:
            buf.append(ch)
            i += 2
        elif ch == "}":
            raise ValueError(f"stray `}}` at column {i + 1}; write a literal brace as `}}}}`")
        elif ch == "{":
            end = template.find("}", i + 1)
            if end < 0:
                raise ValueError(
                    f"unclosed `{{` at column {i + 1}; write a literal brace as `{{{{`"
                )
            name = template[i + 1 : end]
            if not _IDENT.match(name):
                raise ValueError(
                    f"`{{{name}}}` at column {i + 1} is not a placeholder: names are letters, "
                    "digits and `_`; write literal braces as `{{` and `}}`"
                )
            if buf:
                parts.append(Part(False, "".join(buf)))
                buf.clear()
            parts.append(Part(True, name))
            i = end + 1
        else:
            buf.append(ch)
            i += 1
    if buf:
        parts.append(Part(False, "".join(buf)))
    return tuple(parts)


def _record(obj: object, line: int) -> Record:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {json_kind(obj)}")
    for key in ("task", "template"):
        if key not in obj:
            raise ValueError(f"record has no `{key}` field")
    strings = {}
    for key in ("task", "template", "split", "category", "source", "notes"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"field `{key}` must be a string, got {json.dumps(value)}")
        strings[key] = value
    task, template = _narrow(strings["task"]), _narrow(strings["template"])
    if not _TASK_NAME.match(task):
        raise ValueError(
            f"field `task`: `{task}` is not a task name (letters, digits, `_`, inner `-`)"
        )
    if strings["split"] is not None and strings["split"] not in _SPLITS:
        raise ValueError(
            f"field `split` must be `train` or `test`, got {json.dumps(strings['split'])}"
        )
    index = obj.get("index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise ValueError(f"field `index` must be a non-negative integer, got {json.dumps(index)}")
    try:
        parts = parse_template(template)
    except ValueError as exc:
        raise ValueError(f"field `template`: {exc}") from None
    return Record(
        line,
        task,
        template,
        parts,
        index,
        strings["split"],
        strings["category"],
        strings["source"],
        strings["notes"],
    )


def _narrow(value: str | None) -> str:
    """Narrow a value already checked to be present to ``str``."""
    assert value is not None
    return value


def parse_records(lines: Iterable[str], name: str) -> list[Record]:
    """Parse JSONL lines; raise :class:`DataError` listing every bad line.

    Blank lines are skipped.  Messages read ``NAME:LINE: problem``.
    """
    records: list[Record] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{name}:{number}: invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        try:
            records.append(_record(obj, number))
        except ValueError as exc:
            problems.append(f"{name}:{number}: {exc}")
    if not problems and not records:
        problems.append(f"{name}: no records")
    if problems:
        more = len(problems) - _MAX_REPORTED
        shown = problems[:_MAX_REPORTED] + ([f"... and {more} more"] if more > 0 else [])
        raise DataError("\n".join(shown))
    return records


def read_records(path: str | Path) -> list[Record]:
    """Read a JSONL file (UTF-8) into records; raise :class:`DataError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8: {exc.reason} at byte {exc.start}") from None
    # Split on "\n" only: JSON strings may hold U+2028 that splitlines() would cut.
    return parse_records(text.split("\n"), str(path))
