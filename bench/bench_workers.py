"""``iatc augment --workers N``: throughput against the loopback server, as ratios measured in
the same run.

    python bench/bench_workers.py                     # paper plan, C=64, L=100 ms, N = 1, 2
    python bench/bench_workers.py -w 1,2,4 -r 3       # 3 interleaved rounds, medians printed
    python bench/bench_workers.py -c 32 -l 0.05

The whole ``augment`` of the MultiInstruct ``paper`` plan (2,970 requests) against the
loopback FakeServer (a child process answering every request after ``L`` seconds, so its work
does not share the client's GIL), with ``--model openai/fake``, concurrency ``C`` per worker
and ``N`` worker processes, each in a fresh run directory; the wall time includes starting
the workers (each imports litellm) and the replay that writes the run's files.  Printed per
``N`` (median over rounds): requests/s, the ratio to the ideal of one process ``C/L``, to the
ideal of ``N`` processes ``N*C/L``, and to ``N`` times the one-worker rate measured in the
same round; then the replay alone (the same command again: every call from the cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_engine import start_server  # noqa: E402

import instraug_dsl as iat  # noqa: E402

LIBRARY = ROOT / "templates" / "multiinstruct"


def one_run(base: str, workers: int, concurrency: int, folder: Path) -> tuple[float, int]:
    started = time.perf_counter()
    result = iat.augment(
        [LIBRARY],
        folder,
        plan="paper",
        backend=iat.Backend(model="openai/fake", api_base=base, concurrency=concurrency),
        workers=workers,
    )
    wall = time.perf_counter() - started
    assert result.summary.totals.reconciled
    return wall, result.summary.totals.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-w", "--workers", default="1,2", help="worker counts, e.g. 1,2,4")
    parser.add_argument("-c", "--concurrency", type=int, default=64, help="in flight per worker")
    parser.add_argument("-l", "--latency", type=float, default=0.1, help="server latency (s)")
    parser.add_argument("-r", "--rounds", type=int, default=1)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    if 1 not in counts:
        counts.insert(0, 1)
    proc, base = start_server(args.latency)
    rates: dict[int, list[float]] = {n: [] for n in counts}
    scaled: dict[int, list[float]] = {n: [] for n in counts}
    replay: list[float] = []
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                got: dict[int, float] = {}
                for n in counts:
                    folder = Path(tmp) / f"r{r}-w{n}"
                    wall, requests = one_run(base, n, args.concurrency, folder)
                    got[n] = requests / wall
                    print(f"  round {r + 1} workers {n}: {requests} requests in {wall:.1f} s")
                    if n == 1:
                        again, _ = one_run(base, 1, args.concurrency, folder)
                        replay.append(again)
                for n in counts:
                    rates[n].append(got[n])
                    scaled[n].append(got[n] / (n * got[1]))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
    ideal = args.concurrency / args.latency
    print(
        f"\npaper plan, openai/fake, C={args.concurrency} per worker, "
        f"L={args.latency * 1000:.0f} ms, {os.cpu_count()} cores, "
        f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print("workers  req/s   / (C/L)  / (N*C/L)  / (N x one worker)")
    for n in counts:
        rate = statistics.median(rates[n])
        print(
            f"{n:>7}  {rate:6.0f}  {rate / ideal:7.2f}  {rate / (n * ideal):9.2f}"
            f"  {statistics.median(scaled[n]):17.2f}"
        )
    print(f"replay of the finished run from its cache (no call): {statistics.median(replay):.1f} s")


if __name__ == "__main__":
    main()
