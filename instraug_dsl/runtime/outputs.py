"""The run directory's result files, built from outcomes in request order.

Files (a contract with the dataset stage; names and fields are stable):

* ``instructions.jsonl`` -- every original instruction of the training tasks and of the tasks
  that were augmented (``kind: "original"``), then every accepted rewrite (``"generated"``).
* ``rejected.jsonl`` -- one row per rejected reply of every attempt, with every reason.
* ``failed.jsonl`` -- one row per request that could not be completed.
* ``summary.json`` -- counts, reconciliation, tokens, cost, versions.

Rows depend only on the requests and the (cached) replies, never on completion order or
timing, so an interrupted-and-resumed run writes byte-identical JSONL files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..contract.compiled import Request
from ..lang.model import Catalog
from .outcome import Outcome

Row = dict[str, Any]


def generated_id(request_id: str, attempt: int, index: int, template: str) -> str:
    """A stable id for an accepted rewrite: ``g-`` + 16 hex digits of a content hash."""
    blob = f"{request_id}\0{attempt}\0{index}\0{template}".encode()
    return "g-" + hashlib.sha256(blob).hexdigest()[:16]


def original_rows(catalog: Catalog, augmented_tasks: Iterable[str]) -> list[Row]:
    """Rows for the originals: every training task's plus every augmented task's, in order."""
    wanted = set(augmented_tasks)
    rows: list[Row] = []
    for task in catalog.tasks.values():
        if task.split != "train" and task.name not in wanted:
            continue
        for ins in task.instructions:
            ident = f"{task.name}/{ins.name}"
            rows.append(
                {
                    "id": ident,
                    "task": task.name,
                    "kind": "original",
                    "template": ins.text,
                    "body": ins.body_text,
                    "root": ident,
                    "parent": None,
                    "metaprompt": None,
                    "temperature": None,
                    "sample": None,
                    "attempt": None,
                    "iteration": 0,
                    "model": None,
                    "response_sha256": None,
                    "request": None,
                }
            )
    return rows


def generated_rows(
    outcomes: Sequence[Outcome], rewrite_key: Callable[[Request, str], str] | None = None
) -> list[Row]:
    """One row per accepted rewrite, in request order (then candidate order).

    ``parent`` is the instruction a rewrite was made from: the original's id in round 0;
    in later rounds (MIns+_Iter) the row id of the rewrite that was rephrased, found through
    ``rewrite_key`` (the compiler's id of an accepted rewrite, which derived requests carry).
    """
    rows: list[Row] = []
    lineage: dict[str, str] = {}
    for out in outcomes:
        if out.status != "accepted":
            continue
        last = out.attempts[-1]
        req = out.request
        for index, verdict in enumerate(last.accepted):
            body = verdict.restored or ""
            template = req.lead + body + req.trail
            ident = generated_id(req.id, last.number, index, template)
            if rewrite_key is not None:
                lineage.setdefault(rewrite_key(req, body), ident)
            parent = lineage.get(req.parent, req.parent) if req.parent else req.instruction
            rows.append(
                {
                    "id": ident,
                    "task": req.task,
                    "kind": "generated",
                    "template": template,
                    "body": body,
                    "root": req.root,
                    "parent": parent,
                    "metaprompt": req.metaprompt,
                    "temperature": req.temperature,
                    "sample": req.sample,
                    "attempt": last.number,
                    "iteration": req.iteration,
                    "model": out.model,
                    "response_sha256": last.response_sha256,
                    "request": req.id,
                }
            )
    return rows


def rejected_rows(outcomes: Sequence[Outcome]) -> list[Row]:
    """One row per rejected reply candidate of every attempt of every request."""
    rows: list[Row] = []
    for out in outcomes:
        for att in out.attempts:
            bad = [v for v in att.verdicts if not v.accepted]
            if not bad:
                continue
            reasons = [{"code": r.code, "detail": r.detail} for v in bad for r in v.reasons]
            rows.append(
                {
                    "request": out.request.id,
                    "task": out.request.task,
                    "text": att.reply,
                    "reasons": reasons,
                    "attempt": att.number,
                    "iteration": out.request.iteration,
                    "final_status": out.status,
                }
            )
    return rows


def failed_rows(outcomes: Sequence[Outcome]) -> list[Row]:
    """One row per failed request with its last error."""
    return [
        {
            "request": o.request.id,
            "task": o.request.task,
            "error": o.error,
            "kind": o.error_kind,
            "attempts": o.tries,
            "attempt": len(o.attempts) + 1,
            "iteration": o.request.iteration,
        }
        for o in outcomes
        if o.status == "failed"
    ]


def dumps_row(row: Row) -> str:
    """One JSONL line: sorted keys, UTF-8 kept readable."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def write_jsonl(path: Path, rows: Iterable[Row]) -> int:
    """Write rows atomically (temp file + rename); returns the row count."""
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(dumps_row(row) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def write_json(path: Path, data: Any) -> None:
    """Write pretty JSON atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    os.replace(tmp, path)


def tally(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Per-task and per-reason counts, the reconciliation and token/cost totals."""
    per_task: dict[str, dict[str, Any]] = {}
    reasons: dict[str, int] = {}
    failures: dict[str, int] = {}
    for out in outcomes:
        entry = per_task.setdefault(
            out.request.task,
            {
                "requests": 0,
                "accepted": 0,
                "rejected": 0,
                "failed": 0,
                "generated": 0,
                "reasons": {},
            },
        )
        entry["requests"] += 1
        entry[out.status] += 1
        if out.status == "accepted":
            entry["generated"] += len(out.attempts[-1].accepted)
        if out.status == "failed":
            kind = out.error_kind or "unknown"
            failures[kind] = failures.get(kind, 0) + 1
        for att in out.attempts:
            for verdict in att.verdicts:
                for reason in verdict.reasons:
                    entry["reasons"][reason.code] = entry["reasons"].get(reason.code, 0) + 1
                    reasons[reason.code] = reasons.get(reason.code, 0) + 1
    n = len(outcomes)
    counts = {
        s: sum(1 for o in outcomes if o.status == s) for s in ("accepted", "rejected", "failed")
    }
    return {
        "requests": n,
        **counts,
        "reconciled": counts["accepted"] + counts["rejected"] + counts["failed"] == n,
        "generated": sum(e["generated"] for e in per_task.values()),
        "attempts": sum(len(o.attempts) for o in outcomes),
        "per_task": dict(sorted(per_task.items())),
        "rejection_reasons": dict(sorted(reasons.items())),
        "failure_kinds": dict(sorted(failures.items())),
        "prompt_tokens": sum(o.prompt_tokens for o in outcomes),
        "completion_tokens": sum(o.completion_tokens for o in outcomes),
        "cost_usd": round(sum(o.cost_usd for o in outcomes), 6),
    }
