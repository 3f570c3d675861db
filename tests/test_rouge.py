"""Exactness of instraug_dsl.dataset.rouge against rouge_score, plus hand-checked drop reasons.

rouge_score is a test-only dependency; it is imported lazily through ``_rouge()`` so the
hand-written examples still run without it.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instraug_dsl.dataset import rouge
from instraug_dsl.dataset.rouge import (
    DedupResult,
    Drop,
    RougeLIndex,
    f1_from_lcs,
    near_dedup,
    rouge_l_f1,
    tokenize,
)

# Word pool for realistic, paraphrase-like texts: ASCII words in several casings, digits,
# punctuation, whitespace variants, and unicode that rouge_score's tokenizer mangles or drops
# (accents, CJK, ligatures, the Kelvin sign and dotted I, which lowercase into ASCII).
WORDS = (
    "write Write WRITE a the an poem story email summary about of for to in and or 3 10 2024 "
    "explain Explain list describe give three five short brief sea cat code python sql "
    "don't e-mail step-by-step C++ snake_case A1b2 x² ½ café naïve Straße 日本語 ﬁle "
    "\u212aelvin \u0130stanbul ١٢٣ ... !! ? , ; : - ( ) \" ' \t \n"
).split(" ") + ["", " ", "  ", "\t", "\n"]
SEPARATORS = [" ", " ", " ", "  ", ", ", "\n", "-", "", ". "]


def _rouge() -> Any:
    """rouge_score's rouge_scorer module (skips the test when rouge_score is absent)."""
    return pytest.importorskip("rouge_score.rouge_scorer")


@functools.cache
def _scorer() -> Any:
    return _rouge().RougeScorer(["rougeL"], use_stemmer=False)


def ref_f1(target: str, prediction: str) -> float:
    fmeasure: float = _scorer().score(target, prediction)["rougeL"].fmeasure
    return fmeasure


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def reference_dedup(
    candidates: Sequence[str], references: Sequence[str], threshold: float
) -> DedupResult:
    """The specification as a plain loop over rouge_score, with no index and no shortcuts."""
    pool: list[tuple[str, str]] = [(t, f"original:{r}") for r, t in enumerate(references)]
    kept: list[int] = []
    dropped: list[Drop] = []
    for i, text in enumerate(candidates):
        exact_refs = [r for r, t in enumerate(references) if t == text]
        norm_refs = [r for r, t in enumerate(references) if _norm(t) == _norm(text)]
        exact_kept = [j for j in kept if candidates[j] == text]
        norm_kept = [j for j in kept if _norm(candidates[j]) == _norm(text)]
        if exact_refs or norm_refs:
            r = (exact_refs or norm_refs)[0]
            score = ref_f1(text, references[r])
            dropped.append(Drop(i, "copy_of_original", f"original:{r}", score))
        elif exact_kept:
            j = exact_kept[0]
            score = ref_f1(text, candidates[j])
            dropped.append(Drop(i, "exact_duplicate", f"kept:{j}", score))
        elif norm_kept:
            j = norm_kept[0]
            score = ref_f1(text, candidates[j])
            dropped.append(Drop(i, "normalized_duplicate", f"kept:{j}", score))
        else:
            # Self-Instruct: score the new text (target) against every existing one.
            scores = [ref_f1(text, other) for other, _ in pool]
            if scores and max(scores) > threshold:
                best = scores.index(max(scores))  # first maximum, like np.argmax
                dropped.append(Drop(i, "rouge_l_near_duplicate", pool[best][1], scores[best]))
            else:
                kept.append(i)
                pool.append((text, f"kept:{i}"))
    return DedupResult(kept=tuple(kept), dropped=tuple(dropped))


def _fresh(rng: random.Random) -> str:
    n = rng.randint(0, 25)
    parts: list[str] = []
    for _ in range(n):
        parts += [rng.choice(WORDS), rng.choice(SEPARATORS)]
    return "".join(parts)


def _mutate(text: str, rng: random.Random) -> str:
    """Paraphrase-like edit: word deletions/insertions/swaps, case and spacing changes."""
    words = text.split(" ")
    for _ in range(rng.randint(0, 4)):
        op = rng.randrange(6)
        if op == 0 and words:
            del words[rng.randrange(len(words))]
        elif op == 1:
            words.insert(rng.randint(0, len(words)), rng.choice(WORDS))
        elif op == 2 and len(words) > 1:
            k = rng.randrange(len(words) - 1)
            words[k], words[k + 1] = words[k + 1], words[k]
        elif op == 3 and words:
            words[rng.randrange(len(words))] = rng.choice(WORDS)
        elif op == 4:
            return rng.choice([str.upper, str.lower, str.title])(" ".join(words))
        else:
            return "  " + "   ".join(words) + "\n"
    return " ".join(words)


def _corpus(rng: random.Random, n_refs: int, n_cands: int) -> tuple[list[str], list[str]]:
    refs = [_fresh(rng) for _ in range(n_refs)]
    seen = list(refs)
    cands: list[str] = []
    for _ in range(n_cands):
        roll = rng.random()
        if roll < 0.3 or not seen:
            text = _fresh(rng)
        elif roll < 0.85:
            text = _mutate(rng.choice(seen), rng)
        else:
            text = rng.choice(seen)
        cands.append(text)
        seen.append(text)
    return cands, refs


THRESHOLDS = st.sampled_from([0.7, 0.7, 0.5, 0.0, 1.0, 2 / 3, 0.3, -0.5]) | st.floats(0, 1)
RNG_SEEDS = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------------------- tokenizer


@settings(max_examples=1500, deadline=None)
@given(st.text())
def test_tokenize_matches_rouge_score_on_arbitrary_unicode(text: str) -> None:
    assert tokenize(text) == tuple(_scorer()._tokenizer.tokenize(text))


def test_tokenize_surprises() -> None:
    # Lowercasing precedes the ASCII filter: Kelvin sign -> "k", dotted I -> "i" + U+0307.
    assert tokenize("\u212aELVIN \u0130stanbul") == ("kelvin", "i", "stanbul")
    # Everything non-ASCII is a separator: accents split words, CJK/Arabic digits vanish.
    assert tokenize("café naïve 日本語 ١٢٣ x²") == ("caf", "na", "ve", "x")
    assert tokenize("don't e-mail snake_case") == ("don", "t", "e", "mail", "snake", "case")
    assert tokenize("") == tokenize("?!") == ()


# ---------------------------------------------------------------------------- F1 exactness


def test_f1_formula_exhaustive_small_lengths() -> None:
    fmeasure = pytest.importorskip("rouge_score.scoring").fmeasure
    for n_t in range(1, 41):
        for n_p in range(1, 41):
            for lcs in range(min(n_t, n_p) + 1):
                assert f1_from_lcs(lcs, n_t, n_p) == fmeasure(lcs / n_p, lcs / n_t)
                # Symmetric even in floats (2*p is exact, + and * commute).
                assert f1_from_lcs(lcs, n_t, n_p) == f1_from_lcs(lcs, n_p, n_t)


def test_f1_threshold_boundary_follows_floats_not_fractions() -> None:
    # 2*7/(8+12) == 0.7 exactly as a fraction, but rouge_score's float order gives
    # 0.7000000000000001 (dropped at 0.7), while 7/10 vs 7/10 lands exactly on 0.7 (kept).
    assert f1_from_lcs(7, 12, 8) == 0.7000000000000001
    assert f1_from_lcs(7, 10, 10) == 0.7
    assert f1_from_lcs(21, 23, 37) == 0.6999999999999998


def test_min_lcs_is_exact_minimum() -> None:
    thresholds = [0.0, 0.3, 0.5, 2 / 3, 0.7, 0.75, 0.9, 1.0, -0.1, 1.5]
    thresholds += [2 * k / n for n in (13, 20, 37) for k in range(1, n // 2 + 1)]
    for n_t in range(0, 31):
        for n_p in range(0, 31):
            for t in thresholds:
                for strict in (True, False):
                    passing = [
                        lcs
                        for lcs in range(min(n_t, n_p) + 1)
                        if (f := f1_from_lcs(lcs, n_t, n_p)) > t or (not strict and f == t)
                    ]
                    expected = passing[0] if passing else None
                    assert rouge._min_lcs(n_t, n_p, t, strict) == expected


@settings(max_examples=1500, deadline=None)
@given(st.text(), st.text())
def test_rouge_l_f1_matches_rouge_score_on_arbitrary_text(a: str, b: str) -> None:
    ta, tb = tokenize(a), tokenize(b)
    assert rouge_l_f1(ta, tb) == ref_f1(a, b)
    assert rouge_l_f1(tb, ta) == ref_f1(a, b) == ref_f1(b, a)


# Tiny alphabets make long common subsequences, ties and equal fractions frequent.
_SMALL_TOKENS = st.lists(st.sampled_from(["a", "b", "c", "dd"]), max_size=45)


@settings(max_examples=1500, deadline=None)
@given(_SMALL_TOKENS, _SMALL_TOKENS)
def test_rouge_l_f1_matches_score_lcs_on_small_alphabet(a: list[str], b: list[str]) -> None:
    expected = _rouge()._score_lcs(a, b).fmeasure
    assert rouge_l_f1(a, b) == expected
    assert isinstance(rouge_l_f1(a, b), float)


def test_rouge_l_f1_matches_rouge_score_on_paraphrase_pairs() -> None:
    rng = random.Random(1234)
    for _ in range(6000):
        a = _fresh(rng)
        b = _mutate(a, rng) if rng.random() < 0.8 else _fresh(rng)
        assert rouge_l_f1(tokenize(a), tokenize(b)) == ref_f1(a, b)
        assert rouge_l_f1(tokenize(b), tokenize(a)) == ref_f1(b, a)


# ---------------------------------------------------------------------------- index


@settings(max_examples=300, deadline=None)
@given(st.lists(_SMALL_TOKENS, max_size=25), _SMALL_TOKENS, THRESHOLDS)
def test_index_matches_brute_force(
    stored: list[list[str]], query: list[str], threshold: float
) -> None:
    index = RougeLIndex()
    for tokens in stored:
        index.add(tokens)
    scores = [rouge_l_f1(query, tokens) for tokens in stored]
    expected = (max(scores), scores.index(max(scores))) if scores else (0.0, -1)
    assert index.max_f1(query) == expected
    above = expected if scores and expected[0] > threshold else None
    assert index.best_above(query, threshold) == above


# ---------------------------------------------------------------------------- near_dedup


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RNG_SEEDS, st.integers(0, 8), st.integers(0, 30), THRESHOLDS)
def test_near_dedup_matches_reference_loop(
    seed: int, n_refs: int, n_cands: int, threshold: float
) -> None:
    cands, refs = _corpus(random.Random(seed), n_refs, n_cands)
    assert near_dedup(cands, refs, threshold) == reference_dedup(cands, refs, threshold)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=30), max_size=15), st.lists(st.text(max_size=30), max_size=5))
def test_near_dedup_matches_reference_loop_on_arbitrary_text(
    cands: list[str], refs: list[str]
) -> None:
    assert near_dedup(cands, refs) == reference_dedup(cands, refs, 0.7)


def test_near_dedup_matches_reference_loop_on_larger_corpus() -> None:
    cands, refs = _corpus(random.Random(7), 20, 250)
    result = near_dedup(cands, refs)
    assert result == reference_dedup(cands, refs, 0.7)
    assert all(isinstance(d.score, float) for d in result.dropped)
    assert {d.reason for d in result.dropped} == {
        "copy_of_original",
        "exact_duplicate",
        "normalized_duplicate",
        "rouge_l_near_duplicate",
    }


def test_code_point_overflow_fallback_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    cands, refs = _corpus(random.Random(99), 10, 120)
    expected = near_dedup(cands, refs)
    # Force most token ids past the "last code point", mixing str and list[int] encodings.
    monkeypatch.setattr(rouge, "_CODE_POINT_LIMIT", 5)
    assert near_dedup(cands, refs) == expected
    assert expected == reference_dedup(cands, refs, 0.7)


# ---------------------------------------------------------------------------- hand-written


def test_drop_reasons_and_collisions_by_hand() -> None:
    refs = ["Write a poem about the sea.", "Summarize the following article in three sentences."]
    cands = [
        "Write a poem about the sea.",  # 0 exact copy of original 0
        "  write a POEM about\tthe sea. ",  # 1 normalized copy of original 0
        "Explain recursion to a five year old.",  # 2 kept
        "Explain recursion to a five year old.",  # 3 exact duplicate of 2
        "explain  recursion to a FIVE year old.",  # 4 normalized duplicate of 2
        "Explain recursion to a five-year-old!",  # 5 same tokens as 2: F1 1.0
        "Write a short poem about the sea.",  # 6 F1 12/13 against original 0
        "",  # 7 token-less: F1 0.0 with everything, kept
        "",  # 8 exact duplicate of 7
        "?!",  # 9 token-less, not a normalized duplicate of "": kept
        "List three colors of the rainbow.",  # 10 kept
        "Summarize this article in three sentences.",  # 11 F1 5/7*... against original 1
    ]
    result = near_dedup(cands, refs)
    assert result.kept == (2, 7, 9, 10)
    assert result.dropped == (
        Drop(0, "copy_of_original", "original:0", 1.0),
        Drop(1, "copy_of_original", "original:0", 1.0),
        Drop(3, "exact_duplicate", "kept:2", 1.0),
        Drop(4, "normalized_duplicate", "kept:2", 1.0),
        Drop(5, "rouge_l_near_duplicate", "kept:2", 1.0),
        Drop(6, "rouge_l_near_duplicate", "original:0", 2 * 1.0 * (6 / 7) / (1.0 + 6 / 7)),
        Drop(8, "exact_duplicate", "kept:7", 0.0),
        Drop(11, "rouge_l_near_duplicate", "original:1", f1_from_lcs(5, 6, 7)),
    )
    assert 0.923 < result.dropped[5].score < 0.924


def test_threshold_boundary_in_near_dedup() -> None:
    ref = "alpha beta gamma delta epsilon zeta eta theta"  # 8 tokens
    # LCS 7 with 12 tokens: F1 is 0.7 as a fraction but 0.7000000000000001 in floats -> drop.
    over = "alpha beta gamma delta epsilon zeta eta one two three four five"
    # LCS 7 with 10 vs 10 tokens: exactly 0.7 in floats -> kept (drop needs > 0.7).
    ref10 = "a1 a2 a3 a4 a5 a6 a7 a8 a9 a10"
    equal = "a1 a2 a3 a4 a5 a6 a7 b8 b9 b10"
    assert near_dedup([over], [ref]).dropped == (
        Drop(0, "rouge_l_near_duplicate", "original:0", 0.7000000000000001),
    )
    assert near_dedup([equal], [ref10]).kept == (0,)


def test_first_best_match_wins_and_references_come_first() -> None:
    refs = ["x y z", "x y w"]
    cands = ["p q r s", "x y", "p q r"]
    result = near_dedup(cands, refs, threshold=0.5)
    # "x y" scores 0.8 against both originals: the first one is reported.
    # "p q r" scores 6/7 against kept candidate 0 only.
    assert result.kept == (0,)
    assert result.dropped == (
        Drop(1, "rouge_l_near_duplicate", "original:0", 0.8),
        Drop(2, "rouge_l_near_duplicate", "kept:0", f1_from_lcs(3, 3, 4)),
    )
    assert result == reference_dedup(cands, refs, 0.5)


def test_empty_inputs() -> None:
    assert near_dedup([], []) == DedupResult(kept=(), dropped=())
    assert near_dedup(["only one"], []) == DedupResult(kept=(0,), dropped=())
    assert RougeLIndex().max_f1(("a",)) == (0.0, -1)
    index = RougeLIndex()
    index.add(("a",))
    assert index.max_f1(()) == (0.0, 0)
    assert index.best_above((), 0.7) is None
    assert rouge_l_f1((), ("a",)) == rouge_l_f1(("a",), ()) == 0.0
    with pytest.raises(ValueError):
        near_dedup(["x"], ["y"], threshold=float("nan"))
