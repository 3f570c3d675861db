"""Instance records: field paths, truthiness, task matching and streaming JSONL input.

A record is one parsed line of a MultiInstruct-style instance file: a JSON object with at
least ``task_name`` and usually ``unique_id``, ``target`` and the fields the task's slots
read.  Nothing here trusts a record: lookups report the wrong shape instead of raising
``TypeError``, and bad lines become :class:`LineError` values the caller records.

Only strict JSON that can be written back as UTF-8 is a record: ``NaN``/``Infinity``, a
number too large for a float (``1e999``) or for an integer (5,000 digits), nesting deeper
than the parser allows, bytes that are not UTF-8, and strings holding a lone surrogate
(``"\\ud800"``) are each a :class:`LineError` naming the line, never a crash and never a
``nan``/``inf`` or an unencodable string in the output.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..fsio import json_kind
from ..lang.model import PathKey, TaskSpec


class _Missing:
    """The sentinel type of :data:`MISSING` (a key or index that is not there)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: Returned by :func:`lookup` when a key or index is absent.
MISSING: Final = _Missing()


class ShapeError(Exception):
    """A path step met a value of the wrong kind (e.g. ``.key`` on a list)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def dotted(path: Sequence[PathKey]) -> str:
    """Spell a record path the way ``.iat`` does (``meta_data.dialog_hist[-1]``)."""
    out = ""
    for i, key in enumerate(path):
        if isinstance(key, int):
            out += f"[{key}]"
        elif i == 0:
            out += key
        elif key.isidentifier():
            out += f".{key}"
        else:
            out += f"[{json.dumps(key)}]"
    return out


def lookup(record: object, path: Sequence[PathKey]) -> Any:
    """Follow ``path`` into ``record``; :data:`MISSING` when a key or index is absent.

    Raises :class:`ShapeError` when a step cannot apply (a key on a non-object, an index on
    a non-list).  ``None`` met half-way counts as missing: MultiInstruct writes ``null`` for
    absent metadata.
    """
    if len(path) == 1 and record.__class__ is dict:  # the common case, kept cheap
        return record.get(path[0], MISSING)
    value: Any = record
    for depth, key in enumerate(path):
        if value is None:
            return MISSING
        if isinstance(key, int):
            if not isinstance(value, list):
                raise ShapeError(
                    dotted(path[:depth]),
                    f"expected a list to index with [{key}], got {json_kind(value)}",
                )
            if -len(value) <= key < len(value):
                value = value[key]
            else:
                return MISSING
        else:
            if not isinstance(value, dict):
                raise ShapeError(
                    dotted(path[:depth]) or "<record>",
                    f"expected an object with field `{key}`, got {json_kind(value)}",
                )
            value = value.get(key, MISSING)
            if value is MISSING:
                return MISSING
    return value


def is_empty(value: object) -> bool:
    """Missing, ``null``, or an empty string, list or object."""
    if value is MISSING or value is None:
        return True
    return isinstance(value, str | list | dict) and not value


def truthy(value: object) -> bool:
    """The truth of a ``where`` condition: present and non-empty (``false`` is false too).

    Numbers, including ``0``, are present values and therefore true: a condition asks
    whether a field is *there*, not what it counts.
    """
    return not is_empty(value) and value is not False


class TaskIndex:
    """Finds the task a record belongs to.

    A record belongs to task ``T`` when ``record["task_name"] == T.instances_task`` and
    ``T``'s condition (if any) holds.  When several tasks match, the first declared wins
    (declaration order is the catalog's order), so overlapping conditions stay deterministic.
    """

    def __init__(self, tasks: Mapping[str, TaskSpec]) -> None:
        self._by_name: dict[str, list[TaskSpec]] = {}
        for spec in tasks.values():
            self._by_name.setdefault(spec.instances_task, []).append(spec)

    def match(self, record: Mapping[str, object]) -> TaskSpec | None:
        """The task of ``record``, or ``None`` when no task claims it.

        Raises :class:`ShapeError` when a condition path meets the wrong shape.
        """
        name = record.get("task_name")
        if not isinstance(name, str):
            return None
        for spec in self._by_name.get(name, ()):
            if spec.condition is None:
                return spec
            negated, path = spec.condition
            if truthy(lookup(record, path)) != negated:
                return spec
        return None


@dataclass(frozen=True, slots=True)
class LineError:
    """A line of the instance file that is not a JSON object (``field``: where, if known)."""

    line: int
    reason: str
    field: str | None = None


def _refuse_constant(name: str) -> object:
    """``NaN``/``Infinity`` are not JSON: refuse them instead of rendering ``nan``."""
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    """``float`` for the parser, refusing literals beyond the float range (``1e999``)."""
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 24 else f"{text[:12]}...{text[-8:]}"
        raise ValueError(f"the number {shown} is too large for a float")
    return value


# Cheap tests on the raw bytes: only lines they match need the careful parse and the walk
# (a surrogate escape; an exponent of three digits or more; 200 digits in a row: with
# fewer digits and a two-digit exponent a number stays below 1e300).
_RISKY = re.compile(rb"\\u[dD][89a-fA-F]|[eE][+]?0*[1-9][0-9]{2}|[0-9]{200}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _lone_surrogate(value: object) -> str | None:
    """The path of a string (or key) holding a lone surrogate, else None."""
    stack: list[tuple[object, tuple[PathKey, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return dotted(path) or "<record>"
        elif isinstance(item, dict):
            for key, child in item.items():
                if _LONE_SURROGATE.search(key):
                    return dotted(path) or "<record>"
                stack.append((child, (*path, key)))
        elif isinstance(item, list):
            stack.extend((child, (*path, i)) for i, child in enumerate(item))
    return None


def _short(exc: ValueError) -> str:
    text = str(exc)
    if "digits" in text:
        return "a number with too many digits"
    return text.splitlines()[0][:200]


def record_id(record: Mapping[str, object], line: int) -> str:
    """The id used in reports: ``unique_id`` when it is a string or number, else ``line N``."""
    uid = record.get("unique_id")
    if isinstance(uid, str | int) and not isinstance(uid, bool):
        return str(uid)
    return f"line {line}"


def parse_line(number: int, raw: bytes) -> dict[str, Any] | LineError:
    """One non-blank line of an instance file: the record, or a :class:`LineError`."""
    risky = _RISKY.search(raw) is not None
    try:
        value = (
            json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
            if risky
            else json.loads(raw, parse_constant=_refuse_constant)
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return LineError(number, f"not valid JSON: {exc}")
    except RecursionError:
        return LineError(number, "not valid JSON: nested too deeply")
    except ValueError as exc:  # NaN/Infinity, or an integer beyond Python's digit limit
        return LineError(number, f"not valid JSON: {_short(exc)}")
    if not isinstance(value, dict):
        return LineError(number, f"expected a JSON object, got {json_kind(value)}")
    where = _lone_surrogate(value) if risky else None
    if where is not None:
        reason = "a string holds a lone surrogate (e.g. \\ud800): not Unicode text"
        return LineError(number, reason, where)
    return value


def strict_loads(text: str) -> Any:
    """One strict JSON value (a value of an Arrow ``arrow.json`` column): raises
    :class:`ValueError` with the reason, as :func:`parse_line` reports a bad line."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {_short(exc)}") from None
    if _lone_surrogate(value) is not None:
        raise ValueError("a string holds a lone surrogate (e.g. \\ud800): not Unicode text")
    return value


def iter_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    """Yield ``(line number, record or LineError)`` for each non-blank line of ``lines``
    (byte lines of a JSONL stream, e.g. decompressed ones)."""
    for number, raw in enumerate(lines, start=1):
        if raw.strip():
            yield number, parse_line(number, raw)


def iter_records(
    path: Path, digest: hashlib._Hash | None = None
) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    """Yield ``(line number, record or LineError)`` for each non-blank line, streaming.

    Only one line is held at a time, so memory does not grow with the file.  When
    ``digest`` is given, every byte read is fed to it (the manifest's input hash).
    """
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if digest is not None:
                digest.update(raw)
            if raw.strip():
                yield number, parse_line(number, raw)
