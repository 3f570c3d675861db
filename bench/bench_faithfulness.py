"""How well do the validators (and a judge after them) tell faithful rewrites from unfaithful
ones?  (Rule quality, then judge quality.)

Runs the compiled validators of the MultiInstruct ``paper`` plan over the labelled set
tests/data/faithfulness/labelled.jsonl (real rewrites from the embedded models plus
hand-written hard negatives, each labelled faithful or unfaithful with its kind) and, in
the same run, the paper's filters alone (length ratio in (0, 2.0) and the placeholder
multiset) as the baseline.  Prints, per kind, how many items each judge accepts, then
precision and recall of acceptance (faithful = positive class).

Then the library's judge (templates/common/judges.iat, ``same_task``) scores every item the
validators accepted, once per model (``--models``, default the embedded 0.5B and 1.5B), with
log P(yes) - log P(no) of the first answer token.  The threshold keeps at least 85 % of the
faithful rewrites the judge sees (``--keep``), calibrated by 2-fold cross-validation grouped
by original instruction (the rewrites of one instruction are all in one fold): each fold is
judged with the threshold calibrated on the other, so no item is judged with a threshold fit
on itself.  The threshold fit on all items (the library default's candidate) is printed too.
Judge calls are cached in ``--cache`` (a call cache like a run's), so a re-run only prints.

    python bench/bench_faithfulness.py                 # the tables (judge calls cached)
    python bench/bench_faithfulness.py --no-judge      # validators only, no model
    python bench/bench_faithfulness.py -v              # plus every faithful item rejected

Nothing is timed in tests; tests/test_faithfulness.py asserts the validators' goal on the same
set.  Wall time per judge call is the latency stored with each cached call (on the machine
and load it was measured at: the script prints the load average).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from faithfulness_support import HARD_KINDS, KINDS, Item, evaluate, load  # noqa: E402

from instraug_dsl.compile.judge import render_judge  # noqa: E402
from instraug_dsl.fsio import scratch_dir  # noqa: E402
from instraug_dsl.lang.frontend import check  # noqa: E402
from instraug_dsl.lang.model import JudgeSpec  # noqa: E402
from instraug_dsl.runtime.cache import CachedCall, CallCache  # noqa: E402
from instraug_dsl.runtime.judge import JudgeScore, judge_key, score_messages  # noqa: E402

#: The kinds a word-level rule cannot see: what a judge is for.
SEMANTIC_KINDS = ("task_change", "polarity_flip", "swapped_roles", "added_constraint")
DEFAULT_MODELS = ("embedded/qwen-0.5b", "embedded/qwen-1.5b")


@dataclass
class Scored:
    """One model's scores of the items the validators accepted (by item index)."""

    model: str
    scores: dict[int, float]
    latencies: list[float]
    made: int


def library_judge(path: Path, name: str) -> JudgeSpec:
    """The judge ``name`` declared in ``path`` (checked like any source)."""
    catalog = check([path]).raise_for_errors()
    return catalog.judges[name]


async def score_all(
    spec: JudgeSpec,
    model: str,
    items: Sequence[Item],
    which: Sequence[int],
    cache: CallCache,
    api_base: str | None = None,
) -> Scored:
    """Score ``items[i]`` for every ``i`` in ``which`` (cached calls are not made again)."""
    scores: dict[int, float] = {}
    latencies: list[float] = []
    made = 0
    # Rewrites of one original back to back: an embedded model then evaluates only what
    # follows the original in the prompt (llama.cpp keeps the common prefix).
    ordered = sorted(which, key=lambda i: (items[i].source, i))
    for n, i in enumerate(ordered, 1):
        it = items[i]
        messages = render_judge(spec, it.source, it.candidate, it.task)
        wire = [{"role": m.role, "content": m.content} for m in messages]
        key = judge_key(model=model, messages=wire)
        hit = cache.get(key)
        score = JudgeScore.from_cache(hit) if hit is not None else None
        if score is None:
            score = await score_messages(model, wire, timeout=600.0, api_base=api_base)
            cache.put(
                key,
                request=f"bench:{spec.name}",
                attempt=0,
                model=model,
                call=CachedCall(
                    score.payload(), score.prompt_tokens, 0, score.cost_usd, score.latency_s
                ),
            )
            made += 1
            if made % 20 == 0:
                print(f"  {model}: {n}/{len(which)} scored", file=sys.stderr, flush=True)
        if score.score is None:  # no log-probabilities: a yes/no answer as +-inf
            scores[i] = math.inf if score.keeps(0.0) else -math.inf
        else:
            scores[i] = score.score
        latencies.append(score.latency_s)
    return Scored(model, scores, latencies, made)


def threshold_for(faithful_scores: Sequence[float], keep: float) -> float:
    """The highest threshold that keeps at least ``keep`` of ``faithful_scores``."""
    ranked = sorted(faithful_scores)
    need = math.ceil(keep * len(ranked) - 1e-9)
    return ranked[len(ranked) - need] if need else math.inf


def folds(items: Sequence[Item], which: Sequence[int]) -> list[list[int]]:
    """Two folds of ``which``, grouped by original instruction (a hash decides the fold)."""
    out: list[list[int]] = [[], []]
    for i in which:
        digest = hashlib.sha256(items[i].instruction.encode()).digest()
        out[digest[0] % 2].append(i)
    return out


def cross_validated(
    items: Sequence[Item], scored: Scored, keep: float
) -> tuple[dict[int, bool], list[float]]:
    """Keep/drop per item, each fold judged with the threshold calibrated on the other."""
    parts = folds(items, sorted(scored.scores))
    decided: dict[int, bool] = {}
    thresholds = []
    for k in (0, 1):
        calibrate, judged = parts[1 - k], parts[k]
        faithful = [scored.scores[i] for i in calibrate if items[i].label == "faithful"]
        t = threshold_for(faithful, keep)
        thresholds.append(t)
        for i in judged:
            decided[i] = scored.scores[i] >= t
    return decided, thresholds


def auc(items: Sequence[Item], scored: Scored) -> float:
    """ROC AUC of the score for faithful vs unfaithful among the judged items."""
    pos = [s for i, s in scored.scores.items() if items[i].label == "faithful"]
    neg = [s for i, s in scored.scores.items() if items[i].label != "faithful"]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def precision_recall(items: Sequence[Item], accepted: Sequence[bool]) -> tuple[float, float, int]:
    """Precision and recall of acceptance (faithful = positive), and unfaithful accepted."""
    pos = [it.label == "faithful" for it in items]
    tp = sum(a and p for a, p in zip(accepted, pos, strict=True))
    fp = sum(a and not p for a, p in zip(accepted, pos, strict=True))
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / sum(pos) if any(pos) else 1.0), fp


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="list rejected faithful items")
    ap.add_argument("--no-judge", action="store_true", help="validators only (no model)")
    ap.add_argument(
        "--models", default=",".join(DEFAULT_MODELS), help="judge models, comma-separated"
    )
    ap.add_argument("--judge-file", type=Path, default=ROOT / "templates" / "common" / "judges.iat")
    ap.add_argument("--judge", default="same_task", help="the judge declared in --judge-file")
    ap.add_argument("--api-base", help="server of an openai/NAME judge model (key: env)")
    ap.add_argument("--keep", type=float, default=0.85, help="share of faithful rewrites kept")
    ap.add_argument(
        "--cache",
        type=Path,
        default=scratch_dir("bench") / "faithfulness-judge.sqlite",
        help="call cache of judge calls",
    )
    args = ap.parse_args(argv)
    items = load()
    result = evaluate(items)
    origins = Counter(it.origin for it in items)
    print(f"{len(items)} labelled rewrites: " + ", ".join(f"{n} {o}" for o, n in origins.items()))
    judged: list[tuple[Scored, dict[int, bool], list[float], float]] = []
    if not args.no_judge:
        spec = library_judge(args.judge_file, args.judge)
        accepted = [i for i, a in enumerate(result.ours) if a]
        print(
            f"judge `{spec.name}` ({args.judge_file.name}) on the {len(accepted)} rewrites the "
            f"validators accept (load average now {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores; a cached call keeps the latency it was measured with)",
        )
        with CallCache(args.cache) as cache:
            for model in (m.strip() for m in args.models.split(",") if m.strip()):
                started = time.monotonic()
                scored = asyncio.run(score_all(spec, model, items, accepted, cache, args.api_base))
                decided, thresholds = cross_validated(items, scored, args.keep)
                everything = [scored.scores[i] for i in accepted if items[i].label == "faithful"]
                full = threshold_for(everything, args.keep)
                judged.append((scored, decided, thresholds, full))
                print(
                    f"  {model}: {scored.made} calls made now "
                    f"({time.monotonic() - started:.0f} s), "
                    f"{len(scored.scores) - scored.made} from the cache",
                    file=sys.stderr,
                )
    print()
    header = "| kind | items | accepted: validators |"
    rule = "|---|---:|---:|"
    for scored, *_ in judged:
        header += f" + judge {scored.model.removeprefix('embedded/')} |"
        rule += "---:|"
    header += " accepted: paper filters |"
    rule += "---:|"
    print(header)
    print(rule)
    for kind in ("faithful", *KINDS):
        idx = [i for i, it in enumerate(items) if it.kind == kind]
        if not idx:
            continue
        mark = " (must be 0)" if kind in HARD_KINDS else ""
        line = f"| {kind}{mark} | {len(idx)} | {sum(result.ours[i] for i in idx)} |"
        for _, decided, _, _ in judged:
            line += f" {sum(result.ours[i] and decided[i] for i in idx)} |"
        line += f" {sum(result.paper[i] for i in idx)} |"
        print(line)
    print()
    print(
        "| accepted by | precision | recall of faithful | unfaithful accepted"
        " | semantic kinds accepted |"
    )
    print("|---|---:|---:|---:|---:|")
    semantic = [i for i, it in enumerate(items) if it.kind in SEMANTIC_KINDS]

    def row(name: str, acc: list[bool]) -> None:
        p, r, fp = precision_recall(items, acc)
        sem = sum(acc[i] for i in semantic)
        print(f"| {name} | {p:.3f} | {r:.3f} | {fp} | {sem} of {len(semantic)} |")

    row("validators", list(result.ours))
    for scored, decided, _, _ in judged:
        acc = [result.ours[i] and decided.get(i, False) for i in range(len(items))]
        row(f"validators + judge {scored.model.removeprefix('embedded/')}", acc)
    row("paper filters (baseline)", list(result.paper))
    if judged:
        print()
        print(
            "| judge model | ROC AUC (after validators) | thresholds (fold 1, fold 2) | "
            "threshold on all | faithful kept by the judge | calls per rewrite | "
            "s per call (median) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for scored, decided, thresholds, full in judged:
            faithful = [i for i in scored.scores if items[i].label == "faithful"]
            kept = sum(decided[i] for i in faithful)
            median = statistics.median(scored.latencies) if scored.latencies else 0.0
            print(
                f"| {scored.model} | {auc(items, scored):.3f} | "
                f"{thresholds[0]:.2f}, {thresholds[1]:.2f} | {full:.2f} | "
                f"{kept}/{len(faithful)} | 1 | {median:.2f} |"
            )
    codes = Counter(code for _, found in result.rejected_faithful() for code in set(found))
    if codes:
        print()
        print(
            "faithful rewrites rejected, by reason: "
            + ", ".join(f"{c} {n}" for c, n in codes.most_common())
        )
    if args.verbose:
        for it, c in result.rejected_faithful():
            print(f"  {it.instruction}: {it.candidate!r} -> {', '.join(c)}")
        for it in result.hard_accepted():
            print(f"  ACCEPTED {it.kind}: {it.instruction}: {it.candidate!r}")
        for scored, decided, _, _ in judged:
            for i, s in sorted(scored.scores.items(), key=lambda kv: kv[1]):
                it = items[i]
                verdict = "kept" if decided[i] else "out"
                print(f"  {scored.model} {s:+.2f} {verdict} {it.kind}: {it.candidate!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
