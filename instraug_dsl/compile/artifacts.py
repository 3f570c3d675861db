"""The compiler's manifest and catalog snapshot (the files themselves: contract.compiled).

The manifest and the snapshot hold no timestamps or absolute paths: source paths are
relative to the loaded files' common folder, so compiling the same sources gives the same
bytes on any machine.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from .build import PlanContext


def relative_sources(sources: Mapping[str, str]) -> dict[str, str]:
    """Source hashes keyed by path relative to the files' common directory."""
    if not sources:
        return {}
    resolved = {str(Path(p).resolve()): text for p, text in sources.items()}
    paths = sorted(resolved)
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    out = {}
    for p in paths:
        rel = PurePosixPath(*Path(os.path.relpath(p, root)).parts).as_posix()
        out[rel] = sha256_text(resolved[p])
    return out


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
    """The catalog the plan was compiled from, as data (with the source hashes)."""
    return CatalogSnapshot.of(ctx.catalog, relative_sources(sources))
