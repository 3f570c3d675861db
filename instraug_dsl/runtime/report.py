"""Human-facing reports of a run: the per-task summary table and the dry-run listing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from ..contract.compiled import Request
from ..contract.run import Summary
from .estimate import Estimate


def summary_table(summary: Summary, stream: TextIO) -> None:
    """Print one row per task (requests, accepted, rejected, failed, rewrites) and totals."""
    from rich.console import Console
    from rich.table import Table

    totals = summary.totals
    table = Table(
        title=f"iatc augment: plan {summary.plan} on {summary.model}", title_justify="left"
    )
    for column in ("task", "requests", "accepted", "rejected", "failed", "rewrites"):
        table.add_column(column, justify="left" if column == "task" else "right")
    table.add_column("top rejection", justify="left")
    for task, row in totals.per_task.items():
        reasons = row.reasons
        top = max(reasons.items(), key=lambda kv: (kv[1], kv[0]))[0] if reasons else ""
        table.add_row(
            task,
            str(row.requests),
            str(row.accepted),
            str(row.rejected),
            str(row.failed),
            str(row.generated),
            top,
        )
    table.add_row(
        "[bold]total",
        str(totals.requests),
        str(totals.accepted),
        str(totals.rejected),
        str(totals.failed),
        str(totals.generated),
        "",
    )
    console = Console(file=stream, width=max(100, Console(file=stream).width))
    console.print(table)
    run = summary.run
    console.print(
        f"{summary.reconciliation}; tokens {totals.prompt_tokens} prompt + "
        f"{totals.completion_tokens} completion; cost ${totals.cost_usd:.4f} "
        f"(spent now ${run.spent_usd:.4f}); {run.calls_made} calls made, "
        f"{run.cache_hits} from cache; {run.wall_time_s:.1f} s",
        highlight=False,
        markup=False,
    )
    judge = summary.judge
    if judge is not None:
        per_task = ", ".join(
            f"{task} {row.judged_out}" for task, row in judge.per_task.items() if row.judged_out
        )
        console.print(
            f"judge {judge.name} on {judge.model} (threshold {judge.threshold:g}): "
            f"{judge.reconciliation}"
            + (f"; judged out per task: {per_task}" if per_task else "")
            + f"; {run.judge_calls_made} judge calls made, {run.judge_cache_hits} from cache; "
            f"{run.judge_wall_time_s:.1f} s",
            highlight=False,
            markup=False,
        )
    if run.stopped == "budget" and run.budget_usd is not None:
        console.print(
            f"stopped at the budget of ${run.budget_usd:g}: run again with a higher "
            "--budget to finish (completed calls are cached)",
            markup=False,
        )


def dry_run_listing(
    requests: Sequence[Request],
    model: str,
    estimate: Estimate,
    show: int,
    compiled: int,
    stream: TextIO,
) -> None:
    """What ``--dry-run`` prints: the first ``show`` requests' messages, then totals."""
    write = stream.write
    for request in requests[:show]:
        write(
            f"=== request {request.id}  task {request.task}  {request.instruction}  "
            f"meta-prompt {request.metaprompt}  temperature {request.temperature:g}  "
            f"sample {request.sample}  seed {request.seed}\n"
        )
        for message in request.messages:
            write(f"--- {message.role}\n{message.content}\n")
    if len(requests) > show:
        write(f"... and {len(requests) - show} more requests\n")
    per_task = Counter(r.task for r in requests)
    temps = sorted({r.temperature for r in requests})
    write(
        f"\nmodel {model}: {len(requests)} requests (of {compiled} compiled) over "
        f"{len(per_task)} tasks, temperatures {', '.join(f'{t:g}' for t in temps)}\n"
    )
    write(
        f"estimated {estimate.prompt_tokens} prompt + {estimate.completion_tokens} completion "
        f"tokens, ${estimate.cost_usd:.4f} for one attempt of each of the {estimate.requests} "
        "requests; nothing was sent\n"
    )
