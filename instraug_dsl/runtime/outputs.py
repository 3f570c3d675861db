"""The run directory's result rows, built from outcomes in request order.

Rows (:mod:`instraug_dsl.contract.run`) depend only on the requests and the (cached)
replies, never on completion order or timing, so an interrupted-and-resumed run writes
byte-identical JSONL files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from ..contract.compiled import Request
from ..contract.run import (
    FailedRow,
    InstructionRow,
    ReasonRow,
    RejectedRow,
    TaskTally,
    Totals,
)
from ..lang.model import Catalog
from .outcome import Outcome


def generated_id(request_id: str, attempt: int, index: int, template: str) -> str:
    """A stable id for an accepted rewrite: ``g-`` + 16 hex digits of a content hash."""
    blob = f"{request_id}\0{attempt}\0{index}\0{template}".encode()
    return "g-" + hashlib.sha256(blob).hexdigest()[:16]


def original_rows(catalog: Catalog, augmented_tasks: Iterable[str]) -> list[InstructionRow]:
    """Rows for the originals: every training task's plus every augmented task's, in order."""
    wanted = set(augmented_tasks)
    rows: list[InstructionRow] = []
    for task in catalog.tasks.values():
        if task.split != "train" and task.name not in wanted:
            continue
        for ins in task.instructions:
            ident = f"{task.name}/{ins.name}"
            rows.append(
                InstructionRow(
                    id=ident,
                    task=task.name,
                    kind="original",
                    template=ins.text,
                    body=ins.body_text,
                    root=ident,
                    iteration=0,
                )
            )
    return rows


def generated_rows(
    outcomes: Sequence[Outcome], rewrite_key: Callable[[Request, str], str] | None = None
) -> list[InstructionRow]:
    """One row per accepted rewrite, in request order (then candidate order).

    ``parent`` is the instruction a rewrite was made from: the original's id in round 0;
    in later rounds (MIns+_Iter) the row id of the rewrite that was rephrased, found through
    ``rewrite_key`` (the compiler's id of an accepted rewrite, which derived requests carry).
    """
    rows: list[InstructionRow] = []
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
                InstructionRow(
                    id=ident,
                    task=req.task,
                    kind="generated",
                    template=template,
                    body=body,
                    root=req.root,
                    parent=parent,
                    metaprompt=req.metaprompt,
                    temperature=req.temperature,
                    sample=req.sample,
                    attempt=last.number,
                    iteration=req.iteration,
                    model=out.model,
                    response_sha256=last.response_sha256,
                    request=req.id,
                )
            )
    return rows


def rejected_rows(outcomes: Sequence[Outcome]) -> list[RejectedRow]:
    """One row per rejected reply of every attempt of every request."""
    rows: list[RejectedRow] = []
    for out in outcomes:
        for att in out.attempts:
            bad = [v for v in att.verdicts if not v.accepted]
            if not bad:
                continue
            reasons = tuple(ReasonRow(r.code, r.detail) for v in bad for r in v.reasons)
            rows.append(
                RejectedRow(
                    request=out.request.id,
                    task=out.request.task,
                    text=att.reply,
                    reasons=reasons,
                    attempt=att.number,
                    iteration=out.request.iteration,
                    final_status=out.status,
                )
            )
    return rows


def failed_rows(outcomes: Sequence[Outcome]) -> list[FailedRow]:
    """One row per failed request with its last error."""
    return [
        FailedRow(
            request=o.request.id,
            task=o.request.task,
            error=o.error,
            kind=o.error_kind,
            attempts=o.tries,
            attempt=len(o.attempts) + 1,
            iteration=o.request.iteration,
        )
        for o in outcomes
        if o.status == "failed"
    ]


def tally(outcomes: Sequence[Outcome]) -> Totals:
    """Per-task and per-reason counts, the reconciliation and token/cost totals."""
    per_task: dict[str, dict[str, int]] = {}
    task_reasons: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = {}
    failures: dict[str, int] = {}
    for out in outcomes:
        task = out.request.task
        entry = per_task.setdefault(
            task, {"requests": 0, "accepted": 0, "rejected": 0, "failed": 0, "generated": 0}
        )
        mine = task_reasons.setdefault(task, {})
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
                    mine[reason.code] = mine.get(reason.code, 0) + 1
                    reasons[reason.code] = reasons.get(reason.code, 0) + 1
    counts = {
        s: sum(1 for o in outcomes if o.status == s) for s in ("accepted", "rejected", "failed")
    }
    return Totals(
        requests=len(outcomes),
        accepted=counts["accepted"],
        rejected=counts["rejected"],
        failed=counts["failed"],
        reconciled=sum(counts.values()) == len(outcomes),
        generated=sum(e["generated"] for e in per_task.values()),
        attempts=sum(len(o.attempts) for o in outcomes),
        per_task={
            name: TaskTally(**entry, reasons=dict(sorted(task_reasons[name].items())))
            for name, entry in sorted(per_task.items())
        },
        rejection_reasons=dict(sorted(reasons.items())),
        failure_kinds=dict(sorted(failures.items())),
        prompt_tokens=sum(o.prompt_tokens for o in outcomes),
        completion_tokens=sum(o.completion_tokens for o in outcomes),
        cost_usd=round(sum(o.cost_usd for o in outcomes), 6),
    )
