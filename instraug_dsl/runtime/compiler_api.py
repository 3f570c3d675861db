"""The runtime's one view of the compiler (``instraug_dsl.compile``).

Everything the engine needs from compiled artifacts goes through these few functions, so the
runtime depends on the compiler's public API in one place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..compile.types import Request, Verdict
from ..model import Catalog, PlanSpec
from .engine import Evaluator


def compile_plan(catalog: Catalog, plan: str) -> Any:
    """The compiled plan (requests, validators, manifest, ``write(dir)``)."""
    from ..compile import compile_plan as _compile

    return _compile(catalog, plan)


def evaluator(compiled: Any) -> Evaluator:
    """Validate a reply of a request with the validator the compiler attached to it."""
    from ..compile import evaluate_reply

    validators = compiled.validators

    def evaluate(request: Request, text: str) -> tuple[Verdict, ...]:
        return tuple(evaluate_reply(request, validators[request.validator], text))

    return evaluate


def derive(compiled: Any, catalog: Catalog, plan: PlanSpec, accepted: Sequence[dict[str, Any]],
           iteration: int) -> list[Request]:
    """MIns+_Iter: requests rephrasing the previous round's accepted rewrites (rows)."""
    from ..compile import derive_requests

    return list(derive_requests(compiled, catalog, plan.name, accepted, iteration))


def write_round(compiled: Any, directory: Path, iteration: int,
                requests: Sequence[Request]) -> None:
    """Keep a derived round's requests next to the compiled artifacts."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"requests.iter{iteration}.jsonl"
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for r in requests:
            fh.write(json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False) + "\n")


def skipped(compiled: Any) -> list[Any]:
    """What the compiler left out on purpose, with reasons (from its manifest)."""
    manifest = getattr(compiled, "manifest", None)
    if isinstance(manifest, dict):
        value = manifest.get("skipped", [])
        return list(value) if isinstance(value, list | tuple) else []
    return []
