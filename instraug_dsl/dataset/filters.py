"""Corpus-level filters: from a run's accepted rewrites to the instruction pool per task.

The runtime writes every rewrite that passed its per-output validators; this module
decides which of them enter the dataset, per task, in a stable order:

1. rewrites of a task the declarations do not know (``unknown_task``) or of a held-out
   task (``held_out_task``) are dropped;
2. a rewrite whose template does not compile for its task (an undeclared slot, a stray
   brace) is dropped as ``invalid_template``: it is never rendered;
3. :func:`~instraug_dsl.dataset.rouge.near_dedup` drops copies of an original
   (``copy_of_original``), exact and whitespace/case-normalized duplicates, and rewrites
   whose ROUGE-L F1 against an original or an already kept rewrite exceeds the plan's
   ``dedup`` threshold (``rouge_l_near_duplicate``).

Every drop names the instruction it collided with.  The order is (iteration, root
original, temperature, meta-prompt, sample, attempt, id), so the same rewrites always
survive whatever order the runtime wrote them in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..contract.dataset import DropRow
from ..contract.run import InstructionRow
from ..lang.model import Catalog, TaskSpec
from .render import FormatError, RenderPlan, compile_template
from .rouge import near_dedup
from .run import Run


@dataclass(frozen=True, slots=True)
class Candidate:
    """An instruction that can be sampled: its compiled plan plus provenance."""

    id: str
    task: str
    kind: str  # "original" | "generated"
    plan: RenderPlan
    root: str
    metaprompt: str | None = None
    temperature: float | None = None
    model: str | None = None


@dataclass
class TaskPool:
    """A task's originals, the rewrites kept for it, and the rewrites dropped."""

    task: TaskSpec
    originals: list[Candidate]
    kept: list[Candidate] = field(default_factory=list)
    dropped: list[DropRow] = field(default_factory=list)
    accepted: int = 0  # rewrites of this task in instructions.jsonl


def original_candidates(task: TaskSpec) -> list[Candidate]:
    """The task's original instructions compiled from their ``.iat`` pieces (with their own
    target templates, if any)."""
    out = []
    for ins in task.instructions:
        ident = f"{task.name}/{ins.name}"
        plan = compile_template(ins.pieces, task, ins.target)
        out.append(Candidate(ident, task.name, "original", plan, ident))
    return out


def _order_key(row: InstructionRow, roots: dict[str, int]) -> tuple[Any, ...]:
    return (
        row.iteration or 0,
        roots.get(row.root or "", len(roots)),
        row.root or "",
        row.temperature if row.temperature is not None else -1.0,
        row.metaprompt or "",
        row.sample or 0,
        row.attempt or 0,
        row.id,
    )


def _filter_task(pool: TaskPool, rows: list[InstructionRow], threshold: float) -> None:
    roots = {c.id: i for i, c in enumerate(pool.originals)}
    # a rewrite keeps the target template of the original it descends from
    targets = {f"{pool.task.name}/{ins.name}": ins.target for ins in pool.task.instructions}
    rows = sorted(rows, key=lambda r: _order_key(r, roots))
    valid: list[tuple[InstructionRow, RenderPlan]] = []
    for row in rows:
        try:
            target = targets.get(row.root or "")
            valid.append((row, compile_template(row.template, pool.task, target)))
        except FormatError as exc:
            pool.dropped.append(
                DropRow(row.id, row.task, "invalid_template", row.template, detail=str(exc))
            )
    references = [c.plan.text for c in pool.originals]
    result = near_dedup([plan.text for _, plan in valid], references, threshold)
    for i in result.kept:
        row, plan = valid[i]
        pool.kept.append(
            Candidate(
                row.id,
                row.task,
                "generated",
                plan,
                row.root or "",
                row.metaprompt,
                row.temperature,
                row.model,
            )
        )
    for drop in result.dropped:
        row, plan = valid[drop.index]
        side, _, number = drop.collided_with.partition(":")
        if side == "original":
            other = pool.originals[int(number)]
            other_id, other_text = other.id, other.plan.text
        else:
            other_row, other_plan = valid[int(number)]
            other_id, other_text = other_row.id, other_plan.text
        pool.dropped.append(
            DropRow(row.id, row.task, drop.reason, plan.text, other_id, other_text, drop.score)
        )


def build_pools(
    catalog: Catalog, rows: Iterable[InstructionRow], threshold: float
) -> tuple[dict[str, TaskPool], list[DropRow]]:
    """Filter the generated rows of a run into one :class:`TaskPool` per catalog task.

    Returns the pools (catalog order) and every drop in a stable order (task, then the
    order above).  Original rows of the run are ignored: the ``.iat`` originals are
    authoritative.  Raises :class:`FormatError` only for an unusable ``each`` format in the
    declarations (an error of the ``.iat`` files, not of the run).
    """
    pools = {
        name: TaskPool(spec, original_candidates(spec)) for name, spec in catalog.tasks.items()
    }
    by_task: dict[str, list[InstructionRow]] = {}
    stray: list[DropRow] = []
    for row in rows:
        if row.kind != "generated":
            continue
        pool = pools.get(row.task)
        if pool is None:
            stray.append(
                DropRow(
                    row.id,
                    row.task,
                    "unknown_task",
                    row.template,
                    detail=f"task `{row.task}` is not declared",
                )
            )
            continue
        pool.accepted += 1
        if pool.task.split == "test":
            pool.dropped.append(
                DropRow(
                    row.id,
                    row.task,
                    "held_out_task",
                    row.template,
                    detail="held-out tasks never enter training data",
                )
            )
            continue
        by_task.setdefault(row.task, []).append(row)
    for name, task_rows in by_task.items():
        _filter_task(pools[name], task_rows, threshold)
    drops = [d for pool in pools.values() for d in pool.dropped]
    return pools, drops + sorted(stray, key=lambda d: (d.task, d.id))


def run_pools(run: Run) -> tuple[dict[str, TaskPool], list[DropRow]]:
    """:func:`build_pools` with the run's catalog, rows and dedup threshold."""
    return build_pools(run.catalog, run.instructions, run.dedup_threshold)
