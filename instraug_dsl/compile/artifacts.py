"""The compiler's manifest and catalog snapshot (the files themselves: contract.compiled).

The manifest and the snapshot hold no timestamps or absolute paths: source paths are
relative to the loaded files' common folder, so compiling the same sources gives the same
bytes on any machine.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypeVar

from ..contract.compiled import (
    COMPILE_FORMAT,
    CatalogSnapshot,
    CompileCounts,
    CompiledManifest,
    Expansion,
    Request,
    TaskRequests,
    ValidatorSpec,
)
from ..fsio import sha256_text
from ..lang.source import Span

T = TypeVar("T")

if TYPE_CHECKING:
    from .context import PlanContext


def source_root(sources: Mapping[str, str]) -> str | None:
    """The loaded files' common directory (absolute), or ``None`` without sources."""
    if not sources:
        return None
    return os.path.commonpath([os.path.dirname(Path(p).resolve()) for p in sources])


def relative(path: str, root: str | None) -> str:
    """``path`` relative to ``root`` with ``/`` separators (kept as is for ``<string>``)."""
    if root is None or path.startswith("<"):
        return path
    return PurePosixPath(*Path(os.path.relpath(Path(path).resolve(), root)).parts).as_posix()


def relative_sources(sources: Mapping[str, str]) -> dict[str, str]:
    """Source hashes keyed by path relative to the files' common directory."""
    root = source_root(sources)
    return {relative(p, root): sha256_text(text) for p, text in sorted(sources.items())}


def _relocate(value: T, root: str | None) -> T:
    """``value`` with every :class:`Span` path made relative to ``root`` (no machine paths)."""
    if isinstance(value, Span):
        return dataclasses.replace(value, path=relative(value.path, root))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _relocate(getattr(value, f.name), root) for f in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_relocate(v, root) for v in value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {k: _relocate(v, root) for k, v in value.items()}  # type: ignore[return-value]
    return value


def build_manifest(
    ctx: PlanContext,
    requests: Sequence[Request],
    validators: Mapping[str, ValidatorSpec],
    sources: Mapping[str, str],
    skipped_tasks: Mapping[str, str],
    skipped_instructions: Mapping[str, str],
    per_task: Mapping[str, TaskRequests],
) -> CompiledManifest:
    """Everything a reader needs to trust and reproduce the compile."""
    expansions = tuple(Expansion(mp.name, n) for mp, n in ctx.expansions())
    per_instruction = sum(n for _, n in ctx.expansions()) * len(ctx.plan.temperatures)
    families = Counter(v.family for v in validators.values())
    return CompiledManifest(
        format=COMPILE_FORMAT,
        plan=ctx.plan,
        token_preference=tuple(ctx.preference),
        sources=relative_sources(sources),
        expansions=expansions,
        requests_per_instruction=per_instruction,
        counts=CompileCounts(
            requests=len(requests),
            validators=len(validators),
            tasks=len(per_task),
            instructions=sum(c.instructions for c in per_task.values()),
            skipped_tasks=len(skipped_tasks),
            skipped_instructions=len(skipped_instructions),
        ),
        per_task=dict(sorted(per_task.items())),
        skipped_tasks=dict(sorted(skipped_tasks.items())),
        skipped_instructions=dict(sorted(skipped_instructions.items())),
        token_families=dict(sorted(families.items())),
    )


def snapshot(ctx: PlanContext, sources: Mapping[str, str]) -> CatalogSnapshot:
    """The catalog the plan was compiled from, as data (with the source hashes), every path
    in it relative to the sources' common folder."""
    root = source_root(sources)
    catalog = _relocate(ctx.catalog, root)
    catalog = dataclasses.replace(
        catalog, source_paths={k: relative(v, root) for k, v in catalog.source_paths.items()}
    )
    return CatalogSnapshot.of(catalog, relative_sources(sources))
