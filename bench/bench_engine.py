"""Engine throughput against the loopback FakeServer, as ratios measured in the same run.

    python bench/bench_engine.py                      # C=64, L=100 ms, 1280 requests
    python bench/bench_engine.py -c 16 -l 0.05 -n 400
    python bench/bench_engine.py --profile            # where the client's CPU goes
    python bench/bench_engine.py -r 5                 # 5 interleaved rounds (median printed)

The server runs in a child process (so its work does not share the client's GIL) and answers
every request after ``L`` seconds. Measured, in one run:

* ``engine``   -- the full engine (AIMD limiter, cache writes, validation) at concurrency C;
* ``gather``   -- bare ``llm.acomplete`` calls under a semaphore of C (litellm alone);
* ``aiohttp``  -- the same requests with a bare ``aiohttp`` session (litellm's own transport;
                  what the server and the event loop can do without litellm);
* ``serial``   -- one request at a time (the reference implementation's loop).

Each round runs all four in turn (interleaved, so a load spike from other processes hits
every configuration alike); printed: the median requests/s of each over the rounds, the
machine's load average, and the ratios ``engine / (C/L)`` (ideal), ``engine / serial``,
``engine / gather`` (engine overhead) and ``gather / aiohttp`` (litellm overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from engine_support import evaluate, make_request, warm_up_litellm  # noqa: E402

from instraug_dsl.runtime import llm  # noqa: E402
from instraug_dsl.runtime.cache import CallCache  # noqa: E402
from instraug_dsl.runtime.engine import Engine, EngineConfig  # noqa: E402

_SERVER = """
import sys
sys.path.insert(0, {tests!r})
from fakeserver import FakeServer
srv = FakeServer(latency={latency!r})
srv.start()
print(srv.port, flush=True)
sys.stdin.read()
srv.stop()
"""


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    code = _SERVER.format(tests=str(ROOT / "tests"), latency=latency)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


MODEL = "openai/fake"


def call_for(i: int, base: str) -> llm.LLMCall:
    req = make_request(i)
    return llm.LLMCall(
        model=MODEL,
        messages=tuple({"role": m.role, "content": m.content} for m in req.messages),
        temperature=0.6,
        top_p=0.9,
        max_tokens=64,
        seed=req.seed,
        timeout=30.0,
        api_base=base,
    )


async def bench_engine(base: str, n: int, c: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        with CallCache(Path(tmp) / "cache.sqlite") as cache:
            engine = Engine(
                EngineConfig(model=MODEL, api_base=base, concurrency=c), cache, evaluate, attempts=1
            )
            requests = [make_request(i) for i in range(n)]
            start = time.perf_counter()
            outcomes = await engine.run(requests)
            elapsed = time.perf_counter() - start
    assert len(outcomes) == n
    return n / elapsed


async def bench_gather(base: str, n: int, c: int) -> float:
    sem = asyncio.Semaphore(c)

    async def one(i: int) -> None:
        async with sem:
            await llm.acomplete(call_for(i, base))

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


async def bench_aiohttp(base: str, n: int, c: int) -> float:
    import aiohttp

    sem = asyncio.Semaphore(c)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

        async def one(i: int) -> None:
            call = call_for(i, base)
            async with sem:
                async with session.post(
                    f"{base}/chat/completions",
                    json={"model": "fake", "messages": list(call.messages), "seed": call.seed},
                ) as r:
                    await r.json()

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - start)


async def bench_serial(base: str, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await llm.acomplete(call_for(i, base))
    return n / (time.perf_counter() - start)


async def one_round(args: argparse.Namespace, base: str, profile: bool) -> dict[str, float]:
    results = {}
    if profile:
        prof = cProfile.Profile()
        prof.enable()
    results["engine"] = await bench_engine(base, args.requests, args.concurrency)
    if profile:
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    results["gather"] = await bench_gather(base, args.requests, args.concurrency)
    results["aiohttp"] = await bench_aiohttp(base, args.requests, args.concurrency)
    results["serial"] = await bench_serial(base, args.serial)
    return results


async def main_async(args: argparse.Namespace, base: str) -> dict[str, list[float]]:
    await bench_gather(base, 2 * args.concurrency, args.concurrency)  # warm connections
    rounds: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for name, rate in (await one_round(args, base, args.profile and r == 0)).items():
            rounds.setdefault(name, []).append(rate)
    return rounds


def main() -> None:
    global MODEL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("-l", "--latency", type=float, default=0.1, help="server latency (s)")
    parser.add_argument("-n", "--requests", type=int, default=1280)
    parser.add_argument("--serial", type=int, default=30, help="requests for the serial loop")
    parser.add_argument(
        "-r",
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds; the median of each configuration is reported",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the first engine run")
    parser.add_argument(
        "--model",
        default=MODEL,
        help="model name sent to the server "
        "(a priced name such as openai/gpt-4o-mini changes litellm's cost lookup)",
    )
    args = parser.parse_args()
    MODEL = args.model
    warm_up_litellm()
    proc, base = start_server(args.latency)
    load_before = os.getloadavg()[0]
    try:
        rounds = asyncio.run(main_async(args, base))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    results = {name: statistics.median(rates) for name, rates in rounds.items()}
    ideal = args.concurrency / args.latency
    print(
        f"{MODEL}: C={args.concurrency} L={args.latency * 1000:g} ms N={args.requests} "
        f"on {os.cpu_count()} cores; ideal C/L = {ideal:.0f} req/s; "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    for name, rate in results.items():
        runs = " ".join(f"{x:.0f}" for x in rounds[name])
        print(f"  {name:7s} {rate:8.1f} req/s  (median of {len(rounds[name])}: {runs})")
    r = results
    print(f"engine / ideal   = {r['engine'] / ideal:.2f}")
    print(f"engine / serial  = {r['engine'] / r['serial']:.1f}x")
    print(f"engine / gather  = {r['engine'] / r['gather']:.2f}  (engine overhead)")
    print(f"gather / aiohttp = {r['gather'] / r['aiohttp']:.2f}  (litellm overhead)")
    print(f"aiohttp / ideal  = {r['aiohttp'] / ideal:.2f}  (server + event loop ceiling)")


if __name__ == "__main__":
    main()
