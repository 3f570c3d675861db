"""Reading a run directory (the contract with ``iatc augment``, :mod:`instraug_dsl.contract`).

Everything comes from the run directory itself: the resolved declarations from
``compiled/catalog.json``, the plan from ``compiled/manifest.json``, the rows from
``instructions.jsonl``.  The ``.iat`` sources are not needed, so a run directory can be
moved or copied elsewhere.  ``iat=`` (``--iat``) overrides the recorded declarations with
other sources; their hashes are compared with those the run was compiled from and every
difference is reported as a warning (editing an instruction's wording after a run is
legitimate), while a task of the run that the override does not declare is dropped with
the reason ``unknown_task`` by the corpus filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..contract.compiled import read_manifest, read_snapshot
from ..contract.run import InstructionRow, RunDir, read_rows
from ..errors import DataError, UsageError
from ..fsio import sha256_file
from ..lang.model import DEFAULT_DEDUP, Catalog, PlanSpec


@dataclass
class Run:
    """A loaded run: the catalog, the plan, every instruction row and what was noticed."""

    path: Path
    catalog: Catalog
    plan: PlanSpec | None
    sources: dict[str, str]  # .iat path -> sha256 (recorded, or of the --iat files)
    instructions: list[InstructionRow]
    instructions_sha256: str
    warnings: list[str] = field(default_factory=list)

    @property
    def dedup_threshold(self) -> float:
        """The plan's ``dedup`` ROUGE-L threshold (0.7 when the run names no plan)."""
        return self.plan.dedup if self.plan is not None else DEFAULT_DEDUP


def _override(
    paths: Sequence[Path], recorded: dict[str, str], warnings: list[str]
) -> tuple[Catalog, dict[str, str]]:
    """Load ``--iat`` sources and compare them with the recorded ones by content hash."""
    from ..lang.frontend import check
    from ..lang.loader import expand_paths

    try:
        files = expand_paths(paths)
    except FileNotFoundError as exc:
        raise UsageError(f"--iat: no such file or directory: {exc.args[0]}") from None
    result = check(files)
    catalog = result.raise_for_errors()
    hashes = {str(Path(p)): sha256_file(Path(p)) for p in result.sources}
    recorded_set, given = set(recorded.values()), set(hashes.values())
    if recorded_set and given != recorded_set:
        changed = sorted(p for p, h in hashes.items() if h not in recorded_set)
        missing = sorted(p for p, h in recorded.items() if h not in given)
        parts = []
        if changed:
            parts.append("not as compiled: " + ", ".join(changed))
        if missing:
            parts.append("compiled from but not given: " + ", ".join(missing))
        warnings.append(
            "the --iat sources differ from those the run was compiled from ("
            + "; ".join(parts)
            + "); their declarations are used"
        )
    return catalog, hashes


def load_run(run_dir: Path, iat: Sequence[Path] | None = None) -> Run:
    """Load ``run_dir`` (and, with ``iat``, other declarations); raises DataError/IatCheckError."""
    run = RunDir(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    if not (run.compiled / "manifest.json").is_file():
        raise DataError(
            f"{run_dir}: not a run directory of iatc (compiled/manifest.json is missing); "
            "make one with `iatc augment`"
        )
    warnings: list[str] = []
    manifest = read_manifest(run.compiled)
    if iat:
        catalog, sources = _override(iat, manifest.sources, warnings)
    else:
        catalog, sources = read_snapshot(run.compiled).catalog(), dict(manifest.sources)
    plan = catalog.plans.get(manifest.plan.name)
    if plan is None:
        warnings.append(
            f"plan `{manifest.plan.name}` is not declared in the --iat sources; "
            "the compiled plan's settings are used"
        )
        plan = manifest.plan
    if not run.instructions.is_file():
        raise DataError(f"{run_dir}: instructions.jsonl is missing (was `iatc augment` stopped?)")
    rows = list(read_rows(run.instructions, InstructionRow))
    return Run(
        path=run_dir,
        catalog=catalog,
        plan=plan,
        sources=sources,
        instructions=rows,
        instructions_sha256=sha256_file(run.instructions),
        warnings=warnings,
    )
