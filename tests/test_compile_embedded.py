"""Constrained decoding with the exported grammar, on the real embedded model.

Proves the GBNF export is valid llama.cpp syntax and that what it lets the
model write passes every structural rule of the validator.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from instraug_dsl.compile import STRUCTURAL, compile_paths, evaluate_reply

pytestmark = pytest.mark.embedded
GOLDEN = Path(__file__).parent / "golden" / "compile"


def test_grammar_constrained_replies_pass_the_structural_rules() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from instraug_dsl.runtime.embedded import resolve_model_path
    from instraug_dsl.runtime.llm import BackendError

    try:
        path = resolve_model_path("embedded/qwen-0.5b")
    except BackendError as exc:
        pytest.skip(str(exc))
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, n_threads=2, verbose=False)
    compiled = compile_paths([GOLDEN / "basic" / "input.iat"], "small")
    picked = {}
    for r in compiled.requests:  # one request per validator with tokens (both families)
        if r.token_map:
            picked.setdefault(r.validator, r)
    for req in picked.values():
        spec = compiled.validator_for(req)
        grammar = llama_cpp.LlamaGrammar.from_string(spec.gbnf, verbose=False)
        out = llm.create_chat_completion(
            messages=[{"role": m.role, "content": m.content} for m in req.messages],
            grammar=grammar,
            temperature=req.temperature,
            top_p=req.top_p,
            seed=req.seed,
            max_tokens=96,
        )
        choice = out["choices"][0]
        if choice["finish_reason"] == "length":
            continue  # cut off mid-string: nothing to check
        text = choice["message"]["content"]
        assert re.fullmatch(spec.reply_regex, text), text
        (verdict,) = evaluate_reply(req, spec, text)
        assert not {r.code for r in verdict.reasons} & STRUCTURAL, (text, verdict.reasons)
        assert json.loads(text)
