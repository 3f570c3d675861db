"""Shared helpers of the engine tests: hand-built requests and a small validator.

The engine is tested on its own here (the compiler has its own tests): requests are built
directly, and `evaluate` is a minimal validator (parse the JSON list, check the tokens, refuse
braces) standing in for the compiler's.
"""

from __future__ import annotations

import re
import warnings

from instraug_dsl.compile.reply import parse_reply
from instraug_dsl.compile.types import Reason, Verdict
from instraug_dsl.contract.compiled import Message, Request


def warm_up_litellm() -> None:
    """Import litellm and make one offline call with warnings ignored.

    litellm imports some provider modules lazily on the first call, and one of them makes
    pydantic warn; under pytest's ``filterwarnings = error`` that warning would turn the
    first call of a test into a failure. One throw-away call at import time absorbs it.
    """
    from instraug_dsl.runtime import llm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        llm.ensure_providers_registered()
        llm.run_async(
            llm.acomplete(
                llm.LLMCall(
                    model="offline/echo",
                    messages=({"role": "user", "content": "warm up"},),
                    temperature=0.0,
                    top_p=1.0,
                    max_tokens=8,
                    seed=0,
                    timeout=30.0,
                )
            )
        )


TOKEN = re.compile(r"⟦\d+⟧")
SENTENCES = (
    "Look at the image and answer ⟦1⟧ briefly.",
    "Describe the object in region ⟦1⟧ so that it can be found.",
    "Decide whether the text ⟦1⟧ matches the image.",
    "Write a short caption for the image.",
    "Given the question ⟦1⟧, choose the correct answer from ⟦2⟧.",
)


def make_request(
    i: int, *, task: str | None = None, model: str = "offline/rules", iteration: int = 0
) -> Request:
    """Request ``i``: one of `SENTENCES`, a seed of its own, a task per sentence."""
    protected = SENTENCES[i % len(SENTENCES)]
    tokens = TOKEN.findall(protected)
    names = ("question", "options")
    token_map = tuple((tok, names[k]) for k, tok in enumerate(tokens))
    body = protected
    for tok, name in token_map:
        body = body.replace(tok, "{" + name + "}")
    task_name = task or f"task{i % len(SENTENCES)}"
    return Request(
        id=f"r{i:04d}",
        task=task_name,
        instruction=f"{task_name}/i{i}",
        root=f"{task_name}/i{i}",
        parent=None,
        source_body=body,
        protected=protected,
        lead="",
        trail="",
        metaprompt="direct",
        temperature=0.6,
        sample=i,
        seed=1000 + i,
        iteration=iteration,
        messages=(
            Message("system", "Rewrite instructions; answer in JSON."),
            Message("user", f"Rewrite it.\n<instruction>{protected}</instruction>"),
        ),
        top_p=0.9,
        max_tokens=64,
        model=model,
        token_map=token_map,
        validator="v",
    )


def reask_text(request: Request) -> str:
    """The targeted correction (it repeats the instruction, as the compiler's does)."""
    return f"Keep every token exactly once.\n<instruction>{request.protected}</instruction>"


def evaluate(request: Request, text: str) -> tuple[Verdict, ...]:
    """Accept a reply whose rewrites keep every token once and hold no braces."""
    parsed = parse_reply(text)
    if parsed.problem:
        return (
            Verdict(
                False,
                None,
                (Reason("unparseable", parsed.problem),),
                "Answer with a JSON list of strings only.",
            ),
        )
    verdicts = []
    for rewrite in parsed.rewrites:
        reasons = []
        want = sorted(TOKEN.findall(request.protected))
        if sorted(TOKEN.findall(rewrite)) != want:
            reasons.append(Reason("placeholders", f"tokens {want} expected"))
        if "{" in rewrite or "}" in rewrite:
            reasons.append(Reason("braces", "stray braces"))
        if reasons:
            verdicts.append(Verdict(False, None, tuple(reasons), reask_text(request)))
            continue
        restored = rewrite
        for tok, name in request.token_map:
            restored = restored.replace(tok, "{" + name + "}")
        verdicts.append(Verdict(True, restored))
    return tuple(verdicts)
