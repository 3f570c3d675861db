"""Properties of placeholder protection, validators and the exported regexes (hypothesis).

Profiles come from tests/conftest.py; with CI=true every property here runs
3000 examples, locally the profile's default.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from instraug_dsl.compile.tokens import FAMILIES, PREFERENCE, choose_family, mask, unmask
from instraug_dsl.compile.validate import STRUCTURAL, build_validator, normalize, validate_text
from instraug_dsl.contract.compiled import ValidatorSpec
from instraug_dsl.errors import IatCompileError
from instraug_dsl.lang import ir
from instraug_dsl.lang.model import pieces_text
from instraug_dsl.lang.source import BUILTIN

# A few thousand examples per property in CI (CI=true), the profile's default locally.
EXAMPLES = 3000 if os.environ.get("CI", "").lower() == "true" else settings.default.max_examples
SLOT_NAMES = ("a", "b", "question", "region", "opts")
LOOKALIKES = (
    "⟦1⟧",
    "⟦2⟧",
    "{A}",
    "{a}",
    "[[SLOT_1]]",
    "<<Q1>>",
    "⟬1⟭",
    "⌜1⌝",
    "⟦",
    "⟧",
    "{",
    "}",
    "{{",
    "%(",
    "${",
)
SAFE_WORDS = (
    "find",
    "the",
    "image",
    "region",
    "and",
    "then",
    "answer",
    "briefly",
    "of",
    "object",
    "look",
    "at",
)


def _text(alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[ir.Piece]:
    return alphabet.map(lambda s: ir.TextPiece(s, BUILTIN))


def _merge(pieces: list[ir.Piece]) -> tuple[ir.Piece, ...]:
    """Adjacent text pieces joined, empty ones dropped (as the lowering produces)."""
    out: list[ir.Piece] = []
    for p in pieces:
        if isinstance(p, ir.TextPiece):
            if not p.text:
                continue
            if out and isinstance(out[-1], ir.TextPiece):
                out[-1] = ir.TextPiece(out[-1].text + p.text, BUILTIN)
                continue
        out.append(p)
    return tuple(out)


slot_refs = st.sampled_from(SLOT_NAMES).map(lambda n: ir.SlotRef(n, BUILTIN))
any_text = st.one_of(
    st.text(max_size=12), st.sampled_from(LOOKALIKES), st.sampled_from(".,;:!?\"' \n")
)
any_pieces = st.lists(st.one_of(_text(any_text), slot_refs), max_size=10).map(_merge)
safe_text = st.lists(
    st.sampled_from(SAFE_WORDS + (",", ".", "?", '"', "'", "(", ")")), min_size=1, max_size=6
).map(" ".join)
safe_pieces = st.lists(st.one_of(_text(safe_text), slot_refs), min_size=1, max_size=8).map(_merge)


@settings(max_examples=EXAMPLES)
@given(any_pieces)
def test_unmask_inverts_mask(pieces: tuple[ir.Piece, ...]) -> None:
    """unmask(mask(t)) == t for any text, repeated slots, punctuation and look-alikes."""
    try:
        masked = mask(pieces)
    except IatCompileError:
        text = "".join(p.text for p in pieces if isinstance(p, ir.TextPiece))
        assert all(FAMILIES[f].collides(text) for f in PREFERENCE)
        return
    assert unmask(masked.protected, masked.token_map, masked.family) == pieces_text(pieces)
    slots = [p.name for p in pieces if isinstance(p, ir.SlotRef)]
    assert sorted(s for _, s in masked.token_map) == sorted(
        set(slots)
    )  # one token per distinct slot
    assert sum(n for _, n in masked.counts) == len(slots)


def _spec(
    pieces: tuple[ir.Piece, ...],
    family: str,
    ordered: bool,
    ratio: tuple[float, float] = (0.0, 2.0),
) -> ValidatorSpec:
    masked = mask(pieces, FAMILIES[family])
    body = pieces_text(pieces)
    slots = sorted({p.name for p in pieces if isinstance(p, ir.SlotRef)})
    root = [(s, sum(1 for p in pieces if isinstance(p, ir.SlotRef) and p.name == s)) for s in slots]
    return build_validator(
        masked,
        source_body=body,
        root_slots=root,
        originals=[body],
        lead="",
        trail="",
        length_ratio=ratio,
        ordered=ordered,
        slot_bases={"opts": "choices"},
    )


def _rewrite(draw: st.DrawFn, spec: ValidatorSpec) -> str:
    """A rewrite that changes only the text between tokens (tokens in an allowed order)."""
    occurrences = [t.token for t in spec.tokens for _ in range(t.count)]
    order = list(spec.sequence) if spec.ordered else draw(st.permutations(occurrences))
    end = next((t.token for t in spec.tokens if t.at_end), None)
    if end is not None and not spec.ordered:
        order.remove(end)
        order.append(end)
    parts = [
        draw(st.lists(st.sampled_from(SAFE_WORDS), max_size=3).map(" ".join))
        for _ in range(len(order) + 1)
    ]
    if end is not None:
        parts[-1] = draw(st.sampled_from(["", ".", " ?", "!"]))
    if not order:
        parts[0] = parts[0] or "find"
    out = parts[0]
    for tok, text in zip(order, parts[1:], strict=True):
        out += f" {tok} {text}" if text.strip(".?!") else f" {tok}{text}"
    return out.strip()


@st.composite
def rewrite_cases(draw: st.DrawFn) -> tuple[ValidatorSpec, str]:
    pieces = draw(safe_pieces)
    assume(any(isinstance(p, ir.TextPiece) and p.text.strip() for p in pieces))
    spec = _spec(pieces, draw(st.sampled_from(PREFERENCE)), draw(st.booleans()))
    return spec, _rewrite(draw, spec)


@settings(max_examples=EXAMPLES)
@given(rewrite_cases())
def test_validator_accepts_rewrites_of_the_text_between_tokens(
    case: tuple[ValidatorSpec, str],
) -> None:
    spec, rewrite = case
    lo, hi = spec.length_ratio
    assume(lo < len(rewrite.split()) / max(spec.source_words, 1) < hi)
    restored_norm = normalize(validate_text(spec, rewrite).restored or "")
    assume(restored_norm != spec.source_norm and restored_norm not in spec.originals)
    verdict = validate_text(spec, rewrite)
    assert verdict.accepted, (rewrite, verdict.reasons)
    assert verdict.restored is not None
    restored_slots = sorted(re.findall(r"\{(\w+)\}", verdict.restored))
    assert restored_slots == sorted(s for s, n in spec.slots for _ in range(n))


@settings(max_examples=EXAMPLES)
@given(rewrite_cases(), st.sampled_from(["drop", "duplicate", "invent", "alter"]), st.data())
def test_validator_rejects_damaged_tokens(
    case: tuple[ValidatorSpec, str], how: str, data: st.DataObject
) -> None:
    spec, rewrite = case
    fam = FAMILIES[spec.family]
    present = [t.token for t in spec.tokens]
    if how == "invent":
        fake = fam.token(data.draw(st.integers(len(present) + 1, len(present) + 50)))
        pos = data.draw(st.integers(0, len(rewrite)))
        bad, expect = rewrite[:pos] + f" {fake} " + rewrite[pos:], {"token_invented"}
    else:
        assume(present)
        tok = data.draw(st.sampled_from(present))
        if how == "drop":
            bad, expect = rewrite.replace(tok, " ", 1), {"token_missing"}
        elif how == "duplicate":
            bad, expect = rewrite.replace(tok, f"{tok} {tok}", 1), {"token_duplicated"}
        else:
            damaged = data.draw(
                st.sampled_from(
                    [
                        tok[:-1],
                        tok[1:],
                        tok[0] + " " + tok[1:],
                        tok.lower() if tok.lower() != tok else tok[0] + "0" + tok[1:],
                    ]
                )
            )
            bad, expect = (
                rewrite.replace(tok, damaged, 1),
                {"token_missing", "token_altered", "token_invented"},
            )
    verdict = validate_text(spec, bad)
    assert not verdict.accepted
    assert expect & {r.code for r in verdict.reasons}, (bad, verdict.reasons)


chaos_atoms = st.one_of(
    st.sampled_from(SAFE_WORDS),
    st.sampled_from(
        LOOKALIKES
        + (
            " ",
            "  ",
            "%",
            "(",
            ")",
            "%%(",
            "\n",
            "\t",
            "\u2028",
            "\x0b",
            ".",
            "!",
            "Sure, ",
            "\\",
            '"',
            "/",
        )
    ),
    st.text(max_size=3),
)


@st.composite
def structure_cases(draw: st.DrawFn) -> tuple[ValidatorSpec, str]:
    pieces = list(draw(safe_pieces))
    if draw(st.booleans()):  # multi-line source
        pieces.append(ir.TextPiece("\nthen", BUILTIN))
    if draw(st.booleans()):  # a choices slot ending the body (at_end)
        pieces.append(ir.SlotRef("opts", BUILTIN))
    pieces_t = _merge(pieces)
    assume(any(isinstance(p, ir.TextPiece) and p.text.strip() for p in pieces_t))
    spec = _spec(pieces_t, draw(st.sampled_from(PREFERENCE)), draw(st.booleans()))
    tokens = [t.token for t in spec.tokens]
    atoms = st.one_of(chaos_atoms, st.sampled_from(tokens)) if tokens else chaos_atoms
    if draw(st.booleans()):
        candidate = _rewrite(draw, spec)
        if draw(st.booleans()):
            pos = draw(st.integers(0, len(candidate)))
            candidate = candidate[:pos] + draw(atoms) + candidate[pos:]
    else:
        candidate = "".join(draw(st.lists(atoms, max_size=12)))
    return spec, candidate


@settings(max_examples=EXAMPLES)
@given(structure_cases())
def test_exported_regex_agrees_with_the_validator(case: tuple[ValidatorSpec, str]) -> None:
    """regex/reply_regex accept a string exactly when no structural rule rejects it."""
    spec, candidate = case
    verdict = validate_text(spec, candidate)
    structural_ok = not any(r.code in STRUCTURAL for r in verdict.reasons)
    matched = re.fullmatch(spec.regex, candidate) is not None
    reply = json.dumps([candidate], ensure_ascii=False)
    canonical = not re.search(r"\\u00", reply)  # the exports allow no \u escapes
    reply_matched = re.fullmatch(spec.reply_regex, reply) is not None
    if spec.regex_exact:
        assert matched == structural_ok, (candidate, verdict.reasons)
        if canonical:
            assert reply_matched == structural_ok, (reply, verdict.reasons)
    else:  # too many token orders: the exports fix the source order (a subset)
        assert structural_ok or not matched
        assert structural_ok or not reply_matched


ADVERSARIAL = [
    "Describe ⟦1⟧ {__import__('os').system('echo pwned')}",
    "Describe ⟦1⟧ {{ 7*7 }} {% for x in y %}{% endfor %}",
    "Describe ⟦1⟧ ${HOME} %(name)s {0.__class__}",
    "Describe ⟦1⟧ {{{nested}}} {a{b}c}",
    "Describe ⟦1⟧ \"\"\"' + __import__('os').getcwd() + '\"\"\" f'{x!r}'",
    "Describe ⟦1⟧ ⟦ 1⟧ ⟦01⟧ ⟦1⟧⟧ [[SLOT_1]] {A}",
    "Describe ⟦1⟧ " + "very " * 200_000,
    "Describe ⟦1⟧ " + "{" * 100_000,
]


@pytest.mark.parametrize("candidate", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_adversarial_outputs_are_rejected_and_never_evaluated(
    candidate: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins
    import os

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("something was evaluated")

    monkeypatch.setattr(os, "system", boom)
    monkeypatch.setattr(os, "getcwd", boom)
    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    spec = _spec(
        _merge(
            [
                ir.TextPiece("Describe ", BUILTIN),
                ir.SlotRef("a", BUILTIN),
                ir.TextPiece(" briefly.", BUILTIN),
            ]
        ),
        "white_bracket",
        False,
    )
    start = time.perf_counter()
    verdict = validate_text(spec, candidate)
    reply_verdicts = json.dumps([candidate])  # also through the reply path
    assert time.perf_counter() - start < 5
    assert not verdict.accepted
    from instraug_dsl.compile.reply import parse_reply

    parsed = parse_reply(reply_verdicts)
    assert parsed.problem is not None or not validate_text(spec, parsed.rewrites[0]).accepted


def test_adversarial_instruction_text_stays_inert_in_prompts() -> None:
    """Jinja syntax inside an instruction is data: it reaches the model verbatim."""
    from instraug_dsl.compile import compile_text_plan

    src = r"""
task t { slot q: text instruction i0 = "Say \{\{ 7*7 \}\} and \{% raw %\} about {q}." }
metaprompt m { user "<instruction>{{ instruction }}</instruction>" }
plan p { use m }
"""
    (req,) = compile_text_plan(src, "p").requests
    assert (
        req.messages[0].content
        == "<instruction>Say {{ 7*7 }} and {% raw %} about ⟦1⟧.</instruction>"
    )
    assert choose_family("Say {{ 7*7 }}").name == "white_bracket"
