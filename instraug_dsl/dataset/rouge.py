"""Exact and fast ROUGE-L F1 near-duplicate filtering (Self-Instruct / InstrAug style).

Scores are bit-identical to ``rouge_score.rouge_scorer.RougeScorer(["rougeL"],
use_stemmer=False).score(target, prediction)["rougeL"].fmeasure`` (rouge_score 0.1.2), but the
O(n*m) pure-Python LCS table is replaced by rapidfuzz's bit-parallel C++ LCS kernels, and the
all-pairs dedup loop only evaluates the exact float formula for pairs that can possibly exceed
the threshold.

Token-less texts (empty, punctuation only, or only non-ASCII letters, which rouge_score's
tokenizer discards) score 0.0 against everything, exactly like rouge_score. They are therefore
never ROUGE-L near-duplicates; only the exact/normalized duplicate checks can drop them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from rapidfuzz import process
from rapidfuzz.distance import Indel, LCSseq

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
# rapidfuzz's normalized Indel similarity, 2*lcs/(len_a+len_b), equals ROUGE-L F1 in exact
# arithmetic but may differ in the last ulps from rouge_score's float formula. It is only used as
# a pre-filter, widened by this margin (many orders above float error, far below the gap between
# distinct F1 values), and every surviving pair is re-scored with the exact formula.
_MARGIN: Final = 1e-9

Encoded = str | list[int]


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


class RougeLIndex:
    """An append-only set of token sequences supporting exact max-ROUGE-L-F1 queries."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._encoded: list[Encoded] = []
        self._lengths: list[int] = []

    def __len__(self) -> int:
        return len(self._encoded)

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
        self._encoded.append(self._encode(tokens, grow=True))
        self._lengths.append(len(tokens))
        return len(self._encoded) - 1

    def _exact_best(self, query: Encoded, n_query: int, cutoff: float) -> tuple[float, int]:
        """Exact (max F1, first argmax) over items whose approximate F1 is >= ``cutoff``."""
        encoded, lengths = self._encoded, self._lengths
        if cutoff > 0:
            hits = process.extract(
                query,
                encoded,
                scorer=Indel.normalized_similarity,
                processor=None,
                limit=None,
                score_cutoff=cutoff,
            )
            # Survivors are few at useful thresholds: recompute their integer LCS exactly.
            lcs_by_index = [(i, LCSseq.similarity(query, encoded[i])) for _, _, i in hits]
        else:
            full = process.extract(
                query, encoded, scorer=LCSseq.similarity, processor=None, limit=None
            )
            lcs_by_index = [(i, int(lcs)) for _, lcs, i in full]
        # Ascending index order so that ties resolve to the first index, like np.argmax.
        lcs_by_index.sort()
        best, best_index = -1.0, -1
        for i, lcs in lcs_by_index:
            score = f1_from_lcs(lcs, n_query, lengths[i])
            if score > best:
                best, best_index = score, i
        return best, best_index

    def max_f1(self, tokens: Sequence[str]) -> tuple[float, int]:
        """Return ``(max F1, index)`` of ``tokens`` against the stored sequences.

        ``index`` is the first stored sequence reaching the maximum (0 when every score is
        0.0, matching ``np.argmax``), or -1 when the index is empty.
        """
        if not self._encoded:
            return 0.0, -1
        if not tokens:
            return 0.0, 0
        query = self._encode(tokens, grow=False)
        _, approx, _ = process.extractOne(
            query, self._encoded, scorer=Indel.normalized_similarity, processor=None
        )
        return self._exact_best(query, len(tokens), float(approx) - _MARGIN)

    def best_above(self, tokens: Sequence[str], threshold: float) -> tuple[float, int] | None:
        """Return ``max_f1(tokens)`` if that maximum is ``> threshold``, else ``None``.

        Much faster than ``max_f1`` for a typical threshold such as 0.7: only sequences that
        can exceed the threshold are scored exactly.
        """
        if math.isnan(threshold):
            raise ValueError("threshold must not be NaN")
        if threshold - _MARGIN <= 0:
            score, index = self.max_f1(tokens)
        elif not self._encoded or not tokens:
            return None
        else:
            query = self._encode(tokens, grow=False)
            score, index = self._exact_best(query, len(tokens), threshold - _MARGIN)
        return (score, index) if index >= 0 and score > threshold else None


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
        # Duplicates share their token sequence, so their F1 is this one.
        self_score = rouge_l_f1(tokens, tokens)
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
