"""Exact and fast ROUGE-L F1 near-duplicate filtering (Self-Instruct / InstrAug style).

Scores are bit-identical to ``rouge_score.rouge_scorer.RougeScorer(["rougeL"],
use_stemmer=False).score(target, prediction)["rougeL"].fmeasure`` (rouge_score 0.1.2), but the
O(n*m) pure-Python LCS table is replaced by rapidfuzz's bit-parallel C++ LCS kernels, and the
all-pairs dedup loop prunes pairs with exact integer LCS cutoffs before evaluating the float
formula only for pairs that can exceed the threshold.

Token-less texts (empty, punctuation only, or only non-ASCII letters, which rouge_score's
tokenizer discards) score 0.0 against everything, exactly like rouge_score. They are therefore
never ROUGE-L near-duplicates; only the exact/normalized duplicate checks can drop them.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from rapidfuzz import process
from rapidfuzz.distance import LCSseq

__all__ = [
    "Drop",
    "DedupResult",
    "RougeLIndex",
    "f1_from_lcs",
    "near_dedup",
    "rouge_l_f1",
    "tokenize",
]

# rouge_score lowercases, replaces every run of [^a-z0-9] with a space, splits on whitespace and
# keeps tokens matching ^[a-z0-9]+$. The surviving tokens are exactly the maximal ASCII
# alphanumeric runs of the lowercased text, so one findall reproduces it.
_TOKEN_RE: Final = re.compile(r"[a-z0-9]+")

# Token ids are packed one per code point so each text becomes a short ``str`` that rapidfuzz
# reads zero-copy. Ids past the last code point fall back to a list[int]; rapidfuzz compares a
# str character by its ordinal, so both encodings of the same id are equal.
_CODE_POINT_LIMIT: Final = 0x10FFFF
# Id 0 is reserved for query tokens absent from the index: they can never match anything there.
_UNKNOWN: Final = 0

Encoded = str | list[int]  # one stored sequence as rapidfuzz sees it


def tokenize(text: str) -> tuple[str, ...]:
    """Tokenize like rouge_score's ``DefaultTokenizer(use_stemmer=False)``.

    Lowercasing happens before the ASCII filter, so e.g. the Kelvin sign becomes ``k`` while
    ``é`` or CJK characters act as separators and vanish.
    """
    return tuple(_TOKEN_RE.findall(text.lower()))


def f1_from_lcs(lcs: int, n_target: int, n_prediction: int) -> float:
    """ROUGE-L F1 from an LCS length, with rouge_score's exact float operation order."""
    if n_target == 0 or n_prediction == 0:
        # rouge_score returns the int 0 here; 0.0 == 0 and is the better-typed value.
        return 0.0
    precision = lcs / n_prediction
    recall = lcs / n_target
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l_f1(target: Sequence[str], prediction: Sequence[str]) -> float:
    """ROUGE-L F1 between two token sequences, bit-identical to rouge_score.

    The value is symmetric even in floats: ``p + r`` commutes and ``2 * p`` is exact, so
    ``(2 * p) * r == (2 * r) * p``. The argument names only mirror rouge_score's.
    """
    if not target or not prediction:
        return 0.0
    # Map tokens to small ints: rapidfuzz would otherwise hash multi-character strings, and a
    # hash collision, however unlikely, would silently inflate the LCS.
    ids: dict[str, int] = {}
    a = [ids.setdefault(tok, len(ids)) for tok in target]
    b = [ids.setdefault(tok, len(ids)) for tok in prediction]
    return f1_from_lcs(LCSseq.similarity(a, b), len(target), len(prediction))


@functools.lru_cache(maxsize=1 << 16)
def _min_lcs(n_target: int, n_prediction: int, threshold: float, strict: bool) -> int | None:
    """Smallest LCS whose float F1 is ``> threshold`` (or ``>=`` if not strict); None if none."""
    top = min(n_target, n_prediction)
    if threshold > 1.0:
        return None
    # F1 is 2*lcs/(n_t+n_p) up to a few ulps, so LCS values below this estimate stay at least
    # 4/(n_t+n_p) under the threshold; scanning upward from it with the exact float formula
    # then yields the true minimum even where rounding puts 2*lcs/(n_t+n_p) == threshold on
    # either side of it. (Rigorous while n_t + n_p stays far below 1e15 tokens.)
    start = (
        max(0, math.floor(threshold * (n_target + n_prediction) / 2) - 1) if threshold > 0 else 0
    )
    for lcs in range(start, top + 1):
        score = f1_from_lcs(lcs, n_target, n_prediction)
        if score > threshold or (not strict and score == threshold):
            return lcs
    return None


class RougeLIndex:
    """An append-only set of token sequences supporting exact max-ROUGE-L-F1 queries."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._size = 0
        # Sequences bucketed by token count. Within a bucket F1 depends on the LCS alone, so a
        # threshold on F1 becomes an exact *integer* LCS cutoff that rapidfuzz prunes with.
        # (Float cutoffs are unusable: rapidfuzz 3.14's Indel.normalized_similarity returns 0
        # when score_cutoff lies within ~1e-8 below, or equals, the true score.)
        self._buckets: dict[int, tuple[list[Encoded], list[int]]] = {}

    def __len__(self) -> int:
        return self._size

    def _encode(self, tokens: Sequence[str], grow: bool) -> Encoded:
        ids = self._ids
        if grow:
            codes = [ids.setdefault(tok, len(ids) + 1) for tok in tokens]
        else:
            # Queries must not grow the vocabulary: rejected candidates would leak memory.
            codes = [ids.get(tok, _UNKNOWN) for tok in tokens]
        if codes and max(codes) > _CODE_POINT_LIMIT:
            return codes
        return "".join(map(chr, codes))

    def add(self, tokens: Sequence[str]) -> int:
        """Append a token sequence and return its index (0-based, insertion order)."""
        encoded, positions = self._buckets.setdefault(len(tokens), ([], []))
        encoded.append(self._encode(tokens, grow=True))
        positions.append(self._size)
        self._size += 1
        return self._size - 1

    def _first_reaching(
        self, query: Encoded, n_query: int, threshold: float, strict: bool
    ) -> tuple[float, int] | None:
        """Exact (max F1, first argmax) if max F1 ``> threshold`` (``>=``), else None."""
        best, best_index = -math.inf, -1
        for n_item, (encoded, positions) in self._buckets.items():
            min_lcs = _min_lcs(n_query, n_item, threshold, strict)
            if min_lcs is None:
                continue  # the length ratio alone rules the whole bucket out
            hits = process.extract(
                query,
                encoded,
                scorer=LCSseq.similarity,
                processor=None,
                limit=None,
                score_cutoff=min_lcs,
            )
            for _, lcs, k in hits:
                score = f1_from_lcs(int(lcs), n_query, n_item)
                i = positions[k]
                # Ties resolve to the first inserted sequence, like np.argmax.
                if score > best or (score == best and i < best_index):
                    best, best_index = score, i
        if best_index < 0 or best < threshold or (strict and best == threshold):
            return None
        return best, best_index

    def max_f1(self, tokens: Sequence[str]) -> tuple[float, int]:
        """Return ``(max F1, index)`` of ``tokens`` against the stored sequences.

        ``index`` is the first stored sequence reaching the maximum (0 when every score is
        0.0, matching ``np.argmax``), or -1 when the index is empty.
        """
        if not self._size:
            return 0.0, -1
        query = self._encode(tokens, grow=False)
        best = 0.0
        for n_item, (encoded, _) in self._buckets.items():
            top = process.extractOne(query, encoded, scorer=LCSseq.similarity, processor=None)
            if top is not None:
                best = max(best, f1_from_lcs(int(top[1]), len(tokens), n_item))
        hit = self._first_reaching(query, len(tokens), best, strict=False)
        if hit is None:  # unreachable: some sequence attains ``best``
            raise AssertionError("max_f1 lost its maximum")
        return hit

    def best_above(self, tokens: Sequence[str], threshold: float) -> tuple[float, int] | None:
        """Return ``max_f1(tokens)`` if that maximum is ``> threshold``, else ``None``.

        Much faster than ``max_f1``: only sequences that can exceed the threshold are scored.
        """
        if math.isnan(threshold):
            raise ValueError("threshold must not be NaN")
        query = self._encode(tokens, grow=False)
        return self._first_reaching(query, len(tokens), threshold, strict=True)


@dataclass(frozen=True)
class Drop:
    """Why candidate ``index`` was dropped.

    ``reason`` is one of ``"exact_duplicate"``, ``"normalized_duplicate"``,
    ``"copy_of_original"``, ``"rouge_l_near_duplicate"``; ``collided_with`` is
    ``"original:<reference index>"`` or ``"kept:<candidate index>"``; ``score`` is the ROUGE-L F1
    against that text (1.0 for duplicates, 0.0 for duplicates of token-less texts).
    """

    index: int
    reason: str
    collided_with: str
    score: float


@dataclass(frozen=True)
class DedupResult:
    """Outcome of :func:`near_dedup`: kept candidate indices and the drops, both in input order."""

    kept: tuple[int, ...]
    dropped: tuple[Drop, ...]


def _normalize(text: str) -> str:
    # Collapse whitespace and lowercase with str.lower (not casefold): rouge_score's tokenizer
    # uses lower(), so normalized-equal texts always have identical ROUGE tokens.
    return " ".join(text.split()).lower()


def near_dedup(
    candidates: Sequence[str], references: Sequence[str], threshold: float = 0.7
) -> DedupResult:
    """Greedy Self-Instruct-style filter of ``candidates`` against ``references``.

    Candidates are visited in order. Candidate ``i`` is dropped, by the first matching rule, if
    it is (1) an exact or whitespace/case-normalized copy of a reference (``copy_of_original``),
    (2) identical to a kept candidate (``exact_duplicate``), (3) normalized-identical to one
    (``normalized_duplicate``), or (4) its ROUGE-L F1 against any reference or kept candidate
    is ``> threshold`` (``rouge_l_near_duplicate``, reported against the first best match,
    references first). Otherwise it is kept and joins the comparison set.

    Rules 1-3 only add reason codes except for token-less texts, which score 0.0 everywhere
    (see the module docstring) and so would otherwise never be dropped.
    """
    if math.isnan(threshold):
        raise ValueError("threshold must not be NaN")
    index = RougeLIndex()
    labels: list[str] = []
    ref_exact: dict[str, int] = {}
    ref_norm: dict[str, int] = {}
    for r, text in enumerate(references):
        ref_exact.setdefault(text, r)
        ref_norm.setdefault(_normalize(text), r)
        index.add(tokenize(text))
        labels.append(f"original:{r}")

    kept: list[int] = []
    dropped: list[Drop] = []
    kept_exact: dict[str, int] = {}
    kept_norm: dict[str, int] = {}
    for i, text in enumerate(candidates):
        tokens = tokenize(text)
        norm = _normalize(text)
        # Duplicates share their token sequence (see _normalize), so their F1 is that of a text
        # with itself: 1.0, or 0.0 when token-less, exactly as rouge_score computes it.
        self_score = 1.0 if tokens else 0.0
        if norm in ref_norm:
            r = ref_exact.get(text, ref_norm[norm])
            dropped.append(Drop(i, "copy_of_original", f"original:{r}", self_score))
        elif text in kept_exact:
            dropped.append(Drop(i, "exact_duplicate", f"kept:{kept_exact[text]}", self_score))
        elif norm in kept_norm:
            dropped.append(Drop(i, "normalized_duplicate", f"kept:{kept_norm[norm]}", self_score))
        elif (hit := index.best_above(tokens, threshold)) is not None:
            score, j = hit
            dropped.append(Drop(i, "rouge_l_near_duplicate", labels[j], score))
        else:
            kept.append(i)
            index.add(tokens)
            labels.append(f"kept:{i}")
            kept_exact[text] = i
            kept_norm[norm] = i
    return DedupResult(kept=tuple(kept), dropped=tuple(dropped))
