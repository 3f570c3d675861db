"""Deterministic rule-based "model" for tests and dry runs (provider ``offline/...``).

It never substitutes for a real model: it is selected only by naming it explicitly.

Variants (the part after ``offline/``):

* ``rules`` -- rewrites the instruction with a synonym/phrase table, an optional lead-in
  ("Please", "Kindly") and a clause reordering; the seed picks among the rewrites.
* ``echo``  -- returns the instruction unchanged.
* ``chaos`` -- returns one of the broken replies in `CHAOS_MODES`, picked by ``seed % len``.

The reply is a JSON array holding one string. The rewriter changes only whole ASCII words
(letters only, bounded by whitespace or ``.,;:!?``) so placeholder tokens of any shape survive
untouched. ``IATC_OFFLINE_FAIL_FIRST=N`` makes the first N calls of the process fail with a
transient error, to exercise retries.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .backend_error import BackendError

VARIANTS = ("rules", "echo", "chaos")
CHAOS_MODES = (
    "drop_token",
    "duplicate_token",
    "invent_token",
    "code_fence",
    "preamble",
    "python_payload",
    "template_payload",
    "empty",
    "prose",
)
FAIL_FIRST_ENV = "IATC_OFFLINE_FAIL_FIRST"

# Keys are lower-case word sequences; values are the replacements the seed chooses from.
SYNONYMS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("look", "at"): ("examine", "observe", "view"),
    ("make", "sure"): ("ensure", "be sure"),
    ("based", "on"): ("using", "according to", "drawing on"),
    ("in", "order", "to"): ("to", "so as to"),
    ("as", "well", "as"): ("and", "along with"),
    ("for", "example"): ("for instance",),
    ("tell", "me"): ("state", "say"),
    ("you", "will", "need", "to"): ("you must", "you have to"),
    ("you", "need", "to"): ("you must", "you have to"),
    ("in", "this", "task"): ("for this task", "here"),
    ("answer", "the"): ("respond to the", "reply to the"),
    ("the", "answer"): ("the response", "the reply"),
    ("briefly",): ("concisely", "succinctly"),
    ("brief",): ("short", "concise"),
    ("caption",): ("description",),
    ("carefully",): ("attentively", "closely"),
    ("choose",): ("select", "pick"),
    ("classify",): ("categorize",),
    ("content",): ("contents",),
    ("correct",): ("right", "accurate"),
    ("create",): ("produce", "make"),
    ("decide",): ("determine", "judge"),
    ("describe",): ("depict", "portray", "characterize"),
    ("determine",): ("decide", "figure out", "establish"),
    ("explain",): ("clarify", "describe"),
    ("find",): ("locate", "identify"),
    ("following",): ("next", "subsequent"),
    ("generate",): ("produce", "write", "create"),
    ("given",): ("provided",),
    ("identify",): ("find", "recognize", "pick out"),
    ("image",): ("picture", "photo"),
    ("options",): ("choices", "alternatives"),
    ("output",): ("return", "give"),
    ("photo",): ("image", "picture"),
    ("picture",): ("image", "photo"),
    ("provide",): ("give", "supply", "offer"),
    ("question",): ("query",),
    ("read",): ("go through", "study"),
    ("region",): ("area", "part"),
    ("select",): ("choose", "pick"),
    ("short",): ("brief", "concise"),
    ("some",): ("a bit of", "a little"),
    ("statement",): ("claim", "assertion"),
    ("summarize",): ("condense", "sum up"),
    ("task",): ("job", "assignment"),
    ("text",): ("words", "passage"),
    ("use",): ("employ", "apply"),
    ("whether",): ("if",),
    ("write",): ("compose", "produce"),
}
_MAX_PHRASE = max(len(key) for key in SYNONYMS)
_LEAD_INS = ("Please", "Kindly")
_FRONT_CLAUSES = ("given", "using", "based", "after", "for", "with", "looking")
# A lead-in reads well only before an imperative verb.
_IMPERATIVES = frozenset(
    "answer choose classify complete compose consider create decide depict describe determine"
    " examine explain find generate give identify list locate look make observe output pick"
    " portray produce provide read respond return say select state summarize tell use view"
    " write".split()
)
_PIECE = re.compile(r"[A-Za-z]+|[^A-Za-z]+")
_BOUNDARY = frozenset(" \t\n\r.,;:!?")
# Shapes the chaos variant recognises as placeholder tokens; only chaos needs to find them.
_TOKEN = re.compile(r"⟦[^⟧\s]*⟧|\{[^{}\s]+\}|<<[^<>\s]+>>|\[\[[^\[\]\s]+\]\]")

_fail_lock = threading.Lock()
_fail_calls = 0


@dataclass(frozen=True, slots=True)
class Generation:
    """One reply of an in-process provider, with usage counted by the provider."""

    text: str
    prompt_tokens: int
    completion_tokens: int


def generate(model: str, messages: Sequence[Mapping[str, Any]], seed: int | None) -> Generation:
    """Answer a chat request with the ``offline`` variant named by ``model``.

    ``model`` may be given with or without the ``offline/`` prefix. Raises `BackendError`
    (fatal) for an unknown variant and (transient) while ``IATC_OFFLINE_FAIL_FIRST`` applies.
    """
    variant = model.removeprefix("offline/")
    if variant not in VARIANTS:
        raise BackendError(
            "fatal",
            f"unknown offline model 'offline/{variant}'; choose one of: "
            + ", ".join(f"offline/{v}" for v in VARIANTS),
        )
    _maybe_fail()
    instruction = extract_instruction(messages)
    seed_value = 0 if seed is None else seed
    if variant == "echo":
        text = json.dumps([instruction], ensure_ascii=False)
    elif variant == "chaos":
        text = corrupt(instruction, seed_value, CHAOS_MODES[seed_value % len(CHAOS_MODES)])
    else:
        text = json.dumps([rewrite(instruction, seed_value)], ensure_ascii=False)
    prompt_words = sum(len(_content(m).split()) for m in messages)
    return Generation(text, prompt_words, len(text.split()))


def reset_fail_counter() -> None:
    """Restart the per-process count used by ``IATC_OFFLINE_FAIL_FIRST`` (for tests)."""
    global _fail_calls
    with _fail_lock:
        _fail_calls = 0


def _maybe_fail() -> None:
    global _fail_calls
    raw = os.environ.get(FAIL_FIRST_ENV, "").strip()
    try:
        limit = int(raw) if raw else 0
    except ValueError:
        raise BackendError("fatal", f"{FAIL_FIRST_ENV} must be an integer, got {raw!r}") from None
    with _fail_lock:
        _fail_calls += 1
        number = _fail_calls
    if number <= limit:
        raise BackendError(
            "transient",
            f"offline provider: simulated failure {number} of {limit} ({FAIL_FIRST_ENV})",
        )


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI "content parts"
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def extract_instruction(messages: Sequence[Mapping[str, Any]]) -> str:
    """Return the text between the last ``<instruction>`` tags of the last user message.

    The last pair, because worked examples may precede the instruction in the same message.
    Without tags the whole last user message is the instruction, so hand-written prompts work.
    """
    users = [m for m in messages if m.get("role") == "user"]
    text = _content(users[-1]) if users else ""
    # After the LAST opening tag: a prompt may mention "<instruction> tags" in its prose.
    head, tag, tail = text.rpartition("<instruction>")
    if tag and "</instruction>" in tail:
        return tail.partition("</instruction>")[0].strip()
    return text.strip()


def rewrite(instruction: str, seed: int) -> str:
    """Paraphrase ``instruction`` deterministically; different seeds give different rewrites."""
    rng = random.Random(f"offline-rules:{seed}:{instruction}")
    text = instruction
    if rng.random() < 0.4:
        text = _move_front_clause(text)
    text = _substitute(text, rng)
    if rng.random() < 0.5:
        text = _toggle_lead_in(text, rng)
    if text == instruction:  # always say something different, as a real paraphrase would
        text = _toggle_lead_in(text, rng)
    if text == instruction:
        text = f"{rng.choice(_LEAD_INS)} note: {text}"
    return text


def _is_word(text: str, start: int, end: int) -> bool:
    """True if text[start:end] is letters bounded by whitespace, ``.,;:!?`` or the ends."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return before in _BOUNDARY and after in _BOUNDARY and text[start:end].isalpha()


def _pieces(text: str) -> list[tuple[str, bool]]:
    """Split text into (piece, is_rewritable_word) pairs that join back to the text."""
    out: list[tuple[str, bool]] = []
    for m in _PIECE.finditer(text):
        piece = m.group()
        word = piece.isalpha() and _is_word(text, m.start(), m.end())
        # Acronyms and ALL-CAPS runs may be tokens or names: never rewrite them.
        out.append((piece, word and (piece.islower() or piece[1:].islower() or len(piece) == 1)))
    return out


def _match_case(replacement: str, original: str) -> str:
    return replacement[0].upper() + replacement[1:] if original[0].isupper() else replacement


def _substitute(text: str, rng: random.Random) -> str:
    pieces = _pieces(text)
    out: list[str] = []
    i = 0
    while i < len(pieces):
        piece, is_word = pieces[i]
        if is_word:
            for size in range(_MAX_PHRASE, 0, -1):
                # A phrase is `size` words joined by single spaces, all rewritable.
                span = pieces[i : i + 2 * size - 1]
                if len(span) < 2 * size - 1 or not all(span[k][1] for k in range(0, len(span), 2)):
                    continue
                if any(span[k][0] != " " for k in range(1, len(span), 2)):
                    continue
                key = tuple(span[k][0].lower() for k in range(0, len(span), 2))
                options = SYNONYMS.get(key)
                if options and rng.random() < 0.7:
                    out.append(_match_case(rng.choice(options), piece))
                    _fix_article(out)
                    i += 2 * size - 1
                    break
            else:
                out.append(piece)
                i += 1
            continue
        out.append(piece)
        i += 1
    return "".join(out)


def _fix_article(out: list[str]) -> None:
    """Keep "a"/"an" agreeing with a replacement that now follows it ("an image" -> "a photo")."""
    if len(out) >= 3 and out[-2] == " " and out[-3].lower() in ("a", "an"):
        article = "an" if out[-1][0].lower() in "aeiou" else "a"
        out[-3] = _match_case(article, out[-3])


def _toggle_lead_in(text: str, rng: random.Random) -> str:
    pieces = _pieces(text)
    if not pieces or not pieces[0][1]:
        return text
    first = pieces[0][0]
    if first.lower() in {x.lower() for x in _LEAD_INS} and len(pieces) > 2 and pieces[1][0] == " ":
        rest, rest_is_word = pieces[2]
        if rest_is_word:
            return rest[0].upper() + rest[1:] + "".join(p for p, _ in pieces[3:])
        return text
    if first.lower() not in _IMPERATIVES:
        return text
    lowered = first[0].lower() + first[1:] if first != "I" and first[1:].islower() else first
    return f"{rng.choice(_LEAD_INS)} {lowered}" + "".join(p for p, _ in pieces[1:])


def _move_front_clause(text: str) -> str:
    """'Given X, do Y.' -> 'Do Y, given X.' (single sentence only; every piece moves intact)."""
    pieces = _pieces(text)
    if not pieces or not pieces[0][1] or pieces[0][0].lower() not in _FRONT_CLAUSES:
        return text
    body, end = (text[:-1], text[-1]) if text[-1:] in ".?!" else (text, "")
    if any(mark in body for mark in (". ", "? ", "! ", "\n")):
        return text
    clause, sep, rest = body.partition(", ")
    rest_pieces = _pieces(rest)
    if not sep or not rest_pieces or not rest_pieces[0][1]:
        return text
    head = rest_pieces[0][0]
    moved_clause = clause[0].lower() + clause[1:]
    return f"{head[0].upper()}{head[1:]}{rest[len(head) :]}, {moved_clause}{end}"


def corrupt(instruction: str, seed: int, mode: str) -> str:
    """Produce one of the broken replies named in `CHAOS_MODES` (used by tests and FakeServer)."""
    base = rewrite(instruction, seed)
    tokens = _TOKEN.findall(base)
    if mode == "drop_token" and tokens:
        base = base.replace(tokens[0], "", 1)
    elif mode == "duplicate_token" and tokens:
        base = base.replace(tokens[0], f"{tokens[0]} {tokens[0]}", 1)
    elif mode in ("drop_token", "duplicate_token", "invent_token"):
        base = f"{base} {_invent_token(tokens)}"
    elif mode == "code_fence":
        return "```json\n" + json.dumps([base], ensure_ascii=False) + "\n```"
    elif mode == "preamble":
        return "Sure! Here is the rewritten instruction: " + json.dumps([base], ensure_ascii=False)
    elif mode == "python_payload":
        base = f"{base} {{__import__('os').system('echo pwned')}}"
    elif mode == "template_payload":
        base = f"{base} {{{{7*7}}}}"
    elif mode == "empty":
        return ""
    elif mode == "prose":
        return f"Here is a rewrite. {base} I hope this helps!"
    else:
        raise ValueError(f"unknown chaos mode {mode!r}; choose one of {', '.join(CHAOS_MODES)}")
    return json.dumps([base], ensure_ascii=False)


def _invent_token(tokens: Sequence[str]) -> str:
    """A token in the shape of the real ones (or ⟦...⟧) that the source never had."""
    if not tokens:
        return "⟦BOGUS⟧"
    sample = tokens[0]
    inner = re.sub(r"[A-Za-z0-9_]+", "BOGUS", sample, count=1)
    return inner if inner != sample else "⟦BOGUS⟧"
