"""Which placeholder-token family do real models keep intact?  (Measures survival.)

For each candidate token family, mask the same real MultiInstruct
instructions (bodies with at least one slot), send our real meta-prompt to
a real model, parse the reply, and count a sample as *survived* when every
token appears exactly as often as in the source and no other token-shaped
or damaged-token text appears.  Families are compared in the same run, on
the same instructions and seeds; the ratio column is against the `{A}`
family (the reference code's shape).

    python bench/bench_tokens.py --models qwen-0.5b qwen-1.5b --n 30

Instructions come from the MultiInstruct library (templates/multiinstruct)
when it declares tasks, else from a JSON-lines file given with --jsonl
(fields task, index, split, template; the trailing ``{options}`` is held out
as the library's ``pin`` does).  Runtime is bounded by --n and --max-tokens.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from instraug_dsl.compile.prompt import render_messages
from instraug_dsl.compile.reply import parse_reply
from instraug_dsl.compile.tokens import FAMILIES, TokenFamily, mask, split_tokens, template_pieces
from instraug_dsl.lang import ir
from instraug_dsl.lang.frontend import check
from instraug_dsl.lang.model import TaskSpec

CANDIDATES = (
    "brace_alpha",
    "white_bracket",
    "double_square",
    "double_angle",
    "double_at",
    "dunder",
)
ROOT = Path(__file__).resolve().parent.parent


def _bodies_from_library(limit: int, seed: int) -> list[tuple[str, tuple[ir.Piece, ...]]]:
    lib = ROOT / "templates" / "multiinstruct"
    result = check([lib]) if lib.is_dir() and any(lib.glob("*.iat")) else None
    if result is None or result.catalog is None:
        return []
    found = []
    for task in result.catalog.tasks.values():
        if task.split != "train" or not task.augment:
            continue
        for ins in task.instructions:
            if not ins.pure_placeholder and any(isinstance(p, ir.SlotRef) for p in ins.body):
                found.append((f"{task.name}/{ins.name}", ins.body))
    return _sample(found, limit, seed)


def _bodies_from_jsonl(path: Path, limit: int, seed: int) -> list[tuple[str, tuple[ir.Piece, ...]]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["split"] != "train" or row["task"] in ("VQA", "open-domain_VQA"):
            continue
        body = row["template"].rstrip()
        body = body.removesuffix("{options}").rstrip()  # what `pin "{options}"` holds out
        pieces = template_pieces(body)
        text_words = "".join(p.text for p in pieces if isinstance(p, ir.TextPiece)).strip()
        if text_words and any(isinstance(p, ir.SlotRef) for p in pieces):
            found.append((f"{row['task']}/i{row['index']}", pieces))
    return _sample(found, limit, seed)


def _sample(
    found: list[tuple[str, tuple[ir.Piece, ...]]], limit: int, seed: int
) -> list[tuple[str, tuple[ir.Piece, ...]]]:
    rng = random.Random(seed)
    return sorted(rng.sample(found, min(limit, len(found))), key=lambda x: x[0])


def survived(text: str, counts: Sequence[tuple[str, int]], family: TokenFamily) -> bool:
    """Every token exactly as often as in the source, nothing token-like besides."""
    expected = dict(counts)
    seen: dict[str, int] = {}
    for kind, value in split_tokens(text, family):
        if kind == "bare" or (kind == "token" and value not in expected):
            return False
        if kind == "token":
            seen[value] = seen.get(value, 0) + 1
    return seen == expected


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["qwen-0.5b"], help="embedded model names")
    ap.add_argument("--families", nargs="+", default=list(CANDIDATES), choices=sorted(FAMILIES))
    ap.add_argument(
        "--prompts", nargs="+", default=["direct"], help="meta-prompt names (templates/common)"
    )
    ap.add_argument("--n", type=int, default=30, help="instructions per family")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--deadline", type=float, default=300.0, help="seconds per reply before it counts as failed"
    )
    ap.add_argument("--jsonl", type=Path, help="MultiInstruct instructions file (fallback source)")
    ap.add_argument("--out", type=Path, help="also write every reply as JSON lines here")
    args = ap.parse_args(argv)

    from instraug_dsl.runtime import embedded
    from instraug_dsl.runtime.llm import BackendError

    bodies = _bodies_from_library(args.n, args.seed)
    if not bodies and args.jsonl:
        bodies = _bodies_from_jsonl(args.jsonl, args.n, args.seed)
    if not bodies:
        print("no instructions: add templates/multiinstruct or pass --jsonl", file=sys.stderr)
        return 2
    catalog = check([ROOT / "templates" / "common"]).raise_for_errors()
    prompts = {mp.name: mp for group in catalog.metaprompts.values() for mp in group}
    task = TaskSpec("bench", "", "train", "", "", True, "bench", None, ("target",), (), ())
    log = args.out.open("w", encoding="utf-8") if args.out else None
    n_slots = sum(len({p.name for p in b if isinstance(p, ir.SlotRef)}) for _, b in bodies)
    print(f"{len(bodies)} instructions, {n_slots} distinct slots in all")
    columns = [
        "model",
        "prompt",
        "family",
        "example",
        "survived",
        "parsed",
        "survived/parsed",
        "vs {A}",
    ]
    print("| " + " | ".join([*columns, "s/reply"]) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        embedded.load(model)
        for prompt_name in args.prompts:
            mp = prompts[prompt_name]
            base_rate = None
            for fam_name in args.families:
                fam = FAMILIES[fam_name]
                ok = parsed = 0
                start = time.monotonic()
                for i, (ident, pieces) in enumerate(bodies):
                    masked = mask(pieces, fam)
                    tokens = tuple(t for t, _ in masked.token_map)
                    msgs = render_messages(mp, masked.protected, tokens, task, family=fam)
                    sampling = {
                        "temperature": 0.6,
                        "top_p": 0.9,
                        "max_tokens": args.max_tokens,
                        "seed": args.seed + i,
                    }
                    t0 = time.monotonic()
                    try:
                        text = embedded.generate(
                            model,
                            [{"role": m.role, "content": m.content} for m in msgs],
                            sampling,
                            args.deadline,
                        ).text
                    except BackendError as exc:  # a timeout counts as a failed sample
                        text = f"<error: {exc}>"
                    reply = parse_reply(text)
                    good = False
                    if reply.problem is None:
                        parsed += 1
                        good = survived(reply.rewrites[0], masked.counts, fam)
                        ok += good
                    if log:
                        log.write(
                            json.dumps(
                                {
                                    "model": model,
                                    "prompt": prompt_name,
                                    "family": fam_name,
                                    "id": ident,
                                    "protected": masked.protected,
                                    "reply": text,
                                    "survived": good,
                                    "seconds": round(time.monotonic() - t0, 2),
                                },
                                ensure_ascii=False,
                            )
                            + "\n"
                        )
                        log.flush()
                elapsed = (time.monotonic() - start) / len(bodies)
                rate = ok / len(bodies)
                if fam_name == "brace_alpha":
                    base_rate = rate
                ratio = f"{rate / base_rate:.2f}x" if base_rate else "-"
                cond = f"{ok / parsed:.0%}" if parsed else "-"
                n = len(bodies)
                cells = [
                    model,
                    prompt_name,
                    fam_name,
                    f"`{fam.token(1)}`",
                    f"{ok}/{n} ({rate:.0%})",
                    f"{parsed}/{n}",
                    cond,
                    ratio,
                    f"{elapsed:.1f}",
                ]
                print("| " + " | ".join(cells) + " |", flush=True)
    if log:
        log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
