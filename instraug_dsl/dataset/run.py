"""Reading an augmentation run directory (the contract with ``iatc augment``).

``RUN_DIR`` holds ``instructions.jsonl`` (originals and accepted rewrites),
``rejected.jsonl``, ``failed.jsonl``, ``summary.json`` and ``compiled/manifest.json``,
whose ``sources`` maps the ``.iat`` paths given at compile time to their SHA-256 and whose
``plan`` names the plan.  The task declarations are reloaded from those paths (or from
``--iat`` paths) to get slot specs; a hash that differs is a warning, not an error, since
editing an instruction's wording after a run is legitimate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..lang.model import DEFAULT_DEDUP, Catalog, PlanSpec
from .records import kind, sha256_file


@dataclass(frozen=True, slots=True)
class InstructionRow:
    """One line of ``instructions.jsonl``: an original or an accepted rewrite."""

    id: str
    task: str
    kind: str
    template: str
    root: str | None = None
    parent: str | None = None
    metaprompt: str | None = None
    temperature: float | None = None
    sample: int | None = None
    attempt: int | None = None
    iteration: int | None = None
    model: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> InstructionRow:
        """Validate one row; raises :class:`DataError` naming ``where`` and the field."""
        for key in ("id", "task", "kind", "template"):
            if not isinstance(data.get(key), str):
                raise DataError(
                    f"{where}: field `{key}` must be a string, got {kind(data.get(key))}"
                )
        if data["kind"] not in ("original", "generated"):
            raise DataError(
                f'{where}: field `kind` must be "original" or "generated", got {data["kind"]!r}'
            )

        def opt(key: str, types: type | tuple[type, ...]) -> Any:
            value = data.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, types):
                raise DataError(f"{where}: field `{key}` has the wrong type ({kind(value)})")
            return value

        temperature = opt("temperature", (int, float))
        return cls(
            id=data["id"],
            task=data["task"],
            kind=data["kind"],
            template=data["template"],
            root=opt("root", str),
            parent=opt("parent", str),
            metaprompt=opt("metaprompt", str),
            temperature=None if temperature is None else float(temperature),
            sample=opt("sample", int),
            attempt=opt("attempt", int),
            iteration=opt("iteration", int),
            model=opt("model", str),
        )


@dataclass
class Run:
    """A loaded run: the catalog, the plan, every instruction row and what was noticed."""

    path: Path
    catalog: Catalog
    plan: PlanSpec | None
    manifest: dict[str, Any]
    iat_files: dict[str, str]  # .iat path (as given at compile time or by --iat) -> sha256
    instructions: list[InstructionRow]
    instructions_sha256: str
    warnings: list[str] = field(default_factory=list)
    dedup: float = DEFAULT_DEDUP

    @property
    def dedup_threshold(self) -> float:
        """The plan's ``dedup`` ROUGE-L threshold (0.7 when the run names no plan)."""
        return self.dedup


def iter_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("file:line", object)`` for each non-blank line; bad JSON is a DataError."""
    with path.open("r", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise DataError(f"{where}: expected a JSON object, got {kind(value)}")
            yield where, value


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object file; a DataError names the file when it is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object")
    return value


def _locate(raw: str, bases: Sequence[Path]) -> Path | None:
    """A source path of the manifest: absolute, else the first base it exists under."""
    path = Path(raw)
    if path.is_absolute():
        return path if path.exists() else None
    for base in bases:
        if (base / path).is_file():
            return base / path
    return None


def _bases(run_dir: Path, manifest: dict[str, Any]) -> list[Path]:
    """Where relative source paths may start: the manifest's ``source_root`` when it records
    one, the working directory, the run directory, and the ancestors of both (a run kept
    inside the project it was made in)."""
    bases = [Path(manifest["source_root"])] if isinstance(manifest.get("source_root"), str) else []
    bases += [Path.cwd(), run_dir, run_dir / "compiled"]
    bases += [*run_dir.resolve().parents, *Path.cwd().parents]
    return bases


def _sources(
    run_dir: Path, manifest: dict[str, Any], override: Sequence[Path] | None, warnings: list[str]
) -> list[tuple[str, Path]]:
    """The ``.iat`` files to load, each with the name it is reported under."""
    sources = manifest.get("sources") or {}
    if not isinstance(sources, dict):
        raise DataError(
            f"{run_dir / 'compiled/manifest.json'}: `sources` must map .iat paths to sha256"
        )
    if override:
        from ..lang.loader import expand_paths

        try:
            files = expand_paths(override)
        except FileNotFoundError as exc:
            raise DataError(f"no such file or directory: {exc.args[0]}") from None
        wanted = set(sources.values())
        if wanted and {sha256_file(p) for p in files} != wanted:
            warnings.append("the --iat files differ from the sources the run was compiled from")
        return [(str(p), p) for p in files]
    if not sources:
        raise DataError(f"{run_dir}: compiled/manifest.json lists no .iat sources; pass --iat PATH")
    found: list[tuple[str, Path]] = []
    bases = _bases(run_dir, manifest)
    for raw, digest in sorted(sources.items()):
        path = _locate(str(raw), bases)
        if path is None:
            raise DataError(
                f"{run_dir}: cannot find {raw} (a source named in compiled/manifest.json); "
                "pass the task declarations with --iat PATH"
            )
        if sha256_file(path) != digest:
            warnings.append(f"{raw} changed since the run was compiled (sha256 differs)")
        found.append((str(raw), path))
    return found


def load_catalog_for(paths: Sequence[Path]) -> Catalog:
    """Load and check ``.iat`` files; raises IatCheckError with every diagnostic."""
    from ..lang.frontend import check

    return check(list(paths)).raise_for_errors()


def load_run(run_dir: Path, iat: Sequence[Path] | None = None) -> Run:
    """Load ``run_dir`` and its task declarations; raises DataError/IatCheckError."""
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a run directory")
    warnings: list[str] = []
    manifest_path = run_dir / "compiled" / "manifest.json"
    manifest = read_json(manifest_path) if manifest_path.exists() or not iat else {}
    sources = _sources(run_dir, manifest, iat, warnings)
    catalog = load_catalog_for([path for _, path in sources])
    # `plan` is the plan's name or its resolved JSON form (with `name` and `dedup`)
    declared = manifest.get("plan")
    plan_json = declared if isinstance(declared, dict) else {}
    plan_name = plan_json.get("name") if plan_json else declared
    plan = catalog.plans.get(plan_name) if isinstance(plan_name, str) else None
    dedup = plan.dedup if plan is not None else plan_json.get("dedup", DEFAULT_DEDUP)
    if not isinstance(dedup, int | float) or isinstance(dedup, bool):
        raise DataError(f"{manifest_path}: plan `dedup` must be a number")
    if plan is None and plan_name is not None:
        warnings.append(
            f"plan {plan_name!r} not found in the task declarations; dedup threshold {dedup}"
        )
    rows_path = run_dir / "instructions.jsonl"
    if not rows_path.exists():
        raise DataError(f"{run_dir}: instructions.jsonl is missing")
    rows = [InstructionRow.from_json(data, where) for where, data in iter_jsonl(rows_path)]
    return Run(
        path=run_dir,
        catalog=catalog,
        plan=plan,
        manifest=manifest,
        iat_files={name: sha256_file(path) for name, path in sources},
        instructions=rows,
        instructions_sha256=sha256_file(rows_path),
        warnings=warnings,
        dedup=float(dedup),
    )
