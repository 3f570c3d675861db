"""Endpoint pools (``--router FILE``): the router file's loader, pooled calls, and the CLI
against three loopback servers of which one fails (HTTP 500) or stalls.

The end-to-end tests run the real CLI (``python -m instraug_dsl``) in a subprocess from a
folder outside the checkout; the servers are `FakeServer` threads of this process, so the
calls each one received are counted where they arrived.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from engine_support import make_request, warm_up_litellm
from fakeserver import FakeServer

from instraug_dsl.contract.codec import encode
from instraug_dsl.errors import DataError, UsageError
from instraug_dsl.runtime import llm
from instraug_dsl.runtime.cache import CallCache
from instraug_dsl.runtime.constrain import OPENAI_COMPATIBLE, Constraint
from instraug_dsl.runtime.engine import Engine, EngineConfig
from instraug_dsl.runtime.router import Deployment, RouterSpec, load_router

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
KEY_A = "pool-key-alpha-0123456789"  # from the environment (os.environ/IATC_TEST_POOL_A)
KEY_B = "sk-literal-beta-0123456789"  # written in the router file
KEY_C = "pool-key-gamma-0123456789"  # from the environment (os.environ/IATC_TEST_POOL_C)
KEYS = (KEY_A, KEY_B, KEY_C)

warm_up_litellm()


# ------------------------------------------------------------------------------ the loader


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


YAML = """\
model_list:
  - model_name: pool/qwen
    litellm_params:
      model: openai/qwen
      api_base: http://127.0.0.1:8001/v1
      api_key: os.environ/IATC_TEST_POOL_A
      weight: 2
  - model_name: pool/qwen
    litellm_params: {model: openai/qwen, api_base: http://127.0.0.1:8002/v1, api_key: sk-x-12345}
    rpm: 60
  - model_name: pool/backup
    litellm_params: {model: hosted_vllm/qwen, api_base: http://127.0.0.1:8003/v1}
router_settings:
  routing_strategy: least-busy
  num_retries: 1
  allowed_fails: 2
  cooldown_time: 30
  timeout: 7.5
  fallbacks: [{pool/qwen: [pool/backup]}]
"""


def test_yaml_and_json_files_read_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IATC_TEST_POOL_A", KEY_A)
    from_yaml = load_router(write(tmp_path / "router.yaml", YAML))
    import yaml

    data = yaml.safe_load(YAML)
    settings = data.pop("router_settings")
    data.update(settings)  # the settings may also sit at the top level
    from_json = load_router(write(tmp_path / "router.json", json.dumps(data)))
    assert from_yaml.deployments == from_json.deployments
    spec = from_yaml
    assert spec.groups == ("pool/qwen", "pool/backup")
    a, b, c = spec.deployments
    assert (a.api_key, a.weight, a.where) == (KEY_A, 2.0, "model_list[0]")
    assert (b.api_key, b.rpm) == ("sk-x-12345", 60)
    assert (c.model, c.api_key) == ("hosted_vllm/qwen", None)
    assert (spec.routing_strategy, spec.num_retries, spec.allowed_fails) == ("least-busy", 1, 2)
    assert (spec.cooldown_time, spec.timeout) == (30.0, 7.5)
    assert spec.fallbacks == (("pool/qwen", ("pool/backup",)),)
    assert spec.chain("pool/qwen") == ("pool/qwen", "pool/backup")
    # Each attempt has the file's timeout; the router may try (1 + 1 retry) x 2 groups.
    assert spec.deadline("pool/qwen", 120.0) == 7.5 * 4 + 10.0
    assert set(spec.secrets()) >= {KEY_A, "sk-x-12345"}
    arguments = spec.router_arguments()
    assert arguments["fallbacks"] == [{"pool/qwen": ["pool/backup"]}]
    assert arguments["model_list"][0]["litellm_params"]["api_key"] == KEY_A
    assert arguments["model_list"][0]["model_info"] == {"id": "deployment-0"}


def test_the_summary_holds_redacted_addresses_and_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IATC_TEST_POOL_A", KEY_A)
    text = YAML.replace("http://127.0.0.1:8002/v1", "'http://u:pw-secret@127.0.0.1:8002/v1?t=tok'")
    spec = load_router(write(tmp_path / "router.yaml", text))
    blob = json.dumps(encode(spec.summary()))
    assert KEY_A not in blob and "sk-x-12345" not in blob and "pw-secret" not in blob
    assert "=tok" not in blob
    summary = spec.summary()
    assert [d.api_base for d in summary.deployments] == [
        "http://127.0.0.1:8001/v1",
        "http://127.0.0.1:8002/v1?t=***",
        "http://127.0.0.1:8003/v1",
    ]
    assert (summary.file, summary.num_retries, summary.fallbacks) == (
        "router.yaml",
        1,
        {"pool/qwen": ("pool/backup",)},
    )
    assert KEY_A not in repr(spec)  # nor in a traceback's locals


DEPLOYMENT = '{"model_name": "p", "litellm_params": {"model": "openai/x"}}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected an object with `model_list`, got list"),
        ("{}", "model_list: missing (the deployments, in litellm's shape)"),
        (
            '{"model_list": []}',
            "model_list: expected a non-empty list of deployments, got an empty list",
        ),
        (
            '{"model_list": {"a": 1}}',
            "model_list: expected a non-empty list of deployments, got object",
        ),
        (
            f'{{"model_list": [{DEPLOYMENT}], "modle": 1}}',
            "modle: unknown field; expected one of: model_list, router_settings, "
            "routing_strategy, num_retries, allowed_fails, cooldown_time, timeout, fallbacks",
        ),
        ('{"model_list": [3]}', "model_list[0]: expected an object, got number"),
        (
            '{"model_list": [{"litellm_params": {"model": "openai/x"}}]}',
            "model_list[0].model_name: missing",
        ),
        (
            '{"model_list": [{"model_name": "p"}]}',
            "model_list[0].litellm_params: missing (the deployment's model, api_base, api_key ...)",
        ),
        (
            '{"model_list": [{"model_name": "p", "litellm_params": {"api_base": "http://h"}}]}',
            "model_list[0].litellm_params.model: missing",
        ),
        (
            '{"model_list": [{"model_name": "p", "litellm_params": {"model": ""}}]}',
            "model_list[0].litellm_params.model: expected a non-empty string, got an empty string",
        ),
        (
            '{"model_list": [{"model_name": "p", "litellm_params": '
            '{"model": "openai/x", "api_base": "ftp://h/v1"}}]}',
            "model_list[0].litellm_params.api_base: expected an http(s) URL, e.g. "
            "http://127.0.0.1:8000/v1, got a ftp:// URL",
        ),
        (
            '{"model_list": [{"model_name": "p", "litellm_params": '
            '{"model": "openai/x", "temperature": 0}}]}',
            "model_list[0].litellm_params.temperature: unknown field; expected one of: model, "
            "api_base, api_key, api_version, weight, rpm, tpm",
        ),
        (
            '{"model_list": [{"model_name": "p", "litellm_params": '
            '{"model": "openai/x", "api_key": "os.environ/IATC_TEST_UNSET_KEY"}}]}',
            "model_list[0].litellm_params.api_key: the environment variable "
            "IATC_TEST_UNSET_KEY is not set",
        ),
        (
            '{"model_list": [{"model_name": "p", "litellm_params": '
            '{"model": "openai/x", "weight": -1}}]}',
            "model_list[0].litellm_params.weight: expected a positive number, got -1",
        ),
        (
            '{"model_list": [{"model_name": "p", "litellm_params": '
            '{"model": "openai/x", "rpm": 1.5}}]}',
            "model_list[0].litellm_params.rpm: expected a positive integer, got 1.5",
        ),
        (
            f'{{"model_list": [{DEPLOYMENT}], "routing_strategy": "round-robin"}}',
            "routing_strategy: unknown strategy 'round-robin'; one of: simple-shuffle, "
            "least-busy, usage-based-routing, usage-based-routing-v2, latency-based-routing, "
            "cost-based-routing",
        ),
        (
            f'{{"model_list": [{DEPLOYMENT}], "router_settings": {{"num_retries": -1}}}}',
            "router_settings.num_retries: expected an integer of at least 0, got -1",
        ),
        (
            f'{{"model_list": [{DEPLOYMENT}], "router_settings": {{"timeout": 0}}}}',
            "router_settings.timeout: expected a number of seconds more than 0, got 0",
        ),
        (
            f'{{"model_list": [{DEPLOYMENT}], "timeout": 5, "router_settings": {{"timeout": 5}}}}',
            "timeout: given both at the top level and under router_settings; keep one",
        ),
        (
            f'{{"model_list": [{DEPLOYMENT}], "fallbacks": [{{"p": ["q"]}}]}}',
            "fallbacks[0].p: unknown group 'q'; the model_names are: p",
        ),
        (
            f'{{"model_list": [{DEPLOYMENT}], "fallbacks": [{{"q": ["p"]}}]}}',
            "fallbacks[0]: unknown group 'q'; the model_names are: p",
        ),
        (
            '{"model_list": [}',
            "1: not valid JSON (Expecting value)",
        ),
    ],
)
def test_loader_errors_name_the_file_and_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.delenv("IATC_TEST_UNSET_KEY", raising=False)
    path = write(tmp_path / "router.json", text)
    with pytest.raises(DataError) as caught:
        load_router(path)
    separator = "" if message[0].isdigit() else " "
    assert str(caught.value) == f"{path}:{separator}{message}"


def test_loader_errors_of_yaml_and_missing_files(tmp_path: Path) -> None:
    path = write(tmp_path / "router.yaml", "model_list:\n  - model_name: [unclosed\n")
    with pytest.raises(DataError) as caught:
        load_router(path)
    assert str(caught.value).startswith(f"{path}:3: not valid YAML (")
    with pytest.raises(UsageError) as missing:
        load_router(tmp_path / "nope.yaml")
    assert str(missing.value) == f"--router {tmp_path / 'nope.yaml'}: no such file"


def test_a_key_never_appears_in_a_loader_error(tmp_path: Path) -> None:
    text = (
        '{"model_list": [{"model_name": "p", "litellm_params": {"model": "openai/x", '
        f'"api_key": "{KEY_B}", "api_base": "{KEY_B}"}}}}]}}'
    )
    with pytest.raises(DataError) as caught:
        load_router(write(tmp_path / "router.json", text))
    assert KEY_B not in str(caught.value)
    assert str(caught.value).endswith(
        "api_base: expected an http(s) URL, e.g. http://127.0.0.1:8000/v1, got something "
        "else (not shown)"
    )


def test_a_constraint_goes_only_where_every_deployment_takes_it() -> None:
    same = RouterSpec(
        "r.json",
        (
            Deployment("p", "openai/a", "http://127.0.0.1:1/v1"),
            Deployment("p", "openai/b", "http://127.0.0.1:2/v1"),
        ),
    )
    assert same.capability("p") is OPENAI_COMPATIBLE
    mixed = RouterSpec("r.json", (*same.deployments, Deployment("q", "openai/gpt-4o-mini")))
    assert mixed.capability("p") is OPENAI_COMPATIBLE
    falls_back = RouterSpec("r.json", mixed.deployments, fallbacks=(("p", ("q",)),))
    assert falls_back.capability("p") is None  # the OpenAI API takes no grammar


# ----------------------------------------------------------------------- pooled calls


def pool_of(*servers: FakeServer, **settings: object) -> RouterSpec:
    return RouterSpec(
        "router.json",
        tuple(
            Deployment("pool/fake", "openai/fake", s.base_url, key, where=f"model_list[{i}]")
            for i, (s, key) in enumerate(zip(servers, KEYS, strict=False))
        ),
        **settings,  # type: ignore[arg-type]
    )


def pooled_call(pool: RouterSpec, **fields: object) -> llm.LLMCall:
    base: dict[str, object] = {
        "model": "pool/fake",
        "messages": (
            {"role": "user", "content": "<instruction>Describe the image.</instruction>"},
        ),
        "temperature": 0.5,
        "top_p": 1.0,
        "max_tokens": 64,
        "seed": 1,
        "timeout": 5.0,
        "router": pool,
    }
    base.update(fields)
    return llm.LLMCall(**base)  # type: ignore[arg-type]


def run_calls(calls: list[llm.LLMCall]) -> list[llm.LLMResult | llm.BackendError]:
    async def main() -> list[llm.LLMResult | llm.BackendError]:
        out: list[llm.LLMResult | llm.BackendError] = []
        for call in calls:
            try:
                out.append(await llm.acomplete(call))
            except llm.BackendError as exc:
                out.append(exc)
        return out

    return llm.run_async(main())


def test_pooled_calls_spread_and_carry_each_deployments_key() -> None:
    with FakeServer() as a, FakeServer() as b:
        pool = pool_of(a, b)
        results = run_calls([pooled_call(pool, seed=i) for i in range(24)])
    assert all(isinstance(r, llm.LLMResult) for r in results), results
    assert a.requests + b.requests == 24 and a.requests > 0 and b.requests > 0
    assert {e["headers"]["authorization"] for e in a.log} == {f"Bearer {KEY_A}"}
    assert {e["headers"]["authorization"] for e in b.log} == {f"Bearer {KEY_B}"}
    assert all(r.model == "pool/fake" for r in results if isinstance(r, llm.LLMResult))


def test_pooled_errors_are_classified_and_masked() -> None:
    """Servers that repeat the key they were sent: the message masks it; once every
    deployment has failed and cooled down, the next call waits, as for a rate limit."""
    with (
        FakeServer(fault_rate=1.0, faults=("echo_key",)) as a,
        FakeServer(fault_rate=1.0, faults=("echo_key",)) as b,
    ):
        pool = pool_of(a, b, num_retries=1, allowed_fails=0, cooldown_time=30.0)
        first, second = run_calls([pooled_call(pool), pooled_call(pool)])
    assert a.requests == b.requests == 1  # the retry went to the other deployment
    assert isinstance(first, llm.BackendError) and isinstance(second, llm.BackendError)
    assert first.kind == "fatal" and "authentication failed" in first.message
    assert "Bearer ***" in first.message
    assert KEY_A not in first.message and KEY_B not in first.message
    assert second.kind == "rate_limit" and second.retry_after == 30.0
    assert second.message == (
        "pool/fake: every deployment of the pool is cooling down (for up to 30 s)"
    )


def test_a_pooled_call_carries_the_shared_constraint() -> None:
    constraint = Constraint(gbnf='root ::= "[" [^\\]]* "]"', regex=r"\[.*\]")
    with FakeServer() as a, FakeServer() as b:
        pool = pool_of(a, b)
        (result,) = run_calls([pooled_call(pool, constraint=constraint)])
    assert isinstance(result, llm.LLMResult)
    body = (a.log or b.log)[0]["body"]
    assert body["grammar"] == constraint.gbnf
    assert body["structured_outputs"] == {"regex": constraint.regex}


def test_the_cache_key_of_a_pooled_call_holds_no_address(tmp_path: Path) -> None:
    """Two pools of other addresses (and a key of their own) give the same keys."""
    request = make_request(0)
    keys = []
    for port in (1, 2):
        pool = RouterSpec(
            "r.json", (Deployment("pool/x", "openai/m", f"http://127.0.0.1:{port}/v1", f"k{port}"),)
        )
        config = EngineConfig(model="pool/x", router=pool)
        with CallCache(tmp_path / f"cache{port}.sqlite") as cache:
            keys.append(Engine(config, cache, lambda r, t: ()).first_key(request))
    assert keys[0] == keys[1]


# ----------------------------------------------------------------- the CLI, end to end


def router_file(folder: Path, *servers: FakeServer, **settings: object) -> Path:
    """Deployment keys: A and C from the environment, B written in the file."""
    refs = ("os.environ/IATC_TEST_POOL_A", KEY_B, "os.environ/IATC_TEST_POOL_C")
    data = {
        "model_list": [
            {
                "model_name": "pool/qwen",
                "litellm_params": {"model": "openai/fake", "api_base": s.base_url, "api_key": ref},
            }
            for s, ref in zip(servers, refs, strict=False)
        ],
        "router_settings": settings,
    }
    return write(folder / "router.json", json.dumps(data, indent=2))


def iatc(folder: Path, *args: object, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        **__import__("os").environ,
        "IATC_TEST_POOL_A": KEY_A,
        "IATC_TEST_POOL_C": KEY_C,
    }
    return subprocess.run(
        [sys.executable, "-m", "instraug_dsl", *map(str, args)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_no_key_anywhere(folder: Path, *outputs: str) -> None:
    """No deployment key in any file written (the call cache included) nor in the output."""
    blobs = [o.encode() for o in outputs]
    blobs += [p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "router.json"]
    for key in KEYS:
        assert not any(key.encode() in blob for blob in blobs), key


CONCURRENCY = 4
ALLOWED_FAILS = 0  # cooled down at its first failure (no minute boundary to straddle)


@pytest.mark.parametrize("fault", ["server_error", "timeout"])
def test_a_pool_with_a_failing_or_stalled_server(tmp_path: Path, fault: str) -> None:
    """Every request completes, the load is spread over the two healthy servers, their counts
    add up to the calls made, and the broken one is cooled down after a few calls.  A stall
    costs one attempt's deadline (``--timeout``), then the router moves on."""
    folder = tmp_path / "work"
    folder.mkdir()
    with (
        FakeServer() as a,
        FakeServer() as b,
        FakeServer(fault_rate=1.0, faults=(fault,), hang_s=60.0) as broken,
    ):
        router = router_file(
            folder, a, b, broken, allowed_fails=ALLOWED_FAILS, cooldown_time=600, num_retries=2
        )
        common = ("--model", "pool/qwen", "--router", router, "--timeout", "1.5", "-q")
        common += ("--concurrency", str(CONCURRENCY))
        if fault == "timeout":  # `iatc run`: augment, then materialize
            done = iatc(folder, "run", QUICKSTART, "-o", "out", *common)
            run = folder / "out" / "run"
            assert (folder / "out" / "data" / "train.jsonl").exists()
        else:
            done = iatc(folder, "augment", QUICKSTART, "-o", "run", *common)
            run = folder / "run"
        assert done.returncode == 0, done.stderr[-3000:]
        served = (a.requests, b.requests, broken.requests)
    s = json.loads((run / "summary.json").read_text())
    totals = s["totals"]
    assert totals["requests"] == 42 and totals["reconciled"] and totals["failed"] == 0, totals
    assert totals["accepted"] + totals["rejected"] == 42
    assert s["outputs"]["failed_rows"] == 0
    assert a.requests > 0 and b.requests > 0, served
    assert a.requests + b.requests == s["run"]["calls_made"], served
    # Cooled down: only the calls already in flight when it failed (at most one per slot) and
    # one per slot freed before the failure that cooled it down reached it.
    assert 1 <= broken.requests <= CONCURRENCY + ALLOWED_FAILS + 1, served
    pool = s["router"]
    assert [d["api_base"] for d in pool["deployments"]] == [a.base_url, b.base_url, broken.base_url]
    assert (pool["file"], pool["allowed_fails"], pool["cooldown_time"]) == (
        "router.json",
        ALLOWED_FAILS,
        600,
    )
    assert s["model"] == "pool/qwen"
    assert_no_key_anywhere(folder, done.stdout, done.stderr)


def test_a_moved_pool_answers_from_the_cache(tmp_path: Path) -> None:
    """The call cache's key holds the pool's name, never an address: the same run through
    another pool (other servers) sends nothing."""
    folder = tmp_path / "work"
    folder.mkdir()
    args = ("augment", QUICKSTART, "-o", "run", "--model", "pool/qwen", "--limit", "6", "-q")
    with FakeServer() as a, FakeServer() as b:
        first = iatc(folder, *args, "--router", router_file(folder, a, b))
        assert first.returncode == 0, first.stderr[-3000:]
        made = json.loads((folder / "run" / "summary.json").read_text())["run"]["calls_made"]
        assert a.requests + b.requests == made > 0
    moved = folder / "moved"
    moved.mkdir()
    with FakeServer() as c:
        again = iatc(folder, *args, "--router", router_file(moved, c))
        assert again.returncode == 0, again.stderr[-3000:]
        assert c.requests == 0
    facts = json.loads((folder / "run" / "summary.json").read_text())["run"]
    assert (facts["calls_made"], facts["cache_hits"]) == (0, made)


def test_router_usage_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    bad = write(folder / "bad.json", '{"model_list": [{"model_name": "p"}]}')
    done = iatc(folder, "augment", QUICKSTART, "-o", "run", "--model", "p", "--router", bad)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"iatc: error: {bad}: model_list[0].litellm_params: missing (the deployment's model, "
        "api_base, api_key ...)"
    )
    good = write(
        folder / "good.json",
        json.dumps(
            {"model_list": [{"model_name": "pool/a", "litellm_params": {"model": "openai/x"}}]}
        ),
    )
    done = iatc(folder, "augment", QUICKSTART, "-o", "run", "--router", good)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"iatc: error: {good}: no deployment has model_name `embedded/qwen-0.5b` (the plan's "
        "model); pass --model with one of: pool/a"
    )
    done = iatc(
        folder, "run", QUICKSTART, "-o", "out", "--model", "pool/a", "--router", good,
        "--api-base", "http://127.0.0.1:9/v1",
    )  # fmt: skip
    assert done.returncode == 2
    assert "--router and --api-base do not go together" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (folder / "run").exists() and not (folder / "out").exists()


def test_an_unusable_deployment_stops_the_run_naming_the_field(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    router = write(
        folder / "router.json",
        json.dumps(
            {"model_list": [{"model_name": "pool/a", "litellm_params": {"model": "nosuch/x"}}]}
        ),
    )
    done = iatc(folder, "augment", QUICKSTART, "-o", "run", "--model", "pool/a", "--router", router)
    assert done.returncode == 3, done.stderr
    assert f"{router}: model_list[0].litellm_params.model: unknown model or provider" in done.stderr
    assert "Traceback" not in done.stderr


def test_routers_are_per_event_loop() -> None:
    """Each run has its own loop and so its own router (its clients belong to the loop)."""
    with FakeServer() as a:
        pool = pool_of(a)
        for _ in range(2):
            (result,) = run_calls([pooled_call(pool)])
            assert isinstance(result, llm.LLMResult)
    assert a.requests == 2
