"""``iatc bootstrap``: ask a model for rewriting strategies and write them as a ``.iat`` file.

The bootstrap prompt (a ``bootstrap`` declaration) is rendered by the compiler, sent once, and
its reply parsed as a JSON list or a numbered list (the compiler's reply parser: nothing in the
reply is evaluated). The first ``n`` distinct strategies become ``strategies NAME { s1: "..."
... }``, written with proper string escapes and checked with the language checker before the
command reports success. The raw answer is kept next to the output (``FILE.iat.raw.json``):
re-running with the same prompt, model and settings reuses it instead of asking again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import IatRuntimeError, ProviderError
from ..lang.model import Catalog
from ..lang.strings import quote
from . import llm
from .engine import EngineConfig, complete_with_retries
from .outputs import write_json

_MAX_STRATEGY_CHARS = 400


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


def clean_strategies(items: tuple[str, ...]) -> list[str]:
    """Strip, drop empties and duplicates (case-insensitive), cap absurdly long items."""
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        text = " ".join(item.split())
        if not text or len(text) > _MAX_STRATEGY_CHARS:
            continue
        key = text.lower()
        if key not in seen:
            seen.add(key)
            out.append(text)
    return out


def render_strategies(name: str, strategies: list[str], *, prompt: str, model: str) -> str:
    """The ``.iat`` text of a strategies block (escapes handled by `quote`)."""
    lines = [
        f"# Rewriting strategies bootstrapped by `iatc bootstrap --prompt {prompt}`",
        f"# from {model}. Edit freely; reference them with `strategies {name}`.",
        "",
        f"strategies {name} {{",
    ]
    lines += [f"  s{i}: {quote(text)}" for i, text in enumerate(strategies, 1)]
    lines += ["}", ""]
    return "\n".join(lines)


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
) -> BootstrapResult:
    """Ask ``model`` for strategies with bootstrap prompt ``prompt``; write ``out``."""
    from ..compile.prompt import render_bootstrap
    from ..compile.reply import parse_reply

    spec = catalog.bootstraps.get(prompt)
    if spec is None:
        known = ", ".join(sorted(catalog.bootstraps)) or "none declared"
        raise IatRuntimeError(f"no bootstrap prompt named {prompt!r} (known: {known})")
    keep = n if n is not None else spec.take
    if keep < 1:
        raise IatRuntimeError("-n must be at least 1")
    asked = max(spec.count, keep)
    messages = tuple(
        {"role": m.role, "content": m.content}
        for m in render_bootstrap(dataclasses.replace(spec, count=asked))
    )
    cfg = config or EngineConfig()
    key = hashlib.sha256(
        json.dumps(
            [model, cfg.api_base or "", temperature, top_p, max_tokens, seed, messages],
            sort_keys=True,
            ensure_ascii=False,
        ).encode()
    ).hexdigest()
    raw_path = raw_path_for(out)
    answer, cached = _cached_answer(raw_path, key) if not fresh else (None, False)
    if answer is None:
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
        out.parent.mkdir(parents=True, exist_ok=True)
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
    parsed = parse_reply(answer)
    strategies = clean_strategies(parsed.rewrites)[:keep]
    if not strategies:
        why = parsed.problem or "no usable strategy in the list"
        raise ProviderError(
            f"{model} gave no usable strategies ({why}); its answer is kept in {raw_path}. "
            "Try again with --fresh, another --seed or a stronger --model."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        render_strategies(name, strategies, prompt=prompt, model=model), encoding="utf-8"
    )
    _check_written(out)
    return BootstrapResult(out, raw_path, tuple(strategies), cached, asked)


def _cached_answer(path: Path, key: str) -> tuple[str | None, bool]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, False
    if isinstance(data, dict) and data.get("key") == key and isinstance(data.get("answer"), str):
        return str(data["answer"]), True
    return None, False


def _check_written(path: Path) -> None:
    """The file we wrote must pass ``iatc check``: anything else is our bug."""
    from ..lang.frontend import check

    result = check([path])
    if not result.ok:
        raise IatRuntimeError(f"bootstrap wrote an invalid file {path}:\n{result.render()}")
