"""Constrained decoding in the runtime: the validators' grammar/regex travel to the provider.

* which providers take a constraint, and how (`constrain.CAPABILITIES`);
* the cache key tells constrained calls apart;
* an OpenAI-compatible server (the loopback FakeServer) receives llama.cpp's ``grammar`` and
  vLLM's ``structured_outputs`` on every call of a request, re-asks included, and nothing
  with ``--constrain off``;
* the real embedded model (marked ``embedded`` and ``slow``) decodes with the grammar: every
  reply's token structure validates; and llama.cpp reuses the prompt prefix of the previous
  call (counted in tokens, never timed).
"""

from __future__ import annotations

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
from instraug_dsl.errors import UsageError
from instraug_dsl.runtime import llm
from instraug_dsl.runtime.cache import CallCache, call_key
from instraug_dsl.runtime.constrain import (
    GRAMMAR,
    OPENAI_COMPATIBLE,
    VLLM,
    Constraint,
    capability,
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
    assert capability("embedded", None) is GRAMMAR
    assert capability("llamafile", "http://h:1/v1") is GRAMMAR
    assert capability("hosted_vllm", "http://h:1/v1") is VLLM
    assert capability("openai", "http://h:1/v1") is OPENAI_COMPATIBLE
    for provider, base in (("openai", None), ("anthropic", None), ("offline", None), ("", None)):
        assert capability(provider, base) is None
    assert GRAMMAR.extra_body(c) == {"grammar": c.gbnf}
    assert VLLM.extra_body(c) == {"structured_outputs": {"regex": c.regex}}
    assert OPENAI_COMPATIBLE.extra_body(c) == {
        "grammar": c.gbnf,
        "structured_outputs": {"regex": c.regex},
    }


def test_a_constrained_call_has_its_own_cache_key() -> None:
    base: dict[str, Any] = dict(
        request="r1",
        model="embedded/qwen-0.5b",
        api_base=None,
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
