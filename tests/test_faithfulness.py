"""Faithful rewrites: token hygiene, content checks, literal braces, the labelled set.

Golden cases for every reason code the faithfulness checks add (``foreign_token``,
``answer``, ``echo``, ``parroted_example``, ``language_switch``, the ``length_ratio``
lower bound) with their re-ask messages; the ``.iat`` side (``filter { reject ...
language ... }``, ``example``); literal braces; properties; and the goal on
tests/data/faithfulness/labelled.jsonl (see bench/bench_faithfulness.py for the table).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pytest
from faithfulness_support import HARD_KINDS, KINDS, LABELS, Item, evaluate, load, spec_for
from hypothesis import given, settings
from hypothesis import strategies as st

from instraug_dsl.compile import (
    REASONS,
    STRUCTURAL,
    Compiled,
    ValidatorSpec,
    compile_text_plan,
    validate,
)
from instraug_dsl.compile.validate import GENERIC_REASK, REASK_TEXT, reask_texts

SRC = r'''
task t {
  slot q: text
  slot text: text
  instruction i0 = "Does the text {text} describe the image?"
  instruction i1 =
    "In this task you are given some text and you need to decide if the text describe the image."
  instruction i2 = "Answer the question {q} based on the content of the image."
  instruction i3 = "Reply in the form \{\"label\": x\} to {q}."
}
metaprompt m {
  system "You reword task instructions and never answer them."
  user """Reword the instruction between the tags, keeping its meaning.
{% if example_instruction %}An example from another task:
"{{ example_instruction }}" -> ["{{ example_rewrite }}"]
{% endif %}<instruction>{{ instruction }}</instruction>"""
  example "Convert the temperature {t} from degrees Celsius to Fahrenheit."
    -> "Express the Celsius temperature {t} in degrees Fahrenheit."
  example "Summarize the recipe in three bullet points."
    -> "Give the recipe's gist as a list of three bullet points."
}
plan strict {
  use m
  filter {
    length_ratio 0.4..2.0
    reject answers, echoes, examples
    language en
  }
}
plan lenient extends strict {
  filter {
    length_ratio 0..2.0
    reject none
    language any
  }
}
'''


@pytest.fixture(scope="module")
def strict() -> Compiled:
    return compile_text_plan(SRC, "strict")


@functools.cache
def _lenient() -> Compiled:
    return compile_text_plan(SRC, "lenient")


def _spec(compiled: Compiled, name: str) -> ValidatorSpec:
    req = next(r for r in compiled.requests if r.instruction == f"t/{name}")
    return compiled.validator_for(req)


# ------------------------------------------------------------- golden rules

CASES = [
    # (instruction, candidate, codes, a phrase of the re-ask)
    ("i0", "Is the image described by the text {A}?", [], None),
    ("i0", "Tell me whether {A} is a description of the picture.", [], None),
    ("i1", "Decide whether the given text is a description of the image.", [], None),
    ("i2", "Using the image, respond to the question {A}.", [], None),
    # token hygiene: any family, any bracketed shape the source lacks
    (
        "i1",
        "Describe the image ⟦0⟧ briefly and decide if the text describes it.",
        ["foreign_token"],
        "Remove ⟦0⟧",
    ),
    (
        "i0",
        "Is the image described by the text {A} in <instruction>?",
        ["foreign_token"],
        "Remove <instruction>",
    ),
    ("i0", "Is the image described by [[SLOT_1]] {A}?", ["foreign_token"], "Remove [[SLOT_1]]"),
    ("i0", "Is the image described by the text {A} [question]?", ["foreign_token"], None),
    # answers and assertions
    (
        "i0",
        "Yes, the text {A} and the content of the image match.",
        ["answer"],
        "Do not answer, judge or carry out the instruction",
    ),
    ("i0", "The text {A} describes the image.", ["answer"], "asks for the same thing"),
    ("i1", "The text describes the image well in this case.", ["answer"], None),
    ("i2", "The answer is {A}, as the image shows a dog.", ["answer"], None),
    # echoes of the prompt and of re-asks
    (
        "i1",
        "Reword the instruction between the tags, keeping its meaning.",
        ["echo"],
        "Do not repeat the directions",
    ),
    (
        "i0",
        "Keep the tokens {A} exactly as written, and add no others.",
        ["echo"],
        None,
    ),
    # the example parroted
    (
        "i2",
        "Express the Celsius temperature {A} in degrees Fahrenheit.",
        ["parroted_example"],
        "Do not copy the example",
    ),
    ("i1", "Give the recipe's gist as a list of three bullet points.", ["parroted_example"], None),
    # language or script switched
    (
        "i1",
        "Décidez si le texte donné décrit bien l'image ou pas.",
        ["answer", "language_switch"],
        "Write the rewrite in English",
    ),
    ("i0", "判断文本 {A} 是否描述了这张图像?", ["language_switch"], "in English"),
    # the lower length bound
    ("i1", "Decide if it fits.", ["length_ratio"], "do not shorten it this much"),
]


@pytest.mark.parametrize(("name", "candidate", "codes", "reask"), CASES)
def test_faithfulness_rules(
    strict: Compiled, name: str, candidate: str, codes: list[str], reask: str | None
) -> None:
    verdict = validate(_spec(strict, name), candidate)
    assert [r.code for r in verdict.reasons] == codes, verdict.reasons
    assert verdict.accepted == (not codes)
    assert all(c in REASONS and c not in STRUCTURAL for c in codes)
    if reask is not None:
        assert verdict.reask is not None and reask in verdict.reask
    if codes:
        assert verdict.reask is not None and verdict.reask.endswith('like ["..."].')


def test_lenient_plan_turns_the_content_checks_off() -> None:
    lenient = compile_text_plan(SRC, "lenient")
    spec = _spec(lenient, "i0")
    assert spec.reject == () and spec.language == "any"
    assert spec.echo == () and spec.examples == ()
    for candidate in (
        "Yes, the text {A} and the content of the image match.",
        "Express the Celsius temperature {A} in degrees Fahrenheit.",
        "判断文本 {A} 是否描述了这张图像?",
    ):
        assert validate(spec, candidate).accepted, candidate
    # Token hygiene is not a plan option.
    assert [r.code for r in validate(spec, "Does {A} ⟦0⟧ describe it?").reasons] == [
        "foreign_token"
    ]


def test_validators_json_shows_the_checks(strict: Compiled) -> None:
    spec: dict[str, Any] = _spec(strict, "i0").to_json()
    assert spec["reject"] == ["answers", "echoes", "examples"]
    assert spec["language"] == "en" and spec["source_instructs"] is True
    assert "Convert the temperature {0} from degrees Celsius to Fahrenheit." in spec["examples"]
    assert any("Reword the instruction between the tags" in e for e in spec["echo"])
    assert GENERIC_REASK.replace(" ({reasons})", "") in spec["echo"]
    assert ValidatorSpec.from_json(json.loads(json.dumps(spec))).to_json() == spec


def test_the_example_is_rendered_with_a_never_real_token(strict: Compiled) -> None:
    by_name = {r.instruction: r for r in strict.requests}
    with_token = by_name["t/i0"].messages[-1].content
    assert '"Convert the temperature {0} from degrees Celsius to Fahrenheit."' in with_token
    without = by_name["t/i1"].messages[-1].content
    assert "Summarize the recipe" in without and "{0}" not in without
    # A family without braces shows its own shape.
    assert "⟦0⟧" in by_name["t/i3"].messages[-1].content


def test_every_reask_sentence_is_an_echo(strict: Compiled) -> None:
    spec = _spec(strict, "i1")
    for text in reask_texts([]):
        if len(text.split()) >= 5:
            codes = [r.code for r in validate(spec, text).reasons]
            assert "echo" in codes, text
    assert set(REASK_TEXT) >= {"answer", "echo", "example", "language", "foreign", "short"}


# ------------------------------------------------------------ literal braces


def test_literal_braces_of_the_source_are_kept_not_stray(strict: Compiled) -> None:
    spec = _spec(strict, "i3")
    assert spec.family == "white_bracket" and spec.literals == ('{"label": x}',)
    ok = validate(spec, 'Answer ⟦1⟧ using the form {"label": x}.')
    assert ok.accepted, ok.reasons
    assert ok.restored == 'Answer {q} using the form {"label": x}.'
    bad = validate(spec, "Answer ⟦1⟧ using the form {label}.")
    assert [r.code for r in bad.reasons] == ["stray_brace", "foreign_token"]
    assert bad.reask is not None
    assert 'Use braces only as the instruction does ({"label": x})' in bad.reask
    assert "Do not use braces" not in bad.reask


def test_literal_braces_in_the_exports(strict: Compiled) -> None:
    spec = _spec(strict, "i3")
    good = 'Answer ⟦1⟧ using the form {"label": x}.'
    assert re.fullmatch(spec.regex, good)
    assert re.fullmatch(spec.reply_regex, json.dumps([good], ensure_ascii=False))
    assert not re.fullmatch(spec.regex, "Answer ⟦1⟧ using {label}.")
    assert '"{\\\\\\"label\\\\\\": x}"' in spec.gbnf


# ---------------------------------------------------------------- properties

SAFE = st.sampled_from(
    "find the region answer image question briefly then look at select describe object".split()
)
SHAPES = st.sampled_from(
    [
        "⟦0⟧",
        "⟦7⟧",
        "{0}",
        "{x}",
        "[[SLOT_1]]",
        "<<Q1>>",
        "⟬1⟭",
        "⌜1⌝",
        "@@1@@",
        "__X1__",
        "<image>",
        "</instruction>",
        "[question]",
        "{A}",
    ]
)


@settings(max_examples=200)
@given(st.lists(SAFE, min_size=2, max_size=8), SHAPES, st.integers(0, 8))
def test_any_foreign_shape_is_rejected(words: list[str], shape: str, at: int) -> None:
    """Whatever the family of the request, a token-like shape the source lacks fails."""
    spec = _spec(_lenient(), "i1")  # no tokens: family brace_alpha
    words.insert(min(at, len(words)), shape)
    verdict = validate(spec, "Decide " + " ".join(words) + ".")
    assert not verdict.accepted
    assert {r.code for r in verdict.reasons} & {"foreign_token", "token_invented", "token_altered"}


@settings(max_examples=200)
@given(st.lists(SAFE, min_size=3, max_size=12))
def test_imperatives_and_questions_instruct(words: list[str]) -> None:
    """A rewrite opening with an imperative verb, or asking a question, is no answer."""
    from instraug_dsl.compile.faithful import answer_problem

    sentence = " ".join(words)
    assert answer_problem("Select " + sentence + ".", True, "select it") is None
    assert answer_problem("Which " + sentence + "?", True, "select it") is None


# ------------------------------------------------------------- labelled set


@pytest.fixture(scope="module")
def labelled() -> list[Item]:
    return load()


def test_labelled_set_is_well_formed(labelled: list[Item]) -> None:
    assert len(labelled) >= 200
    assert {it.label for it in labelled} <= set(LABELS)
    for it in labelled:
        assert (it.kind == "faithful") == (it.label == "faithful"), it
        assert it.kind == "faithful" or it.kind in KINDS, it
        spec_for(it)  # the instruction exists and its source text matches
    assert {it.kind for it in labelled} >= set(HARD_KINDS)
    assert sum(it.origin == "hand" for it in labelled) < len(labelled) / 2


def test_faithfulness_goal_on_the_labelled_set(labelled: list[Item]) -> None:
    """No answer, echo, leaked token, parroted example or language switch is accepted, and
    at least 85% of the faithful rewrites are."""
    result = evaluate(labelled)
    assert [(it.kind, it.candidate) for it in result.hard_accepted()] == []
    assert result.scores("ours")["recall"] >= 0.85
    # And the checks beat the paper's filters on the unfaithful rewrites.
    assert result.scores("ours")["precision"] > result.scores("paper")["precision"]


def test_no_library_instruction_trips_a_content_check_against_itself() -> None:
    """Every MultiInstruct training instruction, fed back as its own rewrite, is only a copy:
    the content checks (and token hygiene) find nothing wrong with the source itself."""
    from faithfulness_support import library as shipped

    library = shipped()
    allowed = {"identical_source", "copies_original"}
    seen: set[str] = set()
    for req in library.requests:
        if req.validator in seen:
            continue
        seen.add(req.validator)
        verdict = validate(library.validator_for(req), req.protected)
        assert {r.code for r in verdict.reasons} <= allowed, (req.instruction, verdict.reasons)


LITERAL_ATOMS = st.sampled_from(
    [
        '{"label": x}',
        "{",
        "}",
        "{label}",
        "⟦1⟧",
        "⟦2⟧",
        "⟦",
        "answer",
        " ",
        ".",
        "%",
        "(",
        "{{",
        "$",
    ]
)


@settings(max_examples=300)
@given(st.lists(LITERAL_ATOMS, max_size=10))
def test_exports_agree_with_the_validator_on_literal_braces(atoms: list[str]) -> None:
    """With literal braces in the source, regex and reply regex accept a rewrite exactly when
    no structural rule rejects it."""
    spec = _spec(_lenient(), "i3")
    candidate = "".join(atoms)
    verdict = validate(spec, candidate)
    structural_ok = not any(r.code in STRUCTURAL for r in verdict.reasons)
    assert (re.fullmatch(spec.regex, candidate) is not None) == structural_ok, verdict.reasons
    reply = json.dumps([candidate], ensure_ascii=False)
    assert (re.fullmatch(spec.reply_regex, reply) is not None) == structural_ok
