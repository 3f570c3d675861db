"""``iatc augment --executor ray``: the parts of a run as Ray tasks.

The same design as ``--workers N`` (`parts.run_workers`), with Ray as the process
runner, for a cluster whose nodes share no file system with the driver:

* what travels to each task: the compiled catalog snapshot (``compiled/catalog.json`` as
  data), the options (model, endpoint, key, budget share), the part ``I/N`` and, unless
  ``--fresh``, a copy of the run's ``cache.sqlite`` (put in Ray's object store once, so a
  resumed run repeats no call it already made);
* each task runs `parts.run_part` (its requests, every round, the judge) into its own
  cache file in a temporary folder on its node, and returns the calls it stored (a cache
  file's bytes) with its counts; nothing else is written on the nodes;
* the driver absorbs every task's calls into ``RUN/cache.sqlite`` and then replays the run
  from that cache with a cache-only engine, as with ``--workers``: the files written are
  byte-identical to one process's run.

Ray is imported inside these functions only (the ``[ray]`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cluster import cluster_cpus, ray_session, task_error
from ..contract.compiled import CatalogSnapshot, read_snapshot
from ..contract.run import RunDir
from .cache import CallCache
from .parts import WorkerFacts, part_options, report_part, run_part, sum_facts
from .rounds import AugmentOptions
from .shards import Shard


async def run_on_ray(
    run: RunDir,
    options: AugmentOptions,
    cache: CallCache,
    notify: Callable[[str], None] | None,
) -> WorkerFacts:
    """Run the parts of ``run`` as Ray tasks and absorb their calls into ``cache`` (the
    run's own, open in this process); the caller then replays the run from it."""
    snapshot = read_snapshot(run.compiled)
    with ray_session(options.ray_address, cpus=options.workers or None) as ray:
        count = options.workers or cluster_cpus(ray)
        each = part_options(options, count)
        where = options.ray_address or "a local Ray instance"
        if notify is not None:
            notify(f"{count} Ray tasks on {where}")
        with tempfile.TemporaryDirectory(prefix="iatc-ray-") as scratch:
            base = None
            if not options.fresh and len(cache):
                copy = Path(scratch) / "base.sqlite"
                cache.copy_to(copy)
                base = ray.put(copy.read_bytes())
            remote = ray.remote(max_retries=0)(_ray_part)
            parts = [Shard(i, count) for i in range(1, count + 1)]
            refs = [remote.remote(snapshot, each, part, base) for part in parts]
            try:
                waits = [
                    _collect(ray, ref, part, cache, Path(scratch), notify)
                    for ref, part in zip(refs, parts, strict=True)
                ]
                done = await asyncio.gather(
                    *waits,
                    return_exceptions=True,
                )
            except BaseException:
                for ref in refs:  # an interrupted driver leaves nothing running on a cluster
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)
                raise
    return sum_facts(done)


async def _collect(
    ray: Any,
    ref: Any,
    part: Shard,
    cache: CallCache,
    scratch: Path,
    notify: Callable[[str], None] | None,
) -> WorkerFacts:
    """Wait for one task; absorb the calls it returns into the run's cache."""
    try:
        facts, calls = await ref
    except Exception as exc:
        raise task_error(ray, exc) from None
    received = scratch / f"part-{part.index}.sqlite"
    received.write_bytes(calls)
    cache.absorb(received)
    received.unlink()
    report_part(notify, "Ray task", part, facts)
    assert isinstance(facts, WorkerFacts)
    return facts


def _ray_part(
    snapshot: CatalogSnapshot, options: AugmentOptions, part: Shard, base: bytes | None
) -> tuple[WorkerFacts, bytes]:
    """One Ray task, on any node: its part of the run into a cache of its own (started from
    the run's cache ``base``); returns its counts and the calls it stored."""
    with tempfile.TemporaryDirectory(prefix="iatc-part-") as folder:
        path, made = Path(folder) / "cache.sqlite", Path(folder) / "made.sqlite"
        if base is not None:
            path.write_bytes(base)
        with CallCache(path, fresh=options.fresh) as cache:
            mark = cache.last_row()
            facts = run_part(snapshot.catalog(), options, part, cache)
            cache.copy_to(made, after=mark)
        return facts, made.read_bytes()
