"""Benchmark: ROUGE-L near-dedup with rouge_score vs instraug_dsl.dataset.rouge.

Generates paraphrase-like instructions deterministically, then measures pairs/second of
(i) the straightforward Self-Instruct all-pairs loop built on rouge_score (time-capped: only the
first ``--baseline-n`` candidates), both as ``scorer.score(text, text)`` and with pre-tokenized
``_score_lcs`` (the faster variant the later Self-Instruct code uses), and (ii) ``near_dedup`` on
all candidates. A "pair" is one (candidate, reference-or-kept-candidate) comparison of the
greedy loop, counted identically for both. Requires the test extra (rouge_score).

Run: ``python bench/bench_rouge.py [--quick] [--n 2000] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instraug_dsl.dataset.rouge import near_dedup, tokenize  # noqa: E402

_VERBS = "write describe explain summarize list generate classify translate rewrite compare".split()
_OBJECTS = (
    "a short poem|an email|the main idea|three reasons|a recipe|a product review|a tweet|"
    "the following sentence|a list of steps|a haiku|a story|the function|a SQL query|a riddle"
).split("|")
_TOPICS = (
    "climate change|the French revolution|machine learning|a rainy day|your favourite book|"
    "healthy eating|remote work|the solar system|a job interview|recursion in Python|"
    "the water cycle|customer complaints|quantum computing|a birthday party|time management"
).split("|")
_FILLERS = (
    "please|in simple terms|for a child|in 50 words|step by step|using bullet points|"
    "with examples|briefly|in a formal tone|for beginners|as a table|without jargon|"
    "in exactly 3 sentences|from the perspective of a teacher|and give a title"
).split("|")
_SYNONYMS = {
    "write": ["compose", "draft", "create"],
    "describe": ["depict", "portray", "outline"],
    "explain": ["clarify", "elaborate on", "break down"],
    "summarize": ["condense", "sum up", "give a summary of"],
    "list": ["enumerate", "name", "give"],
    "short": ["brief", "tiny", "quick"],
    "following": ["given", "below", "provided"],
    "simple": ["plain", "easy", "clear"],
}


def _instruction(rng: random.Random) -> str:
    words = [rng.choice(_VERBS), rng.choice(_OBJECTS), "about", rng.choice(_TOPICS)]
    for _ in range(rng.randint(2, 5)):
        words.append(rng.choice(_FILLERS))
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", "?", "!", ":", ""])


def _paraphrase(text: str, rng: random.Random) -> str:
    words = text.split()
    out: list[str] = []
    for w in words:
        key = w.lower().strip(".?!:,")
        roll = rng.random()
        if key in _SYNONYMS and roll < 0.5:
            out.append(rng.choice(_SYNONYMS[key]))
        elif roll < 0.08:
            continue  # deletion
        else:
            out.append(w)
        if rng.random() < 0.06:
            out.append(rng.choice(["also", "carefully", "now", "really", "(optional)", "2x"]))
    if rng.random() < 0.2 and len(out) > 3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    if rng.random() < 0.1:
        out = [w.upper() for w in out]
    return "  ".join(out) if rng.random() < 0.05 else " ".join(out)


def make_data(n: int, n_refs: int, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic (candidates, references): fresh instructions mixed with paraphrases."""
    rng = random.Random(seed)
    references = [_instruction(rng) for _ in range(n_refs)]
    pool = list(references)
    candidates: list[str] = []
    while len(candidates) < n:
        roll = rng.random()
        if roll < 0.45:
            text = _instruction(rng)
        elif roll < 0.95:
            text = _paraphrase(rng.choice(pool), rng)
        else:
            text = rng.choice(pool)  # verbatim copy
        candidates.append(text)
        pool.append(text)
    return candidates, references


def baseline(
    candidates: list[str], references: list[str], threshold: float, pretokenize: bool
) -> tuple[list[int], int, float]:
    """Straightforward Self-Instruct loop on rouge_score: returns (kept, pairs, seconds)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool_text = list(references)
    pool_tok = [scorer._tokenizer.tokenize(t) for t in references]
    kept: list[int] = []
    pairs = 0
    start = time.perf_counter()
    for i, text in enumerate(candidates):
        if pretokenize:
            tokens = scorer._tokenizer.tokenize(text)
            scores = [rouge_scorer._score_lcs(tokens, t).fmeasure for t in pool_tok]
        else:
            scores = [scorer.score(text, t)["rougeL"].fmeasure for t in pool_text]
        pairs += len(scores)
        if not scores or max(scores) <= threshold:
            kept.append(i)
            pool_text.append(text)
            pool_tok.append(scorer._tokenizer.tokenize(text))
    return kept, pairs, time.perf_counter() - start


def ours(
    candidates: list[str], references: list[str], threshold: float, repeat: int
) -> tuple[list[int], int, float]:
    """``near_dedup`` timing (best of ``repeat``); pairs counted exactly like the baseline."""
    best = float("inf")
    result = near_dedup(candidates, references, threshold)
    for _ in range(repeat):
        start = time.perf_counter()
        result = near_dedup(candidates, references, threshold)
        best = min(best, time.perf_counter() - start)
    kept_set = set(result.kept)
    pairs, pool = 0, len(references)
    for i in range(len(candidates)):
        pairs += pool
        pool += i in kept_set
    return list(result.kept), pairs, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run for smoke testing")
    parser.add_argument("--n", type=int, default=2000, help="number of candidates")
    parser.add_argument("--refs", type=int, default=175, help="number of references (seeds)")
    parser.add_argument("--baseline-n", type=int, default=300, help="candidates for rouge_score")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, base_n, repeat = args.n, args.baseline_n, 5
    if args.quick:
        n, base_n, repeat = min(n, 500), min(base_n, 100), 2

    candidates, references = make_data(n, args.refs, args.seed)
    lengths = [len(tokenize(c)) for c in candidates]
    print(
        f"{n} candidates, {len(references)} references, tokens/candidate "
        f"min={min(lengths)} mean={sum(lengths) / n:.1f} max={max(lengths)}"
    )

    sub = candidates[:base_n]
    rows = []
    for label, pretok in [("rouge_score scorer.score", False), ("rouge_score _score_lcs", True)]:
        kept_b, pairs_b, secs_b = baseline(sub, references, args.threshold, pretok)
        rows.append((label, kept_b, pairs_b, secs_b))
        print(
            f"{label:<28} first {base_n:>5}: {pairs_b:>9} pairs in {secs_b:7.3f} s "
            f"= {pairs_b / secs_b:>12,.0f} pairs/s"
        )

    kept_o, pairs_o, secs_o = ours(candidates, references, args.threshold, repeat)
    rate_o = pairs_o / secs_o
    print(
        f"{'near_dedup (ours)':<28} all   {n:>5}: {pairs_o:>9} pairs in {secs_o:7.3f} s "
        f"= {rate_o:>12,.0f} pairs/s  (kept {len(kept_o)})"
    )

    # Same decisions on the subset the baseline saw (greedy, so a prefix run is comparable).
    kept_sub, _, _ = ours(sub, references, args.threshold, 0)
    for label, kept_b, pairs_b, secs_b in rows:
        same = "identical" if kept_b == kept_sub else "DIFFERENT"
        print(
            f"speed-up vs {label:<28}: {rate_o / (pairs_b / secs_b):8.1f}x  "
            f"(keep decisions on first {base_n}: {same})"
        )


if __name__ == "__main__":
    main()
