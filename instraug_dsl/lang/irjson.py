"""The IR as JSON (``iatc parse --emit ir``): every node with its class name."""

from __future__ import annotations

import dataclasses
import json
import typing as t

from . import ir
from .source import Span


def to_data(node: object, *, spans: bool = True) -> t.Any:
    """Convert IR nodes (recursively) to JSON-ready data."""
    if isinstance(node, Span):
        return node.to_json() if spans else None
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, t.Any] = {"node": type(node).__name__}
        for f in dataclasses.fields(node):
            if f.name == "span" and not spans:
                continue
            if not spans and (
                f.name in ("raw", "comments") or (f.name == "path" and isinstance(node, ir.Module))
            ):
                continue  # spelling, layout and file names: not part of the meaning
            out[f.name] = to_data(getattr(node, f.name), spans=spans)
        return out
    if isinstance(node, tuple | list):
        return [to_data(x, spans=spans) for x in node]
    return node


def program_json(program: ir.Program, *, spans: bool = True) -> str:
    """Serialize a program deterministically."""
    return json.dumps(to_data(program, spans=spans), indent=2, sort_keys=True, ensure_ascii=False)
