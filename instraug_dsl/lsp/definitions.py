"""Go to definition: imports (relative and ``@library/...``), declarations and ``{slot}``s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lsprotocol import types

from ..lang import ir
from ..lang.loader import library_path
from ..lang.source import Span
from .documents import Analysis, file_path
from .index import lookup, ref_at, slot_of


def import_target(written: str, importer: Path | None) -> Path | None:
    """The file an ``import`` names, when it exists (``@name/file.iat``: a shipped library)."""
    if written.startswith("@"):
        target = library_path(written)
    elif importer is None:
        return None
    else:
        try:
            target = (importer.parent / written).resolve()
        except (OSError, RuntimeError, ValueError):
            return None
    return target if target is not None and target.is_file() else None


def definition(
    analysis: Analysis,
    offset: int,
    location: Callable[[Span], types.Location | None],
    file_location: Callable[[Path], types.Location],
) -> list[types.Location]:
    """Where the name at ``offset`` is declared (empty when it is not a reference)."""
    if analysis.module is None:
        return []
    ref = ref_at(analysis.module, offset)
    if ref is None:
        return []
    if ref.kind == "import":
        target = import_target(ref.name, file_path(analysis.uri))
        return [file_location(target)] if target is not None else []
    if ref.kind == "slot":
        slot = slot_of(ref.enclosing(ir.Task), ref.name)
        found = location(slot.name.span) if slot is not None else None
        return [found] if found is not None else []
    decl = lookup(analysis.result.context, ref.kind, ref.name)
    name = getattr(decl, "name", None)
    if not isinstance(name, ir.Name):
        return []
    found = location(name.span)
    return [found] if found is not None else []
