"""The compiler's files: requests.jsonl, validators.json, manifest.json.

All three are written with sorted keys, UTF-8, ``\\n`` line ends and no
timestamps or absolute paths, so compiling the same sources gives the same
bytes on any machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ..errors import IatCompileError
from .types import Request, ValidatorSpec

if TYPE_CHECKING:
    from .build import Compiled, PlanContext

REQUESTS = "requests.jsonl"
VALIDATORS = "validators.json"
MANIFEST = "manifest.json"


def _dump(data: object) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, indent=2) + "\n"


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
        out[rel] = hashlib.sha256(resolved[p].encode("utf-8")).hexdigest()
    return out


def build_manifest(
    ctx: PlanContext,
    requests: Sequence[Request],
    validators: Mapping[str, ValidatorSpec],
    sources: Mapping[str, str],
    skipped_tasks: Mapping[str, str],
    skipped_instructions: Mapping[str, str],
    per_task: Mapping[str, Mapping[str, int]],
) -> dict[str, object]:
    """Everything a reader needs to trust and reproduce the compile."""
    from .build import FORMAT, plan_json

    expansions = [{"metaprompt": mp.name, "samples": n} for mp, n in ctx.expansions()]
    per_instruction = sum(n for _, n in ctx.expansions()) * len(ctx.plan.temperatures)
    families = Counter(v.family for v in validators.values())
    return {
        "format": FORMAT,
        "plan": plan_json(ctx.plan),
        "sources": relative_sources(sources),
        "expansions": expansions,
        "requests_per_instruction": per_instruction,
        "counts": {
            "requests": len(requests),
            "validators": len(validators),
            "tasks": len(per_task),
            "instructions": sum(c["instructions"] for c in per_task.values()),
            "skipped_tasks": len(skipped_tasks),
            "skipped_instructions": len(skipped_instructions),
        },
        "per_task": {k: dict(v) for k, v in sorted(per_task.items())},
        "skipped_tasks": dict(sorted(skipped_tasks.items())),
        "skipped_instructions": dict(sorted(skipped_instructions.items())),
        "token_families": dict(sorted(families.items())),
    }


def write_artifacts(compiled: Compiled, out_dir: str | os.PathLike[str]) -> None:
    """Write the three files into ``out_dir`` (created if missing)."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False) for r in compiled.requests
        ]
        _write(out / REQUESTS, "".join(line + "\n" for line in lines))
        _write(
            out / VALIDATORS,
            _dump({k: v.to_json() for k, v in sorted(compiled.validators.items())}),
        )
        _write(out / MANIFEST, _dump(compiled.manifest))
    except OSError as exc:
        raise IatCompileError(f"cannot write artifacts to {out}: {exc.strerror or exc}") from None


def _write(path: Path, text: str) -> None:
    # Write-then-rename: a reader never sees a half-written artifact.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read_artifacts(
    out_dir: str | os.PathLike[str],
) -> tuple[tuple[Request, ...], dict[str, ValidatorSpec], dict[str, object]]:
    """Read the three files back; errors name the file and line."""
    base = Path(out_dir)
    requests = []
    try:
        with (base / REQUESTS).open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    requests.append(Request.from_json(json.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    raise IatCompileError(
                        f"{base / REQUESTS}:{number}: not a request ({exc})"
                    ) from None
        raw_validators = json.loads((base / VALIDATORS).read_text(encoding="utf-8"))
        manifest = json.loads((base / MANIFEST).read_text(encoding="utf-8"))
    except OSError as exc:
        raise IatCompileError(
            f"cannot read compiled artifacts in {base}: {exc.strerror or exc}"
        ) from None
    except ValueError as exc:
        raise IatCompileError(f"malformed artifact in {base}: {exc}") from None
    try:
        validators = {k: ValidatorSpec.from_json(v) for k, v in raw_validators.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise IatCompileError(f"{base / VALIDATORS}: malformed validator ({exc})") from None
    return tuple(requests), validators, manifest
