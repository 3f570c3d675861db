"""Carried columns: instance fields copied unchanged into every output row.

``MaterializeOptions.carry`` is a tuple of *carry specs*, one per column, each
``[NAME=]PATH[:TYPE]``:

* ``PATH`` is a record path in the ``.iat`` spelling (``image_path``,
  ``meta_data.source``, ``region[0]``, ``meta["a key"]``);
* ``NAME`` is the column name (default: the path as written, e.g. ``meta_data.source``);
* ``TYPE`` is the column's type in the dataset card and the Parquet schema: ``string``
  (the default), ``int64``, ``float64``, ``bool``, or ``json`` (any value, written as its
  compact JSON text in a string column).

A value that is missing, ``null``, of another type, or behind a path of the wrong shape is
written as ``null``: carrying never turns a record into an error.  The default,
``("task_name", "image_path")``, gives the columns ``iatc materialize`` always wrote.
The specs are plain strings so that the command line (``--carry a,b:int64``), the Python
API and a ``.iat`` ``sampling`` block can all set them the same way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..errors import UsageError
from ..fsio import json_line
from ..lang.model import PathKey
from .records import MISSING, ShapeError, dotted, lookup

#: The default carry: the columns every MIns+ row had before carrying was configurable.
DEFAULT_CARRY: Final = ("task_name", "image_path")
#: Carry types and the dtype each has in the dataset card.
TYPES: Final = {
    "string": "string",
    "int64": "int64",
    "float64": "float64",
    "bool": "bool",
    "json": "string",
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*")
_INDEX = re.compile(r"\[(-?[0-9]+)\]")
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class CarryColumn:
    """One carried column: its name, the record path it copies and its type."""

    name: str
    path: tuple[PathKey, ...]
    type: str = "string"

    @property
    def dtype(self) -> str:
        """The column's dtype in the dataset card (``json`` is a string column)."""
        return TYPES[self.type]

    @property
    def spec(self) -> str:
        """The canonical carry spec (``name=path:type`` with the defaults left out)."""
        path = dotted(self.path)
        name = "" if self.name == path else f"{self.name}="
        kind = "" if self.type == "string" else f":{self.type}"
        return f"{name}{path}{kind}"

    def value(self, record: Mapping[str, Any]) -> Any:
        """The column's value for ``record`` (``None`` when absent or of another type)."""
        try:
            found = lookup(record, self.path)
        except ShapeError:
            return None
        if found is MISSING or found is None:
            return None
        return _convert(self.type, found)


def _convert(kind: str, value: Any) -> Any:
    if kind == "string":
        return value if isinstance(value, str) else None
    if kind == "json":
        try:
            return json_line(value, sort_keys=False)
        except (TypeError, ValueError, RecursionError):  # bytes, a non-finite float
            return None
    if kind == "bool" or isinstance(value, bool):
        return value if kind == "bool" and isinstance(value, bool) else None
    if kind == "int64":
        if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
            return value
        return None
    if kind == "float64":
        if isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:
                return None
            return number if math.isfinite(number) else None
    return None


def parse_path(text: str) -> tuple[PathKey, ...]:
    """A record path in the ``.iat`` spelling; :class:`ValueError` says what is wrong."""
    match = _NAME.match(text)
    if match is None:
        raise ValueError(f"a field path starts with a field name, not {text[:20]!r}")
    keys: list[PathKey] = [match.group()]
    pos = match.end()
    while pos < len(text):
        char = text[pos]
        if char == ".":
            step = _NAME.match(text, pos + 1)
            if step is None:
                raise ValueError(f"expected a field name after `.` at {text[pos:][:20]!r}")
            keys.append(step.group())
            pos = step.end()
        elif text.startswith('["', pos):
            key, end = _quoted_key(text, pos + 1)
            keys.append(key)
            pos = end
        elif (index := _INDEX.match(text, pos)) is not None:
            keys.append(int(index.group(1)))
            pos = index.end()
        else:
            raise ValueError(f"unexpected {text[pos:][:20]!r} in the field path")
    return tuple(keys)


def _quoted_key(text: str, start: int) -> tuple[str, int]:
    """The JSON string starting at ``text[start]`` and the position after its ``]``."""
    try:
        key, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        raise ValueError(f"a quoted key must be a JSON string: {text[start:][:20]!r}") from None
    if not isinstance(key, str) or not text.startswith("]", end):
        raise ValueError(f"expected `]` after the quoted key at {text[start:][:20]!r}")
    return key, end + 1


def parse_carry(spec: str) -> CarryColumn:
    """One carry spec ``[NAME=]PATH[:TYPE]`` (:class:`UsageError` naming ``--carry``)."""
    text = spec.strip()
    name: str | None = None
    head = _NAME.match(text)
    if head is not None and text.startswith("=", head.end()):
        name, text = head.group(), text[head.end() + 1 :]
    kind = "string"
    colon = _last_colon(text)
    if colon is not None:
        text, kind = text[:colon], text[colon + 1 :].strip()
        if kind not in TYPES:
            raise UsageError(f"--carry {spec!r}: unknown type {kind!r} (one of {', '.join(TYPES)})")
    try:
        path = parse_path(text.strip())
    except ValueError as exc:
        raise UsageError(f"--carry {spec!r}: {exc}") from None
    return CarryColumn(name or dotted(path), path, kind)


def _last_colon(text: str) -> int | None:
    """The position of the ``:TYPE`` colon: the last colon outside a quoted key."""
    found: int | None = None
    quoted = False
    escaped = False
    for i, char in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == ":":
            found = i
    return found


def split_specs(values: Iterable[str]) -> tuple[str, ...]:
    """Comma-separated carry specs (as ``--carry`` takes them) as a tuple of specs.

    Commas inside a quoted key (``meta["a,b"]``) do not split; empty items are dropped, so
    ``--carry ''`` carries nothing.
    """
    specs: list[str] = []
    for value in values:
        current: list[str] = []
        quoted = escaped = False
        for char in value:
            if quoted:
                escaped = char == "\\" and not escaped
                if char == '"' and not escaped:
                    quoted = False
            elif char == '"':
                quoted = True
            elif char == ",":
                specs.append("".join(current))
                current = []
                continue
            current.append(char)
        specs.append("".join(current))
    return tuple(s.strip() for s in specs if s.strip())


def carry_columns(specs: Sequence[str], reserved: Iterable[str]) -> tuple[CarryColumn, ...]:
    """Parse ``specs`` into columns, checking that the names are unique and free.

    ``unique_id`` carried as itself is accepted and adds no column: every row already has
    it.  Any other name in ``reserved`` (the columns the output format writes itself) is
    refused with a hint to rename the carried column.
    """
    taken = set(reserved)
    columns: list[CarryColumn] = []
    seen: set[str] = set()
    for spec in specs:
        if not isinstance(spec, str):
            raise UsageError(f"--carry: a carry spec is a string, not {spec!r}")
        column = parse_carry(spec)
        if column.name == "unique_id" and column.path == ("unique_id",):
            if column.type != "string":
                raise UsageError(
                    f"--carry {spec!r}: the `unique_id` column is always written as text; "
                    f"carry it under another name (`uid={column.spec}`)"
                )
            continue
        if column.name in taken:
            raise UsageError(
                f"--carry {spec!r}: `{column.name}` is a column iatc writes itself; name the "
                f"carried one (`{column.name}_src={column.spec}`)"
            )
        if column.name in seen:
            raise UsageError(f"--carry: the column `{column.name}` is carried twice")
        seen.add(column.name)
        columns.append(column)
    return tuple(columns)
