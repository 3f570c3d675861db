"""Validators: the rules a rewrite must pass, each with a stable reason code.

A validator is data (:class:`ValidatorSpec`), derived from the declarations
by :func:`build_validator`; :func:`validate` applies it to one candidate and
returns a :class:`Verdict` carrying every failed rule and a short re-ask
message.  Rewrites are only ever matched and counted, never evaluated.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence

from ..contract.compiled import TokenRule, ValidatorSpec
from . import faithful
from .export import LINE_BREAKS, TRAIL_CHARS, Structure, build_gbnf, build_regexes
from .tokens import FAMILIES, Masked, split_tokens
from .types import Reason, Verdict

#: Every reason code, with what it means (docs/compiler.md lists the same).
REASONS: dict[str, str] = {
    "unparseable": "the reply holds no JSON array of strings (or numbered list)",
    "empty": "the rewrite is blank",
    "token_missing": "a token occurs fewer times than in the source",
    "token_duplicated": "a token occurs more times than in the source",
    "token_invented": "a well-formed token the source does not have",
    "token_altered": "a damaged token (a stray token delimiter)",
    "slot_multiset": "the restored placeholders differ from the original's",
    "slot_order": "a token moved although its position is pinned",
    "stray_brace": "a { or } outside the tokens",
    "template_syntax": "template syntax such as {{, {%, {#, ${ or %(",
    "multiline": "a line break in a rewrite of a single-line source",
    "length_ratio": "word count ratio to the source outside the plan's bounds",
    "identical_source": "the same as the text it rewrites (ignoring case and spacing)",
    "copies_original": "the same as an original instruction of the task",
    "preamble": "chat preamble or meta-commentary instead of an instruction",
    "foreign_token": "a placeholder-like or bracketed token of any shape the source lacks",
    "answer": "answers or asserts instead of instructing (plan: reject answers)",
    "echo": "repeats the prompt's own directions or a re-ask (plan: reject echoes)",
    "parroted_example": "copies the meta-prompt's example (plan: reject examples)",
    "language_switch": "another language or script than the plan's (plan: language en)",
}
#: The canonical wording of every re-ask sentence.  ``{...}`` fields are filled with
#: ``str.replace`` from compiler data (never from model output).  The echo rule rejects
#: rewrites that repeat them.
REASK_TEXT: dict[str, str] = {
    "tokens": "Keep the tokens {tokens} exactly as written, each as often as in the "
    "instruction, and add no others.",
    "no_tokens": "Do not add placeholder tokens.",
    "foreign": "Remove {shapes}: use no placeholder, tag or bracketed token that the "
    "instruction does not have.",
    "at_end": "Keep {token} at the very end.",
    "order": "Keep the tokens in their original order.",
    "braces": "Do not use braces or template syntax.",
    "literal_braces": "Use braces only as the instruction does ({literals}), and no "
    "template syntax.",
    "multiline": "Write the rewrite on one line.",
    "long": "Keep it about as long as the original ({words} words).",
    "short": "Keep everything the instruction asks for: it has {words} words, so do not "
    "shorten it this much.",
    "copy": "Change the wording; do not repeat an existing instruction.",
    "answer": "Do not answer, judge or carry out the instruction: write it again as an "
    "instruction or a question that asks for the same thing.",
    "echo": "Do not repeat the directions you were given: paraphrase only the instruction "
    "between the tags.",
    "example": "Do not copy the example: paraphrase the instruction between the tags, which "
    "asks for something else.",
    "language": "Write the rewrite in English, like the instruction.",
    "format": "Reply with the JSON array only, with no introduction or comment.",
    "empty": "The rewrite must not be empty.",
    "json": 'Answer with a JSON array of one string, like ["..."].',
}
#: The runtime's re-ask when no verdict carries one (``{reasons}`` filled by the engine).
GENERIC_REASK = (
    "Your answer could not be used ({reasons}). Answer again, following the instructions "
    "exactly: only the JSON list, every token kept exactly as written."
)
#: Rules about token structure: exactly what the exported regex/grammar enforce.
STRUCTURAL = frozenset(
    {
        "empty",
        "token_missing",
        "token_duplicated",
        "token_invented",
        "token_altered",
        "slot_order",
        "slot_multiset",
        "stray_brace",
        "template_syntax",
        "multiline",
    }
)
#: ``filter { reject ... }`` names in their canonical order.
REJECT_ORDER = ("answers", "echoes", "examples")
_TEMPLATE_SYNTAX = re.compile(r"\{\{|\{%|\{#|\$\{|%\(")
#: Preamble/meta-commentary patterns by name; a pattern the source itself matches is exempt.
PREAMBLES: dict[str, re.Pattern[str]] = {
    "assent": re.compile(r"^\W*(sure|certainly|of course|absolutely|okay|ok|great)\b\W", re.I),
    "here_is": re.compile(
        r"^\W*here(\s+is|\s+are|'s|’s)\b[^.\n]{0,40}?"
        r"\b(rewrit|rephras|paraphras|revis|version|new instruction)",
        re.I,
    ),
    "as_an_ai": re.compile(r"\bas an ai\b|\blanguage model\b", re.I),
    "label": re.compile(
        r"^\W*(rephrased|rewritten|reworded|revised|paraphrased?|rewrite|new)"
        r"(\s+(instruction|version|sentence|text))?\s*:",
        re.I,
    ),
    "closing": re.compile(r"\b(i hope this helps|let me know if|feel free to)\b", re.I),
}


def _fill(key: str, **values: str) -> str:
    text = REASK_TEXT[key]
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def reask_texts(
    tokens: Sequence[str],
    *,
    at_end: str | None = None,
    literals: Sequence[str] = (),
    source_words: int = 0,
) -> tuple[str, ...]:
    """Every re-ask sentence as the model could be shown it for one source (the echo rule)."""
    skip = {"tokens" if not tokens else "no_tokens", "literal_braces" if not literals else ""}
    if at_end is None:
        skip.add("at_end")
    values = {
        "tokens": ", ".join(tokens),
        "token": at_end or "",
        "shapes": "them",
        "literals": " ".join(literals),
        "words": str(source_words),
    }
    out = [_fill(k, **values) for k in REASK_TEXT if k not in skip]
    out.append(GENERIC_REASK.replace(" ({reasons})", ""))
    return tuple(out)


_LITERAL = re.compile(r"\{[^{}\n]{0,80}\}")


def literal_braces(text_segments: Sequence[str], family_markers: Sequence[str]) -> tuple[str, ...]:
    """Brace texts of a source (``{...}`` groups, else lone braces) a rewrite may keep."""
    found: set[str] = set()
    for seg in text_segments:
        rest = seg
        for m in _LITERAL.finditer(seg):
            if not any(mk in m.group() for mk in family_markers):
                found.add(m.group())
                rest = rest.replace(m.group(), " ")
        found.update(c for c in rest if c in "{}")
    return tuple(sorted(found, key=lambda x: (-len(x), x)))


def strip_literals(segment: str, literals: Sequence[str]) -> str:
    """``segment`` with the source's literal brace texts (longest first, left to right) blanked
    out: a literal is one unit, as in the exports, so nothing is read across its edges."""
    if not literals or not any(c in segment for c in "{}"):
        return segment
    pattern = "|".join(re.escape(x) for x in literals)
    return re.sub(pattern, " ", segment)


def normalize(text: str) -> str:
    """Case-folded, whitespace-collapsed, without final ``.!?`` (for copy checks)."""
    return " ".join(text.casefold().split()).rstrip(" .!?")


def words(text: str) -> int:
    """Word count (whitespace-separated; a token counts as part of its word)."""
    return len(text.split())


def _at_end_token(masked: Masked, slot_bases: dict[str, str]) -> str | None:
    """The token of a ``choices`` slot that ends the source body, if any.

    "Ends" allows only spaces, ``.,;:!?`` and line breaks after it: a choices
    slot renders as a trailing block, so it must stay last in a rewrite.
    """
    parts = split_tokens(masked.protected, FAMILIES[masked.family])
    if parts and parts[-1][0] == "text" and not parts[-1][1].strip(TRAIL_CHARS + LINE_BREAKS):
        parts = parts[:-1]
    if parts and parts[-1][0] == "token":
        slot = dict(masked.token_map)[parts[-1][1]]
        if slot_bases.get(slot) == "choices":
            return parts[-1][1]
    return None


def build_validator(
    masked: Masked,
    *,
    source_body: str,
    root_slots: Sequence[tuple[str, int]],
    originals: Sequence[str],
    lead: str,
    trail: str,
    length_ratio: tuple[float, float],
    ordered: bool,
    slot_bases: dict[str, str],
    reject: Sequence[str] = (),
    language: str = "any",
    machinery: Sequence[str] = (),
    examples: Sequence[str] = (),
) -> ValidatorSpec:
    """Derive the validator of one source body (an original or a parent rewrite).

    ``originals`` are the task's original instructions as ``{slot}`` text
    (whole, with pinned edges); ``root_slots`` is the root original's
    placeholder multiset.  ``reject`` and ``language`` are the plan's content checks;
    ``machinery`` the lines of the rendered meta-prompts without the instruction, and
    ``examples`` their rendered examples (kept only when the plan rejects echoes/examples).
    """
    fam = FAMILIES[masked.family]
    at_end = _at_end_token(masked, slot_bases)
    segments = [v for k, v in split_tokens(masked.protected, fam) if k == "text"]
    text_only = "".join(segments)
    literals = literal_braces(segments, fam.markers)
    reasks = reask_texts(
        [t for t, _ in masked.token_map],
        at_end=at_end,
        literals=literals,
        source_words=words(source_body.strip()),
    )
    echo = (*machinery, *reasks)
    counts = dict(masked.counts)
    tokens = tuple(
        TokenRule(tok, slot, counts[tok], tok == at_end) for tok, slot in masked.token_map
    )
    sequence = tuple(v for k, v in split_tokens(masked.protected, fam) if k == "token")
    single_line = not any(c in LINE_BREAKS for c in source_body)
    allow_pp = "%(" in text_only
    structure = Structure(
        fam, masked.counts, sequence, ordered, at_end, single_line, allow_pp, literals
    )
    regex, reply_regex, exact = build_regexes(structure)
    norms: set[str] = set()
    for orig in originals:
        norms.add(normalize(orig))
    stripped = source_body.strip()
    pad = (
        source_body[: len(source_body) - len(source_body.lstrip())],
        source_body[len(source_body.rstrip()) :],
    )
    fields: dict[str, object] = {
        "family": fam.name,
        "tokens": tokens,
        "sequence": sequence,
        "ordered": ordered,
        "slots": tuple(sorted(root_slots)),
        "length_ratio": (float(length_ratio[0]), float(length_ratio[1])),
        "source_words": words(stripped),
        "source_norm": normalize(stripped),
        "originals": tuple(sorted(norms)),
        "lead": lead,
        "trail": trail,
        "pad": pad if stripped else ("", ""),
        "single_line": single_line,
        "allow_percent_paren": allow_pp,
        "exempt_preambles": tuple(n for n, rx in PREAMBLES.items() if rx.search(stripped)),
        "regex": regex,
        "reply_regex": reply_regex,
        "gbnf": build_gbnf(structure),
        "regex_exact": exact,
        "literals": literals,
        "exempt_shapes": faithful.source_shapes(segments),
        "reject": tuple(r for r in REJECT_ORDER if r in reject),
        "source_instructs": faithful.instructs(masked.protected),
        "echo": tuple(sorted(set(echo))) if "echoes" in reject else (),
        "examples": tuple(sorted(set(examples))) if "examples" in reject else (),
        "language": language,
    }
    spec = ValidatorSpec(id="", **fields)  # type: ignore[arg-type]
    content = {k: v for k, v in spec.to_json().items() if k != "id"}
    digest = hashlib.sha256(
        json.dumps(content, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    return ValidatorSpec(id="v" + digest[:16], **fields)  # type: ignore[arg-type]


def _token_reasons(spec: ValidatorSpec, text: str) -> tuple[list[Reason], list[str], list[str]]:
    """Token-count rules; returns (reasons, token sequence, text segments)."""
    fam = FAMILIES[spec.family]
    expected = {t.token: t.count for t in spec.tokens}
    seen: Counter[str] = Counter()
    invented: list[str] = []
    bare: list[str] = []
    seq: list[str] = []
    segments: list[str] = []
    for kind, value in split_tokens(text, fam):
        if kind == "token" and value in expected:
            seen[value] += 1
            seq.append(value)
        elif kind == "token":
            invented.append(value)
        elif kind == "bare":
            bare.append(value)
        else:
            segments.append(value)
    reasons = []
    missing = [f"{t} ({seen[t]} of {n})" for t, n in expected.items() if seen[t] < n]
    extra = [f"{t} ({seen[t]} for {n})" for t, n in expected.items() if seen[t] > n]
    if missing:
        reasons.append(Reason("token_missing", "missing: " + ", ".join(missing)))
    if extra:
        reasons.append(Reason("token_duplicated", "too many: " + ", ".join(extra)))
    if invented:
        reasons.append(
            Reason("token_invented", "unknown: " + ", ".join(sorted(set(invented)))[:200])
        )
    if bare:
        reasons.append(
            Reason(
                "token_altered",
                f"{len(bare)} stray token delimiter(s) {''.join(sorted(set(bare)))}",
            )
        )
    return reasons, seq, segments


def _order_reasons(spec: ValidatorSpec, seq: list[str], text: str) -> list[Reason]:
    reasons = []
    if spec.ordered and seq != list(spec.sequence):
        reasons.append(
            Reason("slot_order", "tokens must keep the source order " + " ".join(spec.sequence))
        )
    end = next((t.token for t in spec.tokens if t.at_end), None)
    if end is not None and end in seq:
        tail = text[text.rindex(end) + len(end) :]
        allowed = TRAIL_CHARS + ("" if spec.single_line else LINE_BREAKS)
        if seq[-1] != end or any(c not in allowed for c in tail):
            reasons.append(Reason("slot_order", f"{end} must stay at the end"))
    return reasons


def _text_reasons(spec: ValidatorSpec, text: str, segments: list[str]) -> list[Reason]:
    reasons = []
    fam = FAMILIES[spec.family]
    segments = [strip_literals(seg, spec.literals) for seg in segments]
    if any(c in "{}" and c not in fam.open + fam.close for seg in segments for c in seg):
        reasons.append(Reason("stray_brace", "braces outside the tokens"))
    found = sorted({m.group() for seg in segments for m in _TEMPLATE_SYNTAX.finditer(seg)})
    if spec.allow_percent_paren:
        found = [f for f in found if f != "%("]
    if found:
        reasons.append(Reason("template_syntax", "found " + " ".join(found)))
    if spec.single_line and any(c in LINE_BREAKS for c in text):
        reasons.append(Reason("multiline", "the source is one line"))
    return reasons


def _restore(spec: ValidatorSpec, text: str) -> str:
    """Known tokens back to ``{slot}``; everything else verbatim."""
    lookup = {t.token: t.slot for t in spec.tokens}
    fam = FAMILIES[spec.family]
    return "".join(
        "{" + lookup[v] + "}" if k == "token" and v in lookup else v
        for k, v in split_tokens(text, fam)
    )


def _slot_counts(restored_parts: list[str], spec: ValidatorSpec) -> list[tuple[str, int]]:
    lookup = {t.token: t.slot for t in spec.tokens}
    return sorted(Counter(lookup[t] for t in restored_parts).items())


def _content_reasons(spec: ValidatorSpec, text: str, restored: str) -> list[Reason]:
    reasons = []
    lo, hi = spec.length_ratio
    ratio = words(text) / max(spec.source_words, 1)
    if not lo < ratio < hi:
        reasons.append(
            Reason(
                "length_ratio",
                f"{'short' if ratio <= lo else 'long'}: {words(text)} words for "
                f"{spec.source_words}, ratio {ratio:.2f} outside ({lo:g}, {hi:g})",
            )
        )
    norm = normalize(restored)
    whole = normalize(spec.lead + spec.pad[0] + restored.strip() + spec.pad[1] + spec.trail)
    if norm == spec.source_norm:
        reasons.append(
            Reason("identical_source", "no change besides case, spacing or final punctuation")
        )
    elif norm in spec.originals or whole in spec.originals:
        reasons.append(Reason("copies_original", "repeats an original instruction of the task"))
    head = text.strip()
    hits = [n for n, rx in PREAMBLES.items() if n not in spec.exempt_preambles and rx.search(head)]
    if hits:
        reasons.append(Reason("preamble", "looks like " + ", ".join(hits)))
    return reasons


def _source_text(spec: ValidatorSpec) -> str:
    """The source as far as the spec knows it: its normalized text and exempt shapes."""
    return spec.source_norm + " " + " ".join(spec.exempt_shapes)


def _faith_reasons(spec: ValidatorSpec, text: str, segments: list[str]) -> list[Reason]:
    """Token hygiene across every family, and the plan's content checks."""
    reasons = []
    plain = [strip_literals(seg, spec.literals) for seg in segments]
    foreign = faithful.foreign_shapes(plain, spec.exempt_shapes)
    if foreign:
        reasons.append(Reason("foreign_token", "found " + " ".join(foreign)[:200]))
    source = _source_text(spec)
    checks: list[tuple[str, str | None]] = []
    if "answers" in spec.reject:
        checks.append(("answer", faithful.answer_problem(text, spec.source_instructs, source)))
    if spec.echo:
        checks.append(("echo", faithful.echo_problem(text, spec.echo, source)))
    if spec.examples:
        checks.append(("parroted_example", faithful.parrot_problem(text, spec.examples, source)))
    checks.append(("language_switch", faithful.language_problem(text, spec.language, source)))
    reasons += [Reason(code, why) for code, why in checks if why is not None]
    return reasons


def validate_text(spec: ValidatorSpec, text: str) -> Verdict:
    """Judge one candidate rewrite (tokens, not ``{slot}`` refs) against ``spec``."""
    if not text.strip():
        reasons = [Reason("empty", "the rewrite is blank")]
        if spec.tokens:
            reasons.append(
                Reason("token_missing", "missing: " + ", ".join(t.token for t in spec.tokens))
            )
        return _reject(spec, reasons)
    reasons, seq, segments = _token_reasons(spec, text)
    tokens_ok = not reasons
    reasons += _order_reasons(spec, seq, text)
    reasons += _text_reasons(spec, text, segments)
    restored = _restore(spec, text)
    if tokens_ok and _slot_counts(seq, spec) != list(spec.slots):
        reasons.append(Reason("slot_multiset", "placeholders differ from the original's"))
    reasons += _content_reasons(spec, text, restored)
    reasons += _faith_reasons(spec, text, segments)
    body = spec.pad[0] + restored.strip() + spec.pad[1]
    if reasons:
        return _reject(spec, reasons, body if tokens_ok else None)
    return Verdict(True, body)


def _reject(spec: ValidatorSpec, reasons: list[Reason], restored: str | None = None) -> Verdict:
    return Verdict(False, restored, tuple(reasons), reask_message(spec, reasons))


def reask_message(spec: ValidatorSpec, reasons: Sequence[Reason]) -> str:
    """A short, targeted correction to send back to the model (wording: :data:`REASK_TEXT`)."""
    codes = {r.code for r in reasons}
    toks = ", ".join(t.token for t in spec.tokens)
    parts: list[str] = []
    if codes & {
        "token_missing",
        "token_duplicated",
        "token_invented",
        "token_altered",
        "slot_multiset",
    }:
        parts.append(_fill("tokens", tokens=toks))
    elif not spec.tokens and "token_invented" in codes:
        parts.append(_fill("no_tokens"))
    if "foreign_token" in codes:
        detail = next(r.detail for r in reasons if r.code == "foreign_token")
        parts.append(_fill("foreign", shapes=detail.removeprefix("found ")))
    if "slot_order" in codes:
        end = next((t.token for t in spec.tokens if t.at_end), None)
        parts.append(_fill("at_end", token=end) if end and not spec.ordered else _fill("order"))
    if codes & {"stray_brace", "template_syntax"}:
        if spec.literals:
            parts.append(_fill("literal_braces", literals=" ".join(spec.literals)))
        else:
            parts.append(_fill("braces"))
    if "multiline" in codes:
        parts.append(_fill("multiline"))
    if "length_ratio" in codes:
        short = next(r for r in reasons if r.code == "length_ratio").detail.startswith("short")
        parts.append(_fill("short" if short else "long", words=str(spec.source_words)))
    if codes & {"identical_source", "copies_original"}:
        parts.append(_fill("copy"))
    if "answer" in codes:
        parts.append(_fill("answer"))
    if "parroted_example" in codes:
        parts.append(_fill("example"))
    elif "echo" in codes:
        parts.append(_fill("echo"))
    if "language_switch" in codes:
        parts.append(_fill("language"))
    if codes & {"preamble", "unparseable"}:
        parts.append(_fill("format"))
    if "empty" in codes:
        parts.append(_fill("empty"))
    parts.append(_fill("json"))
    return " ".join(parts)
