"""``iatc bootstrap``: ask a model for rewriting strategies and write them as a ``.iat`` file.

The compiler renders the ``bootstrap`` declaration and parses the reply
(:mod:`instraug_dsl.compile.bootstrap`); this module sends it once and writes the result,
checked by the language checker before success is reported.  The raw answer is kept next
to the output (``FILE.iat.raw.json``): re-running with the same prompt, model and settings
reuses it instead of asking again.  An existing ``.iat`` file that this command did not
write is never overwritten without ``force``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..compile.bootstrap import bootstrap_request, strategies_from_reply, strategies_source
from ..errors import IatCompileError, IatError, IatRuntimeError, OutputError, ProviderError
from ..fsio import read_json, write_json, write_text
from ..lang.model import Catalog
from . import llm
from .engine import EngineConfig, complete_with_retries


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """What ``iatc bootstrap`` produced."""

    path: Path
    raw_path: Path
    strategies: tuple[str, ...]
    cached: bool
    asked: int


def raw_path_for(out: Path) -> Path:
    """Where the raw answer of a bootstrap run is kept."""
    return out.with_name(out.name + ".raw.json")


def bootstrap(
    catalog: Catalog,
    prompt: str,
    out: Path,
    *,
    model: str,
    n: int | None = None,
    name: str = "bootstrapped",
    config: EngineConfig | None = None,
    temperature: float = 0.7,
    top_p: float = 0.9,
    max_tokens: int = 512,
    seed: int = 1,
    fresh: bool = False,
    force: bool = False,
) -> BootstrapResult:
    """Ask ``model`` for strategies with bootstrap prompt ``prompt``; write ``out``."""
    raw_path = raw_path_for(out)
    if out.is_dir():
        raise OutputError(f"{out} is a folder; -o names the .iat file to write")
    if out.exists() and not force and not raw_path.exists():
        raise OutputError(
            f"{out} exists and was not written by `iatc bootstrap`; choose another file or "
            "pass --force"
        )
    try:
        request = bootstrap_request(catalog, prompt, take=n)
    except IatCompileError as exc:
        raise IatRuntimeError(str(exc)) from None
    messages = tuple({"role": m.role, "content": m.content} for m in request.messages)
    cfg = config or EngineConfig()
    key = hashlib.sha256(
        json.dumps(
            [model, temperature, top_p, max_tokens, seed, messages],
            sort_keys=True,
            ensure_ascii=False,
        ).encode()
    ).hexdigest()
    answer, cached = (None, False) if fresh else (_cached_answer(raw_path, key), True)
    if answer is None:
        cached = False
        call = llm.LLMCall(
            model=model,
            messages=messages,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
            timeout=cfg.timeout,
            api_base=cfg.api_base,
            api_key=cfg.api_key,
        )
        result = llm.run_async(complete_with_retries(call, cfg))
        answer = result.text
        write_json(
            raw_path,
            {
                "key": key,
                "model": model,
                "prompt": prompt,
                "messages": list(messages),
                "answer": answer,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
            },
        )
    try:
        strategies = strategies_from_reply(answer, request.take)
    except IatCompileError as exc:
        raise ProviderError(
            f"{model} gave no usable strategies ({exc}); its answer is kept in {raw_path}. "
            "Try again with --fresh, another --seed, a smaller -n or a stronger --model."
        ) from None
    text = strategies_source(name, strategies, prompt=prompt, model=model)
    _check_text(text, out)
    write_text(out, text)
    return BootstrapResult(out, raw_path, strategies, cached, request.count)


def _cached_answer(path: Path, key: str) -> str | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except IatError:
        return None
    if isinstance(data, dict) and data.get("key") == key and isinstance(data.get("answer"), str):
        return str(data["answer"])
    return None


def _check_text(text: str, out: Path) -> None:
    """The file we are about to write must pass ``iatc check``: anything else is our bug."""
    from ..lang.frontend import check_text

    result = check_text(text, str(out))
    if not result.ok:
        raise IatRuntimeError(f"bootstrap would write an invalid file {out}:\n{result.render()}")
