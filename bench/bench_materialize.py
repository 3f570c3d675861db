"""Benchmark: materialization throughput and memory (instraug_dsl.dataset.materialize).

(a) Throughput of the sample-and-render stage over pre-parsed records: ours (compiled render
    plans, :meth:`TaskRenderer.render`) against two BASELINES, both measured in the same run:

    * ``reference``: what the reference build script does for every instance: select the
      task's instructions from the whole instruction table, draw raw vs generated, clean the
      text with regular expressions, then turn it into an f-string and ``eval`` it.  (The
      reference filters a pandas DataFrame per instance; a list comprehension here is
      cheaper, so this baseline is generous.)
    * ``eval only``: our sampler and placeholder values, then the f-string ``eval``, so the
      ratio isolates the rendering step.

    Both baselines run only here, only on our own synthetic, trusted data.  Before timing,
    the eval-only baseline's prompts are checked equal to ours (options not shuffled), so the
    comparison is like for like.  End-to-end ``materialize()`` (JSON in, JSON out) is
    reported for context.
(c) Peak RSS of a child process materializing 10K vs 1M instances: streaming keeps the
    ratio near 1.

Instances are synthesized from the training samples of examples/multiinstruct/samples.jsonl
(``unique_id`` made unique); tasks come from templates/multiinstruct; every paraphrasable
original gets ``--rewrites`` synthetic rewrites (random words around its slots, so ROUGE-L
dedup keeps them), about the paper's 9.8K kept instructions by default.  ((b), ROUGE-L, is
bench/bench_rouge.py.)

Run: ``python bench/bench_materialize.py [--quick] [--n 20000] [--big 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instraug_dsl.dataset.filters import TaskPool, run_pools  # noqa: E402
from instraug_dsl.dataset.records import MISSING, TaskIndex, lookup  # noqa: E402
from instraug_dsl.dataset.render import TaskRenderer, render_target  # noqa: E402
from instraug_dsl.dataset.run import Run, load_run  # noqa: E402
from instraug_dsl.dataset.sampling import Sampler  # noqa: E402
from instraug_dsl.lang import ir  # noqa: E402
from instraug_dsl.lang.model import TaskSpec, pieces_text  # noqa: E402

SAMPLES = ROOT / "examples" / "multiinstruct" / "samples.jsonl"
LIBRARY = ROOT / "templates" / "multiinstruct"


def _rewrite(ins_body: tuple[ir.Piece, ...], rng: random.Random, vocab: list[str]) -> str:
    """Random words around the body's slot references, in their order."""
    out = []
    for piece in ins_body:
        if isinstance(piece, ir.SlotRef):
            out.append("{" + piece.name + "}")
        elif isinstance(piece, ir.TextPiece) and piece.text.strip():
            out.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 9))))
    return " ".join(out) + "."


def make_run(tmp: Path, per_original: int) -> Run:
    """A run directory with ``per_original`` synthetic rewrites per paraphrasable original.

    The compiled plan is the real compiler's (``compiled/``, with the catalog snapshot) and the
    rows go through the run directory's own writer; only the rewrites' wording is synthetic,
    so the pool size is under the benchmark's control.
    """
    from instraug_dsl import api
    from instraug_dsl.contract.run import InstructionRow, write_rows

    rng = random.Random(0)
    vocab = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(7)) for _ in range(5000)
    ]
    run_dir = tmp / "run"
    compiled = api.compile([LIBRARY], out=run_dir / "compiled").compiled
    catalog = compiled.context.catalog
    rows = []
    for task in catalog.tasks.values():
        if task.split != "train" or not task.augment:
            continue
        for ins in task.instructions:
            if ins.pure_placeholder:
                continue
            for k in range(per_original):
                body = _rewrite(ins.body, rng, vocab)
                rows.append(
                    InstructionRow(
                        id=f"g-{task.name}-{ins.name}-{k}",
                        task=task.name,
                        kind="generated",
                        template=pieces_text(ins.lead) + body + pieces_text(ins.trail),
                        root=f"{task.name}/{ins.name}",
                        metaprompt="direct",
                        temperature=0.6,
                        sample=k,
                        attempt=0,
                        iteration=0,
                        model="bench",
                    )
                )
    write_rows(run_dir / "instructions.jsonl", rows)
    return load_run(run_dir)


def train_samples() -> list[dict[str, Any]]:
    records = [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]
    return [r for r in records if r["split"] == "train"]


def write_instances(path: Path, n: int, samples: list[dict[str, Any]]) -> None:
    with path.open("w") as fh:
        for i in range(n):
            rec = dict(samples[i % len(samples)])
            rec["unique_id"] = f"{rec['unique_id']}#{i}"
            fh.write(json.dumps(rec) + "\n")


# ------------------------------------------------------------------------------ BASELINES
# The reference approach, reproduced for measurement only.  NEVER do this outside this file:
# eval executes whatever the (LLM-written) instruction text says.


def baseline_values(
    task: TaskSpec, rec: dict[str, Any], rng: random.Random | None
) -> dict[str, str]:
    """Placeholder values computed with plain Python (the reference's local variables)."""
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
            if rng is not None:
                rng.shuffle(options)
            values[slot.name] = slot.prefix + slot.sep.join(options)
        elif isinstance(value, list):
            values[slot.name] = slot.sep.join(str(x) for x in value)
        else:
            values[slot.name] = "" if value is MISSING or value is None else str(value)
    return values


def baseline_eval(template: str, values: dict[str, str]) -> str:
    """BASELINE ONLY: the instruction as an f-string, eval'ed."""
    return eval("f" + repr(template), {}, values)  # type: ignore[no-any-return]  # noqa: S307


def reference_style(
    table: list[tuple[str, bool, str]],
    task: TaskSpec,
    rec: dict[str, Any],
    rng: random.Random,
    raw_share: float,
) -> str:
    """BASELINE ONLY: per-instance table selection, regex clean-up, f-string eval."""
    pool = [text for name, _, text in table if name == task.name]
    raw = [text for name, original, text in table if name == task.name and original]
    generated = [text for name, original, text in table if name == task.name and not original]
    chosen = rng.choice(raw if not generated or rng.random() < raw_share else generated or pool)
    text = chosen.strip()
    # the reference's clean-up: one line, then drop or unify quotes around {text}
    if re.findall("\n", text):
        text = re.sub("\n", "[new_line]", text)
    if re.findall('"{text}"', text) and re.findall('"', text):
        text = re.sub('"', "", text)
    if re.findall("'{text}'", text) and re.findall("'", text):
        text = re.sub("'", "", text)
    if re.findall("'", text) and re.findall('"', text):
        text = re.sub("'", '"', text)
    return baseline_eval(text, baseline_values(task, rec, rng))


# ------------------------------------------------------------------------------ measurements


def _train_pools(run: Run) -> dict[str, TaskPool]:
    pools, _ = run_pools(run)
    return {n: p for n, p in pools.items() if p.task.split != "test"}


def time_ours(
    run: Run, records: list[dict[str, Any]], seed: int, shuffle: bool = True
) -> tuple[float, list[str]]:
    train = _train_pools(run)
    renderers = {n: TaskRenderer([c.plan for c in p.originals + p.kept]) for n, p in train.items()}
    sampler = Sampler(train, seed=seed)
    index = TaskIndex(run.catalog.tasks)
    out = []
    start = time.perf_counter()
    for rec in records:
        task = index.match(rec)
        assert task is not None
        plan = sampler.choose(task.name).candidate.plan
        rng = sampler.rng(task.name)
        out.append(renderers[task.name].render(plan, rec, rng, shuffle_options=shuffle))
        render_target(plan, rec)
    return time.perf_counter() - start, out


def time_eval_only(
    run: Run, records: list[dict[str, Any]], seed: int, shuffle: bool = True
) -> tuple[float, list[str]]:
    train = _train_pools(run)
    sampler = Sampler(train, seed=seed)
    index = TaskIndex(run.catalog.tasks)
    out = []
    start = time.perf_counter()
    for rec in records:
        task = index.match(rec)
        assert task is not None
        plan = sampler.choose(task.name).candidate.plan
        values = baseline_values(task, rec, sampler.rng(task.name) if shuffle else None)
        out.append(baseline_eval(plan.text, values))
        str(rec.get("target"))
    return time.perf_counter() - start, out


def time_reference(run: Run, records: list[dict[str, Any]], seed: int) -> float:
    train = _train_pools(run)
    table = [
        (n, c.kind == "original", c.plan.text)
        for n, p in train.items()
        for c in p.originals + p.kept
    ]
    index = TaskIndex(run.catalog.tasks)
    rng = random.Random(seed)
    start = time.perf_counter()
    for rec in records:
        task = index.match(rec)
        assert task is not None
        reference_style(table, task, rec, rng, 0.5)
        str(rec.get("target"))
    return time.perf_counter() - start


def best(fn: Any, repeat: int) -> float:
    return min(fn() for _ in range(repeat))


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
    parser.add_argument("--n", type=int, default=20_000, help="records of the throughput runs")
    parser.add_argument("--rewrites", type=int, default=33, help="synthetic rewrites per original")
    parser.add_argument("--small", type=int, default=10_000, help="records of the small RSS run")
    parser.add_argument("--big", type=int, default=1_000_000, help="records of the big RSS run")
    parser.add_argument("--quick", action="store_true", help="n=5000, big=100000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.n, args.big = 5_000, 100_000
    samples = train_samples()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        run = make_run(tmp, args.rewrites)
        pools = _train_pools(run)
        kept = sum(len(p.kept) for p in pools.values())
        originals = sum(len(p.originals) for p in pools.values())
        records = [dict(samples[i % len(samples)], unique_id=f"u{i}") for i in range(args.n)]
        check = records[:2000]
        assert time_ours(run, check, 1, False)[1] == time_eval_only(run, check, 1, False)[1]

        print(
            f"(a) sample + render {args.n:,} pre-parsed records; {originals} originals, "
            f"{kept:,} kept rewrites (best of 3)"
        )
        ours = best(lambda: time_ours(run, records, args.seed)[0], 3)
        evals = best(lambda: time_eval_only(run, records, args.seed)[0], 3)
        ref = best(lambda: time_reference(run, records, args.seed), 3)
        rows = [
            ("ours (compiled plans)", ours),
            ("baseline: eval only", evals),
            ("baseline: reference-style", ref),
        ]
        for label, seconds in rows:
            speedup = "" if seconds is ours else f"   ours is {seconds / ours:6.1f}x faster"
            print(f"    {label:<28} {args.n / seconds:10,.0f} records/s{speedup}")
        start = time.perf_counter()
        run_pools(run)
        print(
            f"    filters + compile of all instructions: {time.perf_counter() - start:.2f} s (once)"
        )

        print(f"(c) peak RSS of a child materializing {args.small:,} vs {args.big:,} records")
        small, big = tmp / "small.jsonl", tmp / "big.jsonl"
        write_instances(small, args.small, samples)
        write_instances(big, args.big, samples)
        rss_small, t_small = peak_rss_mb(run.path, small, tmp / "o_small")
        rss_big, t_big = peak_rss_mb(run.path, big, tmp / "o_big")
        print(f"    {args.small:>9,} records  {rss_small:7.1f} MB peak RSS  {t_small:6.1f} s")
        print(f"    {args.big:>9,} records  {rss_big:7.1f} MB peak RSS  {t_big:6.1f} s")
        print(f"    RSS ratio big/small              {rss_big / rss_small:10.2f}x")
        rate = (args.big - args.small) / (t_big - t_small)
        print(f"    end-to-end materialize (JSON in/out), marginal: {rate:,.0f} records/s")


if __name__ == "__main__":
    main()
