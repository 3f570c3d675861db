"""Dataclasses to JSON and back, driven by their type annotations.

Every file of a run directory is a frozen dataclass (or a list of them); this module is
the one place that turns them into JSON values and back.  Decoding checks every value
against the annotation and reports the file, the field path and what was wrong
(``summary.json: totals.accepted: expected an integer, got string``), so a damaged or
hand-edited file is a clear :class:`~instraug_dsl.errors.DataError`, never a
``KeyError`` three stages later.

Supported annotations: ``str``, ``int``, ``float`` (integers accepted), ``bool``,
``None``, ``Literal[...]``, unions (dataclass members are told apart by their field
names), ``tuple[X, ...]``, fixed ``tuple[X, Y]``, ``list[X]``, ``dict[str, X]``, nested
dataclasses, and classes with their own ``to_json``/``from_json`` pair.  Floats must be
finite: the JSON we write is strict.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from ..errors import DataError
from ..fsio import json_kind

T = TypeVar("T")


class ContractError(DataError):
    """A JSON value does not fit the type a run-directory file declares."""


def encode(value: Any) -> Any:
    """The JSON value of ``value`` (dataclasses become objects, tuples lists)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite number {value!r} as JSON")
        return value
    to_json = getattr(value, "to_json", None)
    if to_json is not None and dataclasses.is_dataclass(value):
        return to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def decode(cls: type[T], data: Any, where: str) -> T:
    """Build a ``cls`` from JSON ``data``; :class:`ContractError` names ``where`` and the field."""
    return typing.cast(T, _decode(cls, data, where, ""))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fail(where: str, path: str, message: str) -> ContractError:
    return ContractError(f"{where}: {path + ': ' if path else ''}{message}")


def _decode(tp: Any, data: Any, where: str, path: str) -> Any:
    if tp is Any:
        return data
    if tp is type(None) or tp is None:
        if data is not None:
            raise _fail(where, path, f"expected null, got {json_kind(data)}")
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _union(typing.get_args(tp), data, where, path)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if data not in allowed or isinstance(data, bool) != isinstance(allowed[0], bool):
            spelled = ", ".join(repr(a) for a in allowed)
            raise _fail(where, path, f"expected one of {spelled}, got {data!r}")
        return data
    if tp is bool:
        if not isinstance(data, bool):
            raise _fail(where, path, f"expected a boolean, got {json_kind(data)}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise _fail(where, path, f"expected an integer, got {json_kind(data)}")
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise _fail(where, path, f"expected a number, got {json_kind(data)}")
        if not math.isfinite(data):
            raise _fail(where, path, "expected a finite number")
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise _fail(where, path, f"expected a string, got {json_kind(data)}")
        return data
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        return _sequence(tp, origin, data, where, path)
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(data, dict):
            raise _fail(where, path, f"expected an object, got {json_kind(data)}")
        args = typing.get_args(tp)
        value_type = args[1] if len(args) == 2 else Any
        return {
            key: _decode(value_type, value, where, f"{path}.{key}" if path else key)
            for key, value in data.items()
        }
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, where, path)
    raise TypeError(f"codec cannot decode the annotation {tp!r}")


def _sequence(tp: Any, origin: Any, data: Any, where: str, path: str) -> Any:
    if not isinstance(data, list):
        raise _fail(where, path, f"expected a list, got {json_kind(data)}")
    args = typing.get_args(tp)
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(data) != len(args):
            raise _fail(where, path, f"expected a list of {len(args)} items, got {len(data)}")
        return tuple(
            _decode(a, v, where, f"{path}[{i}]")
            for i, (a, v) in enumerate(zip(args, data, strict=True))
        )
    item = args[0] if args else Any
    items = [_decode(item, v, where, f"{path}[{i}]") for i, v in enumerate(data)]
    return items if origin is list or tp is list else tuple(items)


def _union(options: tuple[Any, ...], data: Any, where: str, path: str) -> Any:
    if data is None and type(None) in options:
        return None
    classes = [o for o in options if isinstance(o, type) and dataclasses.is_dataclass(o)]
    if classes and isinstance(data, dict):
        for cls in classes:
            names = {f.name for f in dataclasses.fields(cls)}
            required = {
                f.name
                for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            }
            if required <= data.keys() <= names:
                return _dataclass(cls, data, where, path)
        spelled = " or ".join(c.__name__ for c in classes)
        raise _fail(where, path, f"expected {spelled}, got an object with {sorted(data)}")
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return _decode(option, data, where, path)
        except ContractError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    raise _fail(where, path, f"unexpected {json_kind(data)}")


def _dataclass(cls: type, data: Any, where: str, path: str) -> Any:
    from_json = getattr(cls, "from_json", None)
    if from_json is not None:
        try:
            return from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise _fail(where, path, f"not a valid {cls.__name__} ({detail})") from None
    if not isinstance(data, dict):
        raise _fail(where, path, f"expected an object, got {json_kind(data)}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        sub = f"{path}.{f.name}" if path else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _fail(where, sub, "missing")
            continue
        values[f.name] = _decode(hints[f.name], data[f.name], where, sub)
    return cls(**values)
