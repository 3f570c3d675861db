"""The embedded default model per accepted rewrite: before and after, measured in the same run.

    python bench/bench_embedded.py                  # quickstart, before vs after, 1 repetition
    python bench/bench_embedded.py -r 2             # 2 interleaved repetitions (medians printed)
    python bench/bench_embedded.py --configs before,grouped,constrained,after

Runs ``examples/quickstart`` (42 requests, plan ``quickstart``) through the real runtime
(``augment_async``: compile, engine, validation, run directory) with the in-process
Qwen2.5-Coder-0.5B (``embedded/qwen-0.5b``, ``--concurrency 1``), once per configuration and
repetition, each in a fresh run directory (fresh call cache).  Configurations, interleaved
so a load spike from other processes hits them alike:

* ``before``      -- the old behaviour: request order, twice the workers (two calls in flight,
                     so a re-ask queues behind another request's call and loses llama.cpp's
                     cached prefix), no constraint, correcting re-asks
                     (``EngineConfig(schedule="fifo", constrain="off", reask="correct")``);
* ``grouped``     -- the new schedule alone (meta-prompt groups, one worker);
* ``constrained`` -- the new schedule and the validators' grammar, correcting re-asks;
* ``after``       -- the defaults (``EngineConfig()``): new schedule, ``constrain auto`` (the
                     grammar, with the word bound) and ``reask auto`` (a rejected reply is
                     followed by a fresh draw of the same prompt).

Printed per configuration (median over repetitions): acceptance rate (accepted requests /
requests), calls, calls per accepted rewrite, re-asks and the rewrites they produced, token
survival (share of replies whose tokens are all kept: parsed, and none of the token rules
failed; then the same share among the replies that parsed, i.e. leaving out replies cut at the
length bound or ``max_tokens`` and unformatted ones), llama.cpp's own counters (prompt tokens
evaluated, tokens decoded, their milliseconds), wall time and wall time per accepted rewrite;
then the ratios against ``before`` and a projection for the paper plan (2,970 requests, about 2
h before on a quiet 2-core machine): 2 h times the measured ratio of wall time per request, and
per accepted rewrite. Wall times move with the machine's load (printed); token counts do not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
MODEL = "embedded/qwen-0.5b"
PAPER_REQUESTS = 2970
PAPER_HOURS_BEFORE = 2.0
#: Reason codes meaning a token was not kept as written (or the reply had no rewrite).
TOKEN_CODES = frozenset(
    {
        "unparseable",
        "empty",
        "token_missing",
        "token_duplicated",
        "token_invented",
        "token_altered",
        "slot_multiset",
        "slot_order",
        "foreign_token",
    }
)
CONFIGS: dict[str, dict[str, str]] = {
    "before": {"schedule": "fifo", "constrain": "off", "reask": "correct"},
    "grouped": {"schedule": "auto", "constrain": "off", "reask": "correct"},
    "constrained": {"schedule": "auto", "constrain": "auto", "reask": "correct"},
    "after": {"schedule": "auto", "constrain": "auto", "reask": "auto"},
}


@dataclass
class RunStats:
    """What one run of the quickstart measured."""

    requests: int
    accepted: int
    calls: int
    reasks: int
    reask_accepted: int
    replies: int
    survived: int
    parsed: int
    prompt_eval_tokens: int
    prompt_eval_ms: float
    decode_tokens: int
    decode_ms: float
    wall_s: float

    @property
    def per_accepted(self) -> float:
        return self.wall_s / self.accepted if self.accepted else float("inf")


def _perf() -> tuple[int, float, int, float]:
    """llama.cpp's cumulative counters of the loaded model (prompt eval and decode)."""
    import llama_cpp

    from instraug_dsl.runtime import embedded

    slot = embedded._load(embedded.resolve_model_path(MODEL))
    data = llama_cpp.llama_perf_context(slot.llm._ctx.ctx)
    return int(data.n_p_eval), float(data.t_p_eval_ms), int(data.n_eval), float(data.t_eval_ms)


def run_once(name: str, catalog: Any, texts: dict[str, str], keep: Path | None) -> RunStats:
    from instraug_dsl.runtime import llm
    from instraug_dsl.runtime.augment import AugmentOptions, augment_async
    from instraug_dsl.runtime.engine import EngineConfig

    cfg = CONFIGS[name]
    engine = EngineConfig(
        model=MODEL,
        concurrency=1,
        constrain="off" if cfg["constrain"] == "off" else "auto",
        schedule="fifo" if cfg["schedule"] == "fifo" else "auto",
        reask="correct" if cfg["reask"] == "correct" else "auto",
    )
    with tempfile.TemporaryDirectory(prefix="iatc-bench-embedded-") as tmp:
        run_dir = Path(tmp) / "run"
        if keep is not None:
            run_dir = keep / f"{name}-{time.strftime('%H%M%S')}"
        before = _perf()
        started = time.monotonic()
        result = llm.run_async(
            augment_async(catalog, run_dir, AugmentOptions(engine=engine), None, texts)
        )
        wall = time.monotonic() - started
        after = _perf()
    outcomes = result.outcomes
    records = [a for o in outcomes for a in o.attempts]
    survived = sum(
        1 for a in records if not any(r.code in TOKEN_CODES for v in a.verdicts for r in v.reasons)
    )
    return RunStats(
        requests=len(outcomes),
        accepted=sum(1 for o in outcomes if o.status == "accepted"),
        calls=len(records),
        reasks=sum(1 for a in records if a.number > 1),
        reask_accepted=sum(
            1 for o in outcomes if o.status == "accepted" and o.attempts[-1].number > 1
        ),
        replies=len(records),
        survived=survived,
        parsed=sum(
            1
            for a in records
            if not any(r.code == "unparseable" for v in a.verdicts for r in v.reasons)
        ),
        prompt_eval_tokens=after[0] - before[0],
        prompt_eval_ms=after[1] - before[1],
        decode_tokens=after[2] - before[2],
        decode_ms=after[3] - before[3],
        wall_s=wall,
    )


def _median(runs: list[RunStats], attr: str) -> float:
    return float(statistics.median(getattr(r, attr) for r in runs))


def report(results: dict[str, list[RunStats]]) -> None:
    rows = []
    for name, runs in results.items():
        m = {
            a: _median(runs, a)
            for a in (
                "requests",
                "accepted",
                "calls",
                "reasks",
                "reask_accepted",
                "replies",
                "survived",
                "parsed",
                "prompt_eval_tokens",
                "prompt_eval_ms",
                "decode_tokens",
                "decode_ms",
                "wall_s",
                "per_accepted",
            )
        }
        rows.append((name, m, runs))
    print()
    head = (
        f"{'config':12s} {'accept':>7s} {'calls':>6s} {'calls/acc':>9s} {'reasks':>7s} "
        f"{'survival':>8s} {'p-eval tok':>10s} {'decode tok':>10s} {'p-eval s':>8s} "
        f"{'decode s':>8s} {'wall s':>7s} {'s/acc':>7s}"
    )
    print(head)
    for name, m, runs in rows:
        acc = m["accepted"]
        print(
            f"{name:12s} {acc / m['requests']:7.0%} {m['calls']:6.0f} "
            f"{m['calls'] / acc if acc else float('inf'):9.2f} "
            f"{m['reasks']:3.0f}/{m['reask_accepted']:<3.0f} "
            f"{m['survived'] / m['replies'] if m['replies'] else 0:5.0%}"
            f"/{m['survived'] / m['parsed'] if m['parsed'] else 0:<4.0%} "
            f"{m['prompt_eval_tokens']:10.0f} {m['decode_tokens']:10.0f} "
            f"{m['prompt_eval_ms'] / 1000:8.1f} {m['decode_ms'] / 1000:8.1f} "
            f"{m['wall_s']:7.1f} {m['per_accepted']:7.2f}"
            + ("" if len(runs) == 1 else "   runs: " + " ".join(f"{r.wall_s:.0f}s" for r in runs))
        )
    print(
        "(reasks: follow-up attempts sent / requests accepted on one; survival: of all "
        "replies / of the replies that parsed)"
    )
    base = next((m for name, m, _ in rows if name == "before"), None)
    if base is None:
        return
    print("\nratios against `before` (after / before; lower is better except acceptance):")
    for name, m, _ in rows:
        if name == "before":
            continue
        per_request = (m["wall_s"] / m["requests"]) / (base["wall_s"] / base["requests"])
        per_acc = m["per_accepted"] / base["per_accepted"]
        calls_acc = (m["calls"] / m["accepted"]) / (base["calls"] / base["accepted"])
        print(
            f"  {name:12s} wall per accepted rewrite {per_acc:.2f}x   wall per request "
            f"{per_request:.2f}x   calls per accepted {calls_acc:.2f}x   acceptance "
            f"{(m['accepted'] / m['requests']) / (base['accepted'] / base['requests']):.2f}x   "
            f"prompt-eval tokens {m['prompt_eval_tokens'] / base['prompt_eval_tokens']:.2f}x   "
            f"decoded tokens {m['decode_tokens'] / base['decode_tokens']:.2f}x"
        )
        hours = PAPER_HOURS_BEFORE * per_request
        print(
            f"  {'':12s} paper plan ({PAPER_REQUESTS} requests): ~{PAPER_HOURS_BEFORE:g} h "
            f"before -> ~{hours:.1f} h projected; per accepted rewrite {per_acc:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--reps", type=int, default=1, help="interleaved repetitions")
    parser.add_argument(
        "--configs",
        default="before,after",
        help="comma-separated, from: " + ", ".join(CONFIGS),
    )
    parser.add_argument("--keep", type=Path, help="keep every run directory under this folder")
    args = parser.parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    from instraug_dsl import api
    from instraug_dsl.runtime import embedded

    loaded = api.load([QUICKSTART])
    catalog = loaded.raise_for_errors()
    texts = {path: source.text for path, source in loaded.sources.items()}
    embedded.load(MODEL)  # assembled, verified and loaded once, outside every timed run
    threads = os.environ.get(embedded.THREADS_ENV) or str(embedded._threads())
    print(
        f"{MODEL} on {os.cpu_count()} cores ({threads} threads); quickstart; configurations "
        f"{', '.join(names)} x {args.reps}; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results: dict[str, list[RunStats]] = {n: [] for n in names}
    for rep in range(args.reps):
        order = names if rep % 2 == 0 else list(reversed(names))
        for name in order:
            stats = run_once(name, catalog, texts, args.keep)
            results[name].append(stats)
            print(
                f"  rep {rep + 1} {name:12s} {stats.accepted}/{stats.requests} accepted, "
                f"{stats.calls} calls, {stats.wall_s:.0f} s, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    report(results)


if __name__ == "__main__":
    main()
