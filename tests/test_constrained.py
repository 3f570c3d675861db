"""Constrained decoding in the runtime: the validators' grammar/regex travel to the provider.

* which providers take a constraint, and how (`constrain.CAPABILITIES`);
* the cache key tells constrained calls apart;
* an OpenAI-compatible server (the loopback FakeServer) receives llama.cpp's ``grammar`` and
  vLLM's ``structured_outputs`` on every call of a request, re-asks included, and nothing
  with ``--constrain off``;
* the reply bound a constraint carries (from the validator's length rule);
* after a rejected reply, in-process models draw again from the same prompt (``reask auto``),
  other models get a correcting re-ask;
* the real embedded model (marked ``embedded`` and ``slow``) decodes with the grammar: every
  reply's token structure validates; generation stops once the rewrite is too long to pass;
  and llama.cpp reuses the prompt prefix of the previous call (counted in tokens, never
  timed).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from engine_support import evaluate, make_request, warm_up_litellm
from fakeserver import FakeServer
from typer.testing import CliRunner

from instraug_dsl.api import Backend
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.compile import STRUCTURAL
from instraug_dsl.compile.types import Reason, Verdict
from instraug_dsl.errors import UsageError
from instraug_dsl.runtime import llm
from instraug_dsl.runtime.cache import CallCache, call_key
from instraug_dsl.runtime.constrain import (
    EMBEDDED,
    GRAMMAR,
    OPENAI_COMPATIBLE,
    VLLM,
    Constraint,
    capability,
    max_words,
    reply_token_bound,
)
from instraug_dsl.runtime.engine import Engine, EngineConfig

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart"
BAD_REPLY = '["no marks here at all"]'  # fails every request whose source has a token

_register_commands()
warm_up_litellm()
runner = CliRunner()


def iatc(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def validators(run_dir: Path) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(
        (run_dir / "compiled" / "validators.json").read_text()
    )
    return data


# ----------------------------------------------------------------- capabilities and keys


def test_each_provider_has_one_capability() -> None:
    c = Constraint('root ::= "[]"', r"\[\]")
    assert capability("embedded", None) is EMBEDDED
    assert capability("llamafile", "http://h:1/v1") is GRAMMAR
    assert capability("hosted_vllm", "http://h:1/v1") is VLLM
    assert capability("openai", "http://h:1/v1") is OPENAI_COMPATIBLE
    for provider, base in (("openai", None), ("anthropic", None), ("offline", None), ("", None)):
        assert capability(provider, base) is None
    assert GRAMMAR.extra_body(c) == {"grammar": c.gbnf}
    assert EMBEDDED.extra_body(c) == {"grammar": c.gbnf}
    bounded = Constraint(c.gbnf, c.regex, max_tokens=40, max_words=9)
    assert EMBEDDED.extra_body(bounded) == {"grammar": c.gbnf, "max_words": 9}
    assert GRAMMAR.extra_body(bounded) == {"grammar": c.gbnf}  # a llama.cpp server has no such
    assert VLLM.extra_body(c) == {"structured_outputs": {"regex": c.regex}}
    assert OPENAI_COMPATIBLE.extra_body(c) == {
        "grammar": c.gbnf,
        "structured_outputs": {"regex": c.regex},
    }


def test_a_constrained_call_has_its_own_cache_key() -> None:
    base: dict[str, Any] = dict(
        request="r1",
        model="embedded/qwen-0.5b",
        temperature=0.6,
        top_p=0.9,
        max_tokens=64,
        seed=1,
        attempt=1,
        messages=[{"role": "user", "content": "x"}],
    )
    plain = call_key(**base)
    assert call_key(**base, constraint=None) == plain  # unconstrained keys did not change
    one = GRAMMAR.tag(Constraint('root ::= "[]"', "a"))
    other = GRAMMAR.tag(Constraint('root ::= "[ ]"', "a"))
    keys = {plain, call_key(**base, constraint=one), call_key(**base, constraint=other)}
    assert len(keys) == 3
    assert GRAMMAR.tag(Constraint("g", "r1")) == GRAMMAR.tag(Constraint("g", "r2"))  # not sent


def test_reply_bounds_follow_the_length_rule() -> None:
    """ratio = words / source words must stay below the upper bound (open interval)."""
    assert max_words(10, 2.0) == 19
    assert max_words(7, 2.0) == 13
    assert max_words(3, 1.5) == 4  # 4.5 words: 4 pass, 5 do not
    assert max_words(10, float("inf")) is None
    assert reply_token_bound(None, 1) is None
    assert reply_token_bound(19, 1) == 3 * 19 + 4 + 16


def test_backend_takes_auto_or_off() -> None:
    assert Backend().engine("embedded/qwen-0.5b").constrain == "auto"
    assert Backend(constrain="off").engine("embedded/qwen-0.5b").constrain == "off"
    with pytest.raises(UsageError, match="--constrain"):
        Backend(constrain="on").engine("embedded/qwen-0.5b")


# ------------------------------------------------------------------------ the engine


def run_engine(tmp_path: Path, srv: FakeServer, requests: list[Any], **config: Any) -> Engine:
    cfg = EngineConfig(
        model="openai/fake", api_base=srv.base_url, timeout=5.0, backoff_base=0.01, **config
    )
    constraint = Constraint('root ::= "[" [^\\]]* "]"', r"\[.*\]")
    with CallCache(tmp_path / "cache.sqlite") as cache:
        engine = Engine(cfg, cache, evaluate, attempts=2, constraint_of=lambda r: constraint)
        llm.run_async(engine.run(requests))
    return engine


def test_engine_sends_the_constraint_on_every_attempt(tmp_path: Path) -> None:
    requests = [make_request(i) for i in range(3)]
    with FakeServer(mode="fixed", content='["nothing kept"]') as srv:
        engine = run_engine(tmp_path, srv, requests)
    bodies = [entry["body"] for entry in srv.log]
    assert len(bodies) == 6 and engine.constrained_calls == 6  # 3 requests x 2 attempts
    for body in bodies:
        assert body["grammar"] == 'root ::= "[" [^\\]]* "]"'
        assert body["structured_outputs"] == {"regex": r"\[.*\]"}


def test_engine_with_constrain_off_sends_nothing(tmp_path: Path) -> None:
    with FakeServer(mode="fixed", content='["nothing kept"]') as srv:
        engine = run_engine(tmp_path, srv, [make_request(0)], constrain="off")
    assert srv.requests == 2 and engine.constrained_calls == 0
    assert all(
        "grammar" not in e["body"] and "structured_outputs" not in e["body"] for e in srv.log
    )


def test_the_constraint_lowers_max_tokens_and_enters_the_key(tmp_path: Path) -> None:
    request = make_request(0)  # max_tokens 64
    with FakeServer(mode="fixed", content='["nothing kept"]') as srv:
        cfg = EngineConfig(model="openai/fake", api_base=srv.base_url, timeout=5.0)
        bound = Constraint("g", "r", max_tokens=20, max_words=5)
        with CallCache(tmp_path / "cache.sqlite") as cache:
            engine = Engine(cfg, cache, evaluate, attempts=1, constraint_of=lambda r: bound)
            llm.run_async(engine.run([request]))
            first = engine.first_key(request)
            assert cache.contains(first)
            off = Engine(dataclasses.replace(cfg, constrain="off"), cache, evaluate)
            assert off.first_key(request) != first
    assert srv.log[0]["body"]["max_tokens"] == 20


def test_in_process_models_redraw_after_a_rejected_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``resample`` sends the original prompt again with the next attempt's seed (``auto``
    does for embedded models); ``correct`` sends the bad reply and the correction (``auto``
    does for every other model)."""
    sent: list[int] = []
    real = llm.acomplete

    async def spy(call: llm.LLMCall) -> llm.LLMResult:
        sent.append(len(call.messages))
        return await real(call)

    monkeypatch.setattr(llm, "acomplete", spy)
    request = make_request(3, model="offline/echo")
    for mode, turns in (("resample", 2), ("correct", 4), ("auto", 4)):
        sent.clear()
        cfg = EngineConfig(reask=mode)  # type: ignore[arg-type]
        with CallCache(tmp_path / f"{mode}.sqlite") as cache:
            engine = Engine(cfg, cache, _reject_all, attempts=3)
            (outcome,) = llm.run_async(engine.run([request]))
        assert outcome.status == "rejected" and len(outcome.attempts) == 3
        assert sent == [2, turns, turns], mode
        assert len({a.seed for a in outcome.attempts}) == 3
    auto = Engine(EngineConfig(), CallCache(tmp_path / "unused.sqlite"), _reject_all)
    assert auto.reask_mode("embedded/qwen-0.5b", 0.6) == "resample"
    assert auto.reask_mode("embedded/qwen-0.5b", 0.0) == "correct"  # greedy: same reply again
    assert auto.reask_mode("offline/echo") == auto.reask_mode("openai/gpt-4o-mini") == "correct"


def test_http_models_get_a_correcting_reask(tmp_path: Path) -> None:
    with FakeServer(mode="fixed", content='["nothing kept"]') as srv:
        cfg = EngineConfig(model="openai/fake", api_base=srv.base_url, timeout=5.0)
        with CallCache(tmp_path / "cache.sqlite") as cache:
            engine = Engine(cfg, cache, evaluate, attempts=2)
            llm.run_async(engine.run([make_request(0, model="openai/fake")]))
    assert engine.reask_mode("openai/fake") == "correct"
    assert [len(e["body"]["messages"]) for e in srv.log] == [2, 4]


def _reject_all(request: Any, text: str) -> tuple[Verdict, ...]:
    return (Verdict(False, None, (Reason("empty", "rejected by the test"),), "Try again."),)


# ------------------------------------------------------------------------ the CLI


def test_cli_sends_each_requests_validator_exports_and_off_sends_none(tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = ("--model", "openai/fake", "--limit", "2", "-q")
    with FakeServer(mode="fixed", content=BAD_REPLY) as srv:
        code, out = iatc("augment", QUICKSTART, "-o", run, "--api-base", srv.base_url, *common)
        assert code == 0, out
        constrained = [e["body"] for e in srv.log]
        specs = validators(run)
        exports = {(s["gbnf"], s["reply_regex"]) for s in specs.values()}
        assert len(constrained) == 6  # 2 requests x 3 attempts: every reply fails
        by_request: dict[str, set[tuple[str, str]]] = {}
        for body in constrained:
            sent = (body["grammar"], body["structured_outputs"]["regex"])
            assert sent in exports
            first_user = next(m["content"] for m in body["messages"] if m["role"] == "user")
            by_request.setdefault(first_user, set()).add(sent)
        assert len(by_request) == 2 and all(len(s) == 1 for s in by_request.values())
        assert any(len(b["messages"]) > 2 for b in constrained)  # re-asks were constrained too

        # A constrained call is a different call: `off` is not answered from the cache...
        code, out = iatc(
            "augment", QUICKSTART, "-o", run, "--api-base", srv.base_url, "--constrain", "off",
            *common,
        )  # fmt: skip
        assert code == 0, out
        unconstrained = [e["body"] for e in srv.log[6:]]
        assert len(unconstrained) == 6
        assert all("grammar" not in b and "structured_outputs" not in b for b in unconstrained)
        # ...and running constrained again sends nothing: every call is in the cache.
        code, out = iatc("augment", QUICKSTART, "-o", run, "--api-base", srv.base_url, *common)
        assert code == 0, out
        assert srv.requests == 12


def test_cli_rejects_an_unknown_constrain_mode(tmp_path: Path) -> None:
    code, out = iatc(
        "augment", QUICKSTART, "-o", tmp_path / "run", "--model", "offline/rules",
        "--constrain", "always", "-q",
    )  # fmt: skip
    assert code == 2 and "--constrain" in out


# ------------------------------------------------------------ the real embedded model


def _llama() -> Any:
    pytest.importorskip("llama_cpp", reason="needs the [embedded] extra (llama-cpp-python)")
    from instraug_dsl.runtime.embedded import resolve_model_path

    try:
        resolve_model_path("embedded/qwen-0.5b")
    except llm.BackendError as exc:
        pytest.skip(exc.message)


@pytest.mark.slow
@pytest.mark.embedded
def test_embedded_replies_under_the_grammar_keep_every_token(tmp_path: Path) -> None:
    """Constrained by each request's grammar, the model writes only replies whose token
    structure validates (a reply cut off at max_tokens is the one exception: unfinished)."""
    _llama()
    from instraug_dsl import api

    result = api.augment(
        QUICKSTART,
        tmp_path / "run",
        backend=Backend(model="embedded/qwen-0.5b", timeout=600.0),
        limit=8,
    )
    specs = validators(tmp_path / "run")
    replies = 0
    for outcome in result.outcomes:
        spec = specs[outcome.request.validator]
        for attempt in outcome.attempts:
            if attempt.completion_tokens >= outcome.request.max_tokens:
                continue  # cut off mid-string
            replies += 1
            assert re.fullmatch(spec["reply_regex"], attempt.reply), attempt.reply
            codes = {r.code for v in attempt.verdicts for r in v.reasons}
            assert not codes & (STRUCTURAL | {"unparseable"}), (attempt.reply, codes)
    assert replies >= 8


@pytest.mark.slow
@pytest.mark.embedded
def test_embedded_calls_reuse_the_previous_prompt_prefix() -> None:
    """llama.cpp evaluates only the tail a prompt does not share with the previous call
    (nothing in the provider throws the KV cache away: not counting tokens, not closing the
    stream); counted with llama.cpp's own counters, never timed."""
    _llama()
    import llama_cpp

    from instraug_dsl.runtime import embedded

    slot = embedded._load(embedded.resolve_model_path("embedded/qwen-0.5b"))

    def evaluated() -> int:
        return int(llama_cpp.llama_perf_context(slot.llm._ctx.ctx).n_p_eval)

    system = {"role": "system", "content": "You reword instructions. " * 20}
    first = [system, {"role": "user", "content": "Reword: describe the image."}]
    second = [system, {"role": "user", "content": "Reword: what colour is the car?"}]
    sampling = {"max_tokens": 8, "seed": 1, "temperature": 0.6}
    embedded.generate("embedded/qwen-0.5b", first, sampling, 300.0)
    before = evaluated()
    done = embedded.generate("embedded/qwen-0.5b", second, sampling, 300.0)
    fresh = evaluated() - before
    assert done.prompt_tokens > 100
    assert 0 < fresh < 25, f"{fresh} of {done.prompt_tokens} prompt tokens evaluated again"
    grammar = {**sampling, "grammar": 'root ::= "[" [a-z ]+ "]"'}
    before = evaluated()
    constrained = embedded.generate("embedded/qwen-0.5b", second, grammar, 300.0)
    assert evaluated() - before < 25  # the grammar does not cost the prefix either
    assert re.fullmatch(r"\[[a-z ]+\]", constrained.text) or constrained.completion_tokens == 8


@pytest.mark.slow
@pytest.mark.embedded
def test_embedded_generation_stops_when_the_rewrite_is_too_long() -> None:
    _llama()
    from instraug_dsl.runtime import embedded

    story = [{"role": "user", "content": "Tell a long story about a cat, in one sentence."}]
    sampling = {"max_tokens": 120, "seed": 3, "temperature": 0.7}
    grammar = 'root ::= "[\\"" [a-zA-Z ,.]+ "\\"]"'
    free = embedded.generate("embedded/qwen-0.5b", story, {**sampling, "grammar": grammar}, 600)
    cut = embedded.generate(
        "embedded/qwen-0.5b", story, {**sampling, "grammar": grammar, "max_words": 3}, 600
    )
    assert len(free.text.split()) > 3 + embedded.FRAMING_WORDS  # long without the bound
    assert len(cut.text.split()) == 3 + embedded.FRAMING_WORDS + 1  # stopped at the first word over
    assert free.text.startswith(cut.text.rsplit(" ", 1)[0])  # same draw, only shorter
