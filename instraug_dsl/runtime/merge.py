"""``iatc merge``: the shard run directories of one run, put back together.

The shards (``iatc augment --shard I/N``, made on any machines) must come from the same
compiled plan, with the same model and options, and cover ``1/N`` .. ``N/N`` once each.  The
merged run directory is built in a staging folder next to the output and renamed into
place only when complete:

1. the compiled plan is copied from the first shard (all must be byte-identical);
2. the shards' call caches are unioned into one (a call of the same key is the same call);
3. the run is replayed from that cache by a cache-only engine (`EngineConfig.cache_only`:
   nothing is sent), which writes ``instructions.jsonl``, ``rejected.jsonl``,
   ``failed.jsonl``, ``judged.jsonl`` and the derived rounds exactly as one unsharded run
   writes them;
4. a call the replay needed and no shard had (a shard stopped early) is an error naming the
   shard to run again (it resumes), and nothing is written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..contract.compiled import CATALOG, MANIFEST, REQUESTS, VALIDATORS, read_snapshot
from ..contract.run import EstimateFacts, RunDir, Summary, read_summary, write_summary
from ..errors import DataError, OutputError, UsageError
from ..fsio import describe_os_error, sha256_file
from ..lang.check import NO_JUDGE
from .augment import AugmentOptions, AugmentResult, augment_async
from .cache import CallCache
from .engine import EngineConfig, Reask
from .lock import RunLock
from .progress import Progress
from .shards import Shard, shard_of

#: The compiled files every shard must share, byte for byte.
_SHARED = (REQUESTS, VALIDATORS, MANIFEST, CATALOG)


async def merge_async(
    inputs: Sequence[Path], out: Path, progress: Progress | None = None
) -> AugmentResult:
    """Merge the shard run directories ``inputs`` into the new run directory ``out``."""
    started = time.monotonic()
    runs = [RunDir(Path(p)) for p in inputs]
    if not runs:
        raise UsageError("iatc merge needs the run directories of the shards")
    _check_output(out, runs)
    summaries = [_finished(run) for run in runs]
    _same_plan(runs, summaries)
    _cover(runs, summaries)

    staging = out.parent / f".{out.name}.merging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        merged = RunDir(staging)
        (merged.compiled).mkdir(parents=True)
        for name in _SHARED:
            shutil.copyfile(runs[0].compiled / name, merged.compiled / name)
        with CallCache(merged.cache) as cache:
            for run in runs:
                with RunLock(run.lock):  # no shard is being written while its cache is read
                    cache.absorb(run.cache)
        result = await augment_async(
            read_snapshot(merged.compiled).catalog(),
            staging,
            _replay_options(summaries[0]),
            progress,
        )
        _missing(result, summaries)
        # The replay compiled the plan again from the snapshot; it must be the shards' plan
        # (then the shards' own files, which carry the sources' hashes, go back in place).
        if sha256_file(merged.compiled / REQUESTS) != sha256_file(runs[0].compiled / REQUESTS):
            raise DataError(
                f"{runs[0].compiled}: the catalog snapshot does not compile to the requests "
                "the shards ran (a bug in iatc, or files edited by hand)"
            )
        for name in _SHARED:
            shutil.copyfile(runs[0].compiled / name, merged.compiled / name)
        summary = _merged_summary(result.summary, runs, summaries, time.monotonic() - started)
        write_summary(merged.summary, summary)
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return replace(result, run_dir=out, summary=summary)


def _check_output(out: Path, runs: Sequence[RunDir]) -> None:
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise OutputError(f"{out} exists; iatc merge writes a new run directory: choose a new -o")
    target = out.resolve()
    for run in runs:
        if run.root.resolve() == target:
            raise UsageError(f"{run.root} is both a shard and the output")


def _finished(run: RunDir) -> Summary:
    """The shard's summary; a folder that is not a finished run directory is refused."""
    if not run.root.is_dir():
        raise UsageError(f"{run.root}: no such run directory")
    if not run.summary.is_file() or not run.cache.is_file():
        raise UsageError(
            f"{run.root} is not a finished iatc run directory (no summary.json or "
            "cache.sqlite): run its `iatc augment --shard I/N` to the end first"
        )
    return read_summary(run.summary)


def _same_plan(runs: Sequence[RunDir], summaries: Sequence[Summary]) -> None:
    """Every shard ran the same compiled plan with the same model and options."""
    first, head = runs[0], summaries[0]
    for name in _SHARED:
        digest = sha256_file(first.compiled / name)
        for run in runs[1:]:
            if sha256_file(run.compiled / name) != digest:
                raise DataError(
                    f"{run.root} and {first.root} are not shards of one run: their "
                    f"compiled/{name} differ (other sources, plan or iatc version)"
                )

    def facts(s: Summary) -> dict[str, object]:
        return {
            "plan": s.plan,
            "model": s.model,
            "--tasks": s.selection.tasks,
            "--limit": s.selection.limit,
            "--constrain": s.run.constrain,
            "re-ask mode": s.run.reask,
            "judge": s.judge.name if s.judge else None,
            "--api-base (given or not)": s.api_base is not None,
        }

    want = facts(head)
    for run, summary in zip(runs[1:], summaries[1:], strict=True):
        for what, value in facts(summary).items():
            if value != want[what]:
                raise DataError(
                    f"{run.root} and {first.root} are not shards of one run: {what} "
                    f"{value!r} vs {want[what]!r}"
                )


def _cover(runs: Sequence[RunDir], summaries: Sequence[Summary]) -> None:
    """The shards are ``1/N`` .. ``N/N``, once each."""
    shards: dict[int, RunDir] = {}
    count = None
    for run, summary in zip(runs, summaries, strict=True):
        if summary.selection.shard is None:
            raise UsageError(
                f"{run.root} was not made with --shard: iatc merge takes the run directories "
                "of `iatc augment --shard I/N`"
            )
        shard = Shard.parse(summary.selection.shard)
        if count is not None and shard.count != count:
            raise DataError(f"{run.root} is shard {shard}, the others are of {count}")
        count = shard.count
        if shard.index in shards:
            raise UsageError(f"{run.root} and {shards[shard.index].root} are both shard {shard}")
        shards[shard.index] = run
    assert count is not None
    absent = [f"{i}/{count}" for i in range(1, count + 1) if i not in shards]
    if absent:
        raise UsageError(f"shards missing: {', '.join(absent)} (every shard of {count} is needed)")


def _replay_options(summary: Summary) -> AugmentOptions:
    """Options that make the same calls the shards made (the same keys), sending none."""
    engine = EngineConfig(
        model=summary.model,
        # Only tells which decoding constraint fields were sent (part of a call's key);
        # nothing is sent anywhere.
        api_base=summary.api_base,
        constrain="off" if summary.run.constrain == "off" else "auto",
        reask=_reask(summary.run.reask),
        cache_only=True,
    )
    return AugmentOptions(
        plan=summary.plan,
        engine=engine,
        tasks=summary.selection.tasks,
        limit=summary.selection.limit,
        force=True,
        judge=summary.judge.name if summary.judge else NO_JUDGE,
    )


def _reask(value: str) -> Reask:
    if value in ("auto", "correct", "resample"):
        return value  # type: ignore[return-value]
    raise DataError(f"summary.json: unknown re-ask mode {value!r}")


def _missing(result: AugmentResult, summaries: Sequence[Summary]) -> None:
    """Refuse a merge that lacks calls: name the shard to run again."""
    if not result.missing and not result.missing_judge:
        return
    count = Shard.parse(summaries[0].selection.shard or "1/1").count
    shards = sorted(
        {shard_of(m.request.id, count) for m in result.missing if m.request.iteration == 0}
    )
    where = (
        "shard " + ", ".join(f"{i}/{count}" for i in shards)
        if shards
        else "a later round or the judge"
    )
    first = result.missing[0] if result.missing else None
    example = f" (first: request {first.request.id}, attempt {first.attempt})" if first else ""
    raise DataError(
        f"the shards do not hold every call of the run: {len(result.missing)} calls and "
        f"{result.missing_judge} judge calls are missing{example}, from {where}. Run that "
        "shard's `iatc augment ... --shard I/N` again (it resumes and makes only what is "
        "missing), then merge again"
    )


def _merged_summary(
    summary: Summary, runs: Sequence[RunDir], summaries: Sequence[Summary], wall: float
) -> Summary:
    """The replay's summary with the shards' own facts: the calls they made and paid for."""
    facts = replace(
        summary.run,
        wall_time_s=round(wall, 3),
        calls_made=sum(s.run.calls_made for s in summaries),
        cache_hits=sum(s.run.cache_hits for s in summaries),
        spent_usd=round(sum(s.run.spent_usd for s in summaries), 6),
        stopped=next((s.run.stopped for s in summaries if s.run.stopped), None),
        judge_calls_made=sum(s.run.judge_calls_made for s in summaries),
        judge_cache_hits=sum(s.run.judge_cache_hits for s in summaries),
        estimate=EstimateFacts(
            sum(s.run.estimate.requests for s in summaries),
            sum(s.run.estimate.prompt_tokens for s in summaries),
            sum(s.run.estimate.completion_tokens for s in summaries),
            round(sum(s.run.estimate.cost_usd for s in summaries), 6),
        ),
        concurrency=max(s.run.concurrency for s in summaries),
        constrain=summaries[0].run.constrain,
        reask=summaries[0].run.reask,
        workers=max(s.run.workers for s in summaries),
        merged_from=tuple(run.root.name for run in runs),
    )
    return replace(summary, api_base=summaries[0].api_base, run=facts)


def _move_into_place(staging: Path, out: Path) -> None:
    (staging / "lock").unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        out.rmdir()  # an empty folder given as -o
    try:
        staging.rename(out)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {describe_os_error(exc)}") from None
