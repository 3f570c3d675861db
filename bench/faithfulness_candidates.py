"""Generate real rewrite candidates for the faithfulness set (tests/data/faithfulness/).

Compiles a plan of the MultiInstruct library, draws a seeded sample of its requests (the
compiler's own prompts: direct and guided), sends each to an embedded model and writes
every rewrite of every reply, with its tokens mapped back to ``{slot}`` text, as one JSON
line: task, instruction id, source template, candidate, metaprompt, model, raw reply.
Nothing is judged here: the candidates are labelled by hand afterwards.

    python bench/faithfulness_candidates.py --model qwen-0.5b --n 120 -o /tmp/cands.jsonl
    python bench/faithfulness_candidates.py --model qwen-1.5b --n 60 --seed 2 \\
        --templates old_metaprompts.iat -o /tmp/cands15.jsonl

``--metaprompts FILE`` replaces templates/common/metaprompts.iat (to draw candidates from
an earlier prompt version).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _library(metaprompts: Path | None) -> Path:
    """The templates folder, with another metaprompts.iat when asked (a temporary copy)."""
    if metaprompts is None:
        return ROOT / "templates"
    tmp = Path(tempfile.mkdtemp(prefix="iatc-cands-"))
    shutil.copytree(ROOT / "templates", tmp / "templates")
    shutil.copy(metaprompts, tmp / "templates" / "common" / "metaprompts.iat")
    for path in (tmp / "templates" / "multiinstruct").glob("*.iat"):  # @common: the shipped one
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace('"@common/', '"../common/'), encoding="utf-8")
    return tmp / "templates"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen-0.5b", help="embedded model name")
    ap.add_argument("--plan", default="paper")
    ap.add_argument("--n", type=int, default=100, help="requests to send")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--metaprompts", type=Path, default=None)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)

    from instraug_dsl.compile import compile_plan, parse_reply, unmask
    from instraug_dsl.lang.frontend import check
    from instraug_dsl.runtime import embedded

    lib = _library(args.metaprompts)
    result = check([lib / "multiinstruct"], allow_imports=[lib])
    compiled = compile_plan(result.raise_for_errors(), args.plan)
    rng = random.Random(args.seed)
    requests = list(compiled.requests)
    rng.shuffle(requests)
    # One request per instruction first (spread over tasks), then the rest.
    first = []
    seen: set[str] = set()
    for r in requests:
        if r.instruction not in seen:
            seen.add(r.instruction)
            first.append(r)
    picked = (first + [r for r in requests if r not in first])[: args.n]
    embedded.load(f"embedded/{args.model}")
    start = time.monotonic()
    with args.output.open("a", encoding="utf-8") as out:
        for i, req in enumerate(picked, 1):
            msgs = [{"role": m.role, "content": m.content} for m in req.messages]
            sampling = {
                "temperature": req.temperature,
                "top_p": req.top_p,
                "max_tokens": args.max_tokens,
                "seed": req.seed,
            }
            try:
                gen = embedded.generate(f"embedded/{args.model}", msgs, sampling, 120.0)
                text = gen.text
            except Exception as exc:  # noqa: BLE001 - a failed call is just skipped
                print(f"{req.instruction}: {exc}", file=sys.stderr)
                continue
            parsed = parse_reply(text)
            rewrites = parsed.rewrites if parsed.problem is None else ()
            for rw in rewrites:
                row = {
                    "task": req.task,
                    "instruction": req.instruction,
                    "source": req.source_body,
                    "protected": req.protected,
                    "candidate": unmask(rw, req.token_map, compiled.validator_for(req).family),
                    "raw_rewrite": rw,
                    "metaprompt": req.metaprompt,
                    "origin": args.model,
                    "reply": text,
                }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            rate = (time.monotonic() - start) / i
            print(f"[{i}/{len(picked)}] {rate:.1f}s/req {req.instruction}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
