"""The engine on its own: concurrency limiter, retries, re-asks, cache, budget.

Requests are hand-built (`engine_support`), the model is the loopback FakeServer or the
``offline/rules`` provider, both reached through the real litellm path. litellm is imported
once for the whole session (module import below; it costs several seconds).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from engine_support import evaluate, make_request, reask_text, warm_up_litellm
from fakeserver import HTTP_FAULTS, FakeServer

from instraug_dsl.compile.types import Reason, Verdict
from instraug_dsl.errors import ProviderError
from instraug_dsl.runtime import llm
from instraug_dsl.runtime.cache import CallCache, call_key
from instraug_dsl.runtime.engine import (
    Engine,
    EngineConfig,
    attempt_seed,
    reask_messages,
)
from instraug_dsl.runtime.limiter import AIMDLimiter
from instraug_dsl.runtime.outputs import failed_rows, generated_rows, rejected_rows, tally

warm_up_litellm()  # import litellm once per session (it costs seconds), outside any test


def run_engine(
    tmp_path: Path, requests: list, *, attempts: int = 3, fresh: bool = False, **config: object
) -> tuple[list, Engine]:
    cfg = EngineConfig(**{"backoff_base": 0.01, "backoff_max": 0.2, "timeout": 2.0, **config})
    with CallCache(tmp_path / "cache.sqlite", fresh=fresh) as cache:
        engine = Engine(cfg, cache, evaluate, attempts=attempts)
        outcomes = llm.run_async(engine.run(requests))
    return outcomes, engine


# ---------------------------------------------------------------- AIMD limiter


def test_limiter_halves_on_rate_limit_and_grows_back() -> None:
    """GIVEN a window of 16 WHEN a call is rate-limited THEN it halves; successes regrow it."""

    async def go() -> list[int]:
        lim = AIMDLimiter(16)
        seen = []
        async with lim.slot() as s:
            s.rate_limited()
        seen.append(lim.limit)
        for _ in range(200):
            async with lim.slot():
                pass
        seen.append(lim.limit)
        return seen

    assert asyncio.run(go()) == [8, 16]


def test_limiter_counts_one_cut_per_window() -> None:
    """429s from calls that started before the last cut do not cut again."""

    async def go() -> tuple[int, int]:
        lim = AIMDLimiter(16)
        slots = [await lim.acquire() for _ in range(8)]
        for s in slots:  # a burst: all eight were in flight when the first 429 came back
            s.rate_limited()
            lim.release(s)
        return lim.limit, lim.cuts

    assert asyncio.run(go()) == (8, 1)


def test_limiter_never_exceeds_limit_and_floor_is_one() -> None:
    async def go() -> tuple[int, int]:
        lim = AIMDLimiter(4)
        peak = 0

        async def one(i: int) -> None:
            nonlocal peak
            async with lim.slot() as s:
                peak = max(peak, lim.in_flight)
                await asyncio.sleep(0.001)
                if i % 3 == 0:
                    s.rate_limited()

        await asyncio.gather(*(one(i) for i in range(60)))
        return peak, lim.limit

    peak, limit = asyncio.run(go())
    assert peak <= 4
    assert 1 <= limit <= 4


def test_limiter_waiter_cancelled_after_wakeup_passes_permit_on() -> None:
    async def go() -> int:
        lim = AIMDLimiter(1)
        first = await lim.acquire()
        waiter = asyncio.ensure_future(lim.acquire())
        third = asyncio.ensure_future(lim.acquire())
        await asyncio.sleep(0)
        lim.release(first)  # hands the permit to `waiter`...
        waiter.cancel()  # ...which is cancelled before it runs
        await asyncio.gather(waiter, return_exceptions=True)
        got = await asyncio.wait_for(third, 1.0)
        lim.release(got)
        return lim.in_flight

    assert asyncio.run(go()) == 0


def test_limiter_rejects_zero() -> None:
    with pytest.raises(ValueError):
        AIMDLimiter(0)


# ---------------------------------------------------------------- seeds and re-asks


def test_attempt_seeds_are_deterministic_and_distinct() -> None:
    seeds = [attempt_seed(7, k) for k in range(1, 6)]
    assert seeds[0] == 7
    assert len(set(seeds)) == 5
    assert seeds == [attempt_seed(7, k) for k in range(1, 6)]


def test_reask_appends_bad_reply_and_targeted_message() -> None:
    req = make_request(0)
    bad = Verdict(False, None, (Reason("placeholders", "missing ⟦1⟧"),), "Keep ⟦1⟧ exactly once.")
    msgs = reask_messages(req, '["Look at the image."]', (bad,))
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2]["content"] == '["Look at the image."]'
    assert msgs[3]["content"] == "Keep ⟦1⟧ exactly once."


def test_reask_without_validator_message_lists_reasons() -> None:
    empty = Verdict(False, None, (Reason("empty", "empty reply"),))
    msgs = reask_messages(make_request(0), "", (empty,))
    assert msgs[2]["content"] == "(no answer)"
    assert "empty reply" in msgs[3]["content"]


# ---------------------------------------------------------------- runs against FakeServer


def test_faulty_server_every_request_accounted_and_no_payload_executed(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """GIVEN a server failing 20% of calls (HTTP faults and broken or malicious content)
    THEN every request ends accepted, rejected or failed, the counts reconcile, malicious
    content is rejected as data, and nothing it contains is ever executed."""
    requests = [make_request(i) for i in range(120)]
    with FakeServer(latency=0.01, fault_rate=0.2, seed=11, retry_after=0.02, hang_s=3.0) as srv:
        outcomes, engine = run_engine(
            tmp_path,
            requests,
            model="openai/fake",
            api_base=srv.base_url,
            concurrency=16,
            timeout=0.5,
        )
        faults = Counter(entry["fault"] for entry in srv.log)
    assert [o.request.id for o in outcomes] == [r.id for r in requests]
    totals = tally(outcomes)
    assert totals.reconciled
    assert totals.accepted + totals.rejected + totals.failed == 120
    assert totals.accepted > 90
    assert faults["python_payload"] + faults["template_payload"] > 0  # the test saw payloads
    assert any(f in faults for f in HTTP_FAULTS)
    for row in generated_rows(outcomes):
        assert "__import__" not in row.template and "{{" not in row.template
    payload_rows = [r for r in rejected_rows(outcomes) if "__import__" in r.text]
    assert payload_rows and all(r.reasons for r in payload_rows)
    out, err = capfd.readouterr()
    assert "pwned" not in out and "pwned" not in err


def test_rate_limits_cut_concurrency(tmp_path: Path) -> None:
    script = ["rate_limit"] * 6
    with FakeServer(latency=0.01, script=script, retry_after=0.01) as srv:
        outcomes, engine = run_engine(
            tmp_path,
            [make_request(i) for i in range(20)],
            model="openai/fake",
            api_base=srv.base_url,
            concurrency=8,
        )
    assert all(o.status == "accepted" for o in outcomes)
    assert engine.limiter.cuts >= 1


def test_transport_failures_after_retries_are_failed_with_last_error(tmp_path: Path) -> None:
    with FakeServer(fault_rate=1.0, faults=("server_error",)) as srv:
        outcomes, _ = run_engine(
            tmp_path,
            [make_request(0), make_request(1)],
            model="openai/fake",
            api_base=srv.base_url,
            max_retries=2,
        )
        assert srv.requests == 6  # 2 requests x (1 call + 2 retries)
    assert [o.status for o in outcomes] == ["failed", "failed"]
    row = failed_rows(outcomes)[0]
    assert row.kind == "transient" and row.error and "server error 500" in row.error
    assert row.attempts == 3


def test_timeouts_are_retried(tmp_path: Path) -> None:
    with FakeServer(script=["timeout"], hang_s=2.0) as srv:
        outcomes, _ = run_engine(
            tmp_path, [make_request(0)], model="openai/fake", api_base=srv.base_url, timeout=0.3
        )
    assert outcomes[0].status == "accepted"


def test_rejected_reply_is_reasked_with_the_validator_message(tmp_path: Path) -> None:
    with FakeServer(script=["drop_token"]) as srv:
        outcomes, _ = run_engine(
            tmp_path, [make_request(0)], model="openai/fake", api_base=srv.base_url, concurrency=1
        )
        second = srv.log[1]["body"]
    out = outcomes[0]
    assert [a.number for a in out.attempts] == [1, 2]
    assert out.attempts[0].verdicts[0].reasons[0].code == "placeholders"
    assert second["messages"][-2]["role"] == "assistant"
    assert second["messages"][-1]["content"] == reask_text(out.request)
    assert second["seed"] == attempt_seed(out.request.seed, 2)
    assert out.status == "accepted"


def test_all_attempts_rejected_records_every_reason(tmp_path: Path) -> None:
    with FakeServer(mode="fixed", content="I cannot do that.") as srv:
        outcomes, _ = run_engine(
            tmp_path, [make_request(0)], model="openai/fake", api_base=srv.base_url, attempts=3
        )
    rows = rejected_rows(outcomes)
    assert outcomes[0].status == "rejected"
    assert [r.attempt for r in rows] == [1, 2, 3]
    assert all(r.reasons[0].code == "unparseable" for r in rows)


def test_fatal_error_before_any_success_aborts_with_clear_message(tmp_path: Path) -> None:
    with FakeServer(fault_rate=1.0, faults=("unauthorized",)) as srv:
        with pytest.raises(ProviderError, match="authentication failed"):
            run_engine(
                tmp_path,
                [make_request(i) for i in range(10)],
                model="openai/fake",
                api_base=srv.base_url,
                concurrency=2,
            )
        assert srv.requests <= 2  # the run stopped instead of hammering the server


def test_unreachable_server_is_a_provider_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProviderError, match="cannot reach"):
        run_engine(
            tmp_path, [make_request(0)], model="openai/fake", api_base=f"http://127.0.0.1:{port}/v1"
        )


# ---------------------------------------------------------------- cache and resume


def test_second_run_is_served_from_cache(tmp_path: Path) -> None:
    requests = [make_request(i) for i in range(30)]
    with FakeServer(latency=0.0) as srv:
        first, _ = run_engine(tmp_path, requests, model="openai/fake", api_base=srv.base_url)
        calls = srv.requests
        second, engine = run_engine(tmp_path, requests, model="openai/fake", api_base=srv.base_url)
        assert srv.requests == calls
        assert engine.cache.hits == sum(len(o.attempts) for o in first)
        fresh, _ = run_engine(
            tmp_path, requests, model="openai/fake", api_base=srv.base_url, fresh=True
        )
        assert srv.requests == 2 * calls
    assert generated_rows(first) == generated_rows(second) == generated_rows(fresh)


def test_the_same_model_at_another_address_answers_from_the_cache(tmp_path: Path) -> None:
    """The server's address is not part of the key: a model moved elsewhere repeats nothing."""
    requests = [make_request(i) for i in range(10)]
    with FakeServer(latency=0.0) as one:
        first, _ = run_engine(tmp_path, requests, model="openai/fake", api_base=one.base_url)
    with FakeServer(latency=0.0) as other:
        second, engine = run_engine(
            tmp_path, requests, model="openai/fake", api_base=other.base_url
        )
        assert other.requests == 0
    assert engine.cache.hits == sum(len(o.attempts) for o in first)
    assert generated_rows(first) == generated_rows(second)


def test_changing_model_or_sampling_changes_the_key() -> None:
    base = dict(
        request="r1",
        model="openai/a",
        temperature=0.6,
        top_p=0.9,
        max_tokens=64,
        seed=1,
        attempt=1,
        messages=[{"role": "user", "content": "x"}],
    )
    key = call_key(**base)  # type: ignore[arg-type]
    for change in (
        {"model": "openai/b"},
        {"temperature": 0.7},
        {"seed": 2},
        {"attempt": 2},
        {"request": "r2"},
        {"messages": [{"role": "user", "content": "y"}]},
    ):
        assert call_key(**{**base, **change}) != key  # type: ignore[arg-type]


def test_budget_stops_cleanly_and_accounts_for_the_rest(tmp_path: Path) -> None:
    """Priced model (gpt-4o-mini prices from litellm's bundled list) on the loopback server."""
    requests = [make_request(i) for i in range(40)]
    with FakeServer(latency=0.0) as srv:
        outcomes, engine = run_engine(
            tmp_path,
            requests,
            model="openai/gpt-4o-mini",
            api_base=srv.base_url,
            concurrency=1,
            budget_usd=1e-4,
        )
    counts = Counter(o.status for o in outcomes)
    assert engine.stop_reason == "budget"
    assert counts["failed"] > 0 and counts["accepted"] > 0
    assert sum(counts.values()) == 40
    assert {r.kind for r in failed_rows(outcomes)} == {"budget"}
    assert engine.spent_usd >= 1e-4


def test_offline_rules_through_litellm(tmp_path: Path) -> None:
    outcomes, _ = run_engine(tmp_path, [make_request(i) for i in range(10)], model="offline/rules")
    assert all(o.status == "accepted" for o in outcomes)
    texts = {o.attempts[-1].accepted[0].restored for o in outcomes}
    assert len(texts) > 5  # seeds select different rewrites
    assert json.loads(outcomes[0].attempts[0].reply)


def test_offline_transient_failures_are_retried_through_litellm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from instraug_dsl.runtime import offline

    monkeypatch.setenv(offline.FAIL_FIRST_ENV, "3")
    offline.reset_fail_counter()
    try:
        outcomes, _ = run_engine(tmp_path, [make_request(0)], model="offline/rules", concurrency=1)
    finally:
        offline.reset_fail_counter()
    assert outcomes[0].status == "accepted"
