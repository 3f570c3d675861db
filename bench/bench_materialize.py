"""Benchmark: materialization throughput and memory (instraug_dsl.dataset.materialize).

(a) Throughput of the sampling + rendering stage over pre-parsed records, ours (compiled
    render plans, :class:`TaskRenderer` + ``assemble``) against the BASELINE below, which does
    what the reference code does: build an f-string from the instruction template and
    ``eval`` it per instance.  The baseline runs only here, only on our own synthetic,
    trusted data.  Also end-to-end ``materialize()`` (JSON parsing and writing included) for
    context.
(c) Peak RSS of a child process materializing 10K vs 1M instances (streaming: the ratio
    should stay close to 1).

Instances are synthesized from the training samples of shared/data/multiinstruct_samples.jsonl
(``unique_id`` made unique), tasks come from templates/multiinstruct, and each task gets
three synthetic rewrites per original so the pools look like a real run.  ((b), ROUGE-L,
is bench/bench_rouge.py.)

Run: ``python bench/bench_materialize.py [--quick] [--n 20000] [--big 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instraug_dsl.dataset.filters import run_pools  # noqa: E402
from instraug_dsl.dataset.materialize import MaterializeOptions, materialize  # noqa: E402
from instraug_dsl.dataset.records import MISSING, TaskIndex, lookup  # noqa: E402
from instraug_dsl.dataset.render import TaskRenderer, render_target  # noqa: E402
from instraug_dsl.dataset.run import Run, load_run  # noqa: E402
from instraug_dsl.dataset.sampling import Sampler  # noqa: E402
from instraug_dsl.model import TaskSpec  # noqa: E402

SAMPLES = ROOT.parent / "shared" / "data" / "multiinstruct_samples.jsonl"
LIBRARY = ROOT / "templates" / "multiinstruct"
PREFIXES = ("Please do the following. ", "Task: ", "Read carefully. ")


def make_run(tmp: Path) -> Run:
    """A run directory with three synthetic rewrites per original of every training task."""
    from instraug_dsl.api import load_catalog

    catalog = load_catalog([LIBRARY])
    rows = []
    for task in catalog.tasks.values():
        if task.split != "train" or not task.augment:
            continue
        for ins in task.instructions:
            for k, prefix in enumerate(PREFIXES):
                rows.append(
                    {
                        "id": f"g-{task.name}-{ins.name}-{k}",
                        "task": task.name,
                        "kind": "generated",
                        "template": prefix + ins.text + f" (variant {k} of {ins.name})",
                        "root": f"{task.name}/{ins.name}",
                        "metaprompt": "direct",
                        "temperature": 0.6,
                        "sample": k,
                        "attempt": 0,
                        "iteration": 0,
                        "model": "bench",
                    }
                )
    run_dir = tmp / "run"
    run_dir.mkdir()
    with (run_dir / "instructions.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return load_run(run_dir, [LIBRARY])


def train_samples() -> list[dict[str, Any]]:
    records = [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]
    return [r for r in records if r["split"] == "train"]


def write_instances(path: Path, n: int, samples: list[dict[str, Any]]) -> None:
    with path.open("w") as fh:
        for i in range(n):
            rec = dict(samples[i % len(samples)])
            rec["unique_id"] = f"{rec['unique_id']}#{i}"
            fh.write(json.dumps(rec) + "\n")


# ------------------------------------------------------------------------- BASELINE
# The reference approach, reproduced for measurement only: compute the placeholder values with
# plain Python, then turn the instruction into an f-string and eval it for every instance.
# NEVER do this outside this benchmark: eval executes whatever the (LLM-written) text says.


def _baseline_values(task: TaskSpec, rec: dict[str, Any], rng: random.Random) -> dict[str, str]:
    values: dict[str, str] = {}
    for slot in task.slots:
        if slot.source is None:
            values[slot.name] = slot.const_value or ""
            continue
        value = lookup(rec, slot.source)
        if not value and slot.default is not None:
            values[slot.name] = slot.default
        elif slot.each is not None:
            fmt = slot.each.value
            if isinstance(value, dict) and ("{key" in fmt or "{value" in fmt):
                parts = [fmt.format(key=k, value=v) for k, v in value.items()]
            elif isinstance(value, dict):
                parts = [fmt.format(**value)]
            else:
                parts = [fmt.format(**e) for e in value or []]
            values[slot.name] = slot.sep.join(parts)
        elif slot.base == "choices":
            options = list(value) if value else []
            rng.shuffle(options)
            values[slot.name] = slot.prefix + slot.sep.join(options)
        elif isinstance(value, list):
            values[slot.name] = slot.sep.join(str(x) for x in value)
        else:
            values[slot.name] = "" if value is MISSING or value is None else str(value)
    return values


def baseline_render(template: str, values: dict[str, str]) -> str:
    """BASELINE ONLY: f-string + eval, as the reference code renders instructions."""
    return eval("f" + repr(template), {}, values)  # noqa: S307 - the measured baseline


# ------------------------------------------------------------------------- measurements


def time_ours(run: Run, records: list[dict[str, Any]], seed: int) -> tuple[float, list[str]]:
    pools, _ = run_pools(run)
    train = {n: p for n, p in pools.items() if p.task.split != "test"}
    renderers = {n: TaskRenderer([c.plan for c in p.originals + p.kept]) for n, p in train.items()}
    sampler = Sampler(train, seed=seed)
    index = TaskIndex(run.catalog.tasks)
    out = []
    start = time.perf_counter()
    for rec in records:
        task = index.match(rec)
        assert task is not None
        choice = sampler.choose(task.name)
        plan = choice.candidate.plan
        rng = sampler.rng(task.name)
        out.append(renderers[task.name].render(plan, rec, rng, shuffle_options=True))
        render_target(choice.candidate.plan, rec)
    return time.perf_counter() - start, out


def time_baseline(run: Run, records: list[dict[str, Any]], seed: int) -> float:
    pools, _ = run_pools(run)
    train = {n: p for n, p in pools.items() if p.task.split != "test"}
    sampler = Sampler(train, seed=seed)
    index = TaskIndex(run.catalog.tasks)
    start = time.perf_counter()
    for rec in records:
        task = index.match(rec)
        assert task is not None
        choice = sampler.choose(task.name)
        values = _baseline_values(task, rec, sampler.rng(task.name))
        baseline_render(choice.candidate.plan.text, values)
        str(rec.get("target"))
    return time.perf_counter() - start


def peak_rss_mb(run_dir: Path, instances: Path, out: Path) -> tuple[float, float]:
    """Peak RSS (MB) and wall time of a child process running materialize()."""
    code = (
        "import resource, sys, time; from pathlib import Path\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from instraug_dsl.dataset.run import load_run\n"
        "from instraug_dsl.dataset.materialize import MaterializeOptions, materialize\n"
        f"run = load_run(Path({str(run_dir)!r}), [Path({str(LIBRARY)!r})])\n"
        "t = time.perf_counter()\n"
        f"materialize(run, Path({str(instances)!r}), Path({str(out)!r}), MaterializeOptions())\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    seconds, kib = done.stdout.split()
    return int(kib) / 1024, float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="records for the throughput runs")
    parser.add_argument("--small", type=int, default=10_000, help="records of the small RSS run")
    parser.add_argument("--big", type=int, default=1_000_000, help="records of the big RSS run")
    parser.add_argument("--quick", action="store_true", help="n=5000, big=100000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.n, args.big = 5_000, 100_000
    if not SAMPLES.is_file():
        sys.exit(f"shared data not found at {SAMPLES}")
    samples = train_samples()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        run = make_run(tmp)
        records = [dict(samples[i % len(samples)], unique_id=f"u{i}") for i in range(args.n)]
        print(
            f"(a) sampling + rendering, {args.n} pre-parsed records, {len(run.instructions)} rewrites"
        )
        ours_t, _ = time_ours(run, records, args.seed)
        base_t = time_baseline(run, records, args.seed)
        print(f"    ours (compiled plans)     {args.n / ours_t:12,.0f} records/s")
        print(f"    baseline (f-string eval)  {args.n / base_t:12,.0f} records/s")
        print(f"    speed-up                  {base_t / ours_t:12.1f}x")
        inst = tmp / "inst.jsonl"
        write_instances(inst, args.n, samples)
        start = time.perf_counter()
        materialize(run, inst, tmp / "e2e", MaterializeOptions(seed=args.seed))
        e2e = time.perf_counter() - start
        print(f"    end-to-end materialize()  {args.n / e2e:12,.0f} records/s (JSON in and out)")

        print(f"(c) peak RSS of a child materializing {args.small:,} vs {args.big:,} records")
        small, big = tmp / "small.jsonl", tmp / "big.jsonl"
        write_instances(small, args.small, samples)
        write_instances(big, args.big, samples)
        rss_small, t_small = peak_rss_mb(run.path, small, tmp / "o_small")
        rss_big, t_big = peak_rss_mb(run.path, big, tmp / "o_big")
        print(f"    {args.small:>9,} records  {rss_small:8.1f} MB  {t_small:7.1f} s")
        print(
            f"    {args.big:>9,} records  {rss_big:8.1f} MB  {t_big:7.1f} s  ({args.big / t_big:,.0f} records/s)"
        )
        print(f"    RSS ratio big/small       {rss_big / rss_small:12.2f}x")
        print(
            f"    parent peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
        )


if __name__ == "__main__":
    main()
