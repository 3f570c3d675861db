"""The compiler: MultiInstruct counts, reference-code bugs, validators, replies, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from instraug_dsl.commands import exitcodes
from instraug_dsl.compile import (
    FAMILIES,
    PREFERENCE,
    REASONS,
    Compiled,
    Request,
    ValidatorSpec,
    bootstrap_request,
    compile_paths,
    compile_plan,
    compile_text_plan,
    derive_requests,
    evaluate_reply,
    mask,
    parse_reply,
    strategies_from_reply,
    strategies_source,
    unmask,
    validate,
)
from instraug_dsl.contract.codec import encode
from instraug_dsl.errors import IatCompileError
from instraug_dsl.lang import ir
from instraug_dsl.lang.source import BUILTIN

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "templates" / "multiinstruct"

SMALL = """
task t {
  slot region: text
  slot question: text
  slot options: choices
  instruction i0 = "Look at {region} and answer {question}." pin "{options}"
  instruction i1 = "Find {region}, then look at {region} again to answer {question}."
  instruction i2 = "Answer the question {question} about {region}."
  instruction i3 = "Question: {question} Region: {region}. Pick one.{options}"
}
metaprompt m {
  user "Rewrite: <instruction>{{ instruction }}</instruction> keep {{ tokens|join(' ') }}"
}
strategies s { a: "Use synonyms." b: "Be brief." }
metaprompt g { strategies s user "{{ strategy }} <instruction>{{ instruction }}</instruction>" }
plan p { use m samples 2  use g  temperature 0.6, 0.8  seed 3 }
plan it extends p { iterations 1 }
"""


# The rule tests spell tokens as ⟦n⟧: they pin that family (whatever the default is).
BRACKETS = ("white_bracket", "brace_alpha")


def _compile_small(src: str = SMALL, plan: str = "p") -> Compiled:
    return compile_text_plan(src, plan, preference=BRACKETS)


@pytest.fixture(scope="module")
def small() -> Compiled:
    return _compile_small()


def _req(compiled: Compiled, instruction: str) -> Request:
    return next(r for r in compiled.requests if r.instruction == instruction)


def _spec(compiled: Compiled, instruction: str) -> ValidatorSpec:
    return compiled.validator_for(_req(compiled, instruction))


# ------------------------------------------------------------------ counts


@pytest.fixture(scope="module")
def library() -> Compiled:
    if not (LIBRARY / "plans.iat").is_file():
        pytest.skip("the MultiInstruct library is not in this checkout")
    return compile_paths([LIBRARY], "paper")


def test_multiinstruct_paper_plan_yields_2970_requests(library: Compiled) -> None:
    """The paper's single run: 297 instructions x 10 samples at one temperature."""
    counts = encode(library.manifest.counts)
    assert counts == {
        "requests": 2970,
        "validators": 297,
        "tasks": 61,
        "instructions": 297,
        "skipped_tasks": 14,
        "skipped_instructions": 11,
    }
    skipped = library.manifest.skipped_tasks
    assert isinstance(skipped, dict)
    assert sorted(k for k, v in skipped.items() if v == "pure_placeholders") == [
        "VQA",
        "open-domain_VQA",
    ]
    assert sum(v == "held_out" for v in skipped.values()) == 12
    assert set(library.manifest.skipped_instructions.values()) == {"pure_placeholder"}
    assert {r.temperature for r in library.requests} == {0.6}
    assert library.manifest.requests_per_instruction == 10


def test_multiinstruct_mt_plan_is_eleven_times_larger() -> None:
    if not (LIBRARY / "plans.iat").is_file():
        pytest.skip("the MultiInstruct library is not in this checkout")
    mt = compile_paths([LIBRARY], "mt")
    assert len(mt.requests) == 11 * 2970
    assert sorted({r.temperature for r in mt.requests}) == [
        round(0.5 + 0.05 * i, 2) for i in range(11)
    ]
    assert len({r.id for r in mt.requests}) == len(mt.requests)


def test_every_request_shows_its_protected_instruction_in_tags(library: Compiled) -> None:
    """The contract with the runtime (and offline/rules): tokens only, inside <instruction> tags."""
    for r in library.requests:
        user = r.messages[-1]
        assert user.role == "user"
        assert f"<instruction>{r.protected}</instruction>" in user.content
        assert "{" not in r.protected or r.token_map[0][0].startswith("{")
        assert unmask(r.protected, r.token_map, library.validator_for(r).family) == r.source_body


def test_request_seeds_and_ids_are_distinct_per_sample(small: Compiled) -> None:
    assert (
        len(small.requests) == 4 * (2 + 2) * 2
    )  # 4 instructions x (2 direct + 2 guided) x 2 temps
    assert len({r.id for r in small.requests}) == len(small.requests)
    assert len({r.seed for r in small.requests}) == len(small.requests)
    again = _compile_small()
    assert [r.id for r in again.requests] == [r.id for r in small.requests]


# ------------------------------------------------------- reference-code bugs


def test_repeated_placeholder_is_one_token_and_restored_twice(small: Compiled) -> None:
    """Reference bug: tokens per occurrence lost a repeated placeholder."""
    req = _req(small, "t/i1")
    assert req.protected == "Find ⟦1⟧, then look at ⟦1⟧ again to answer ⟦2⟧."
    verdict = validate(
        req, "Locate ⟦1⟧; after checking ⟦1⟧ once more, respond to ⟦2⟧.", validators=small
    )
    assert verdict.accepted, verdict.reasons
    assert (
        verdict.restored
        == "Locate {region}; after checking {region} once more, respond to {question}."
    )
    dropped = validate(req, "Locate ⟦1⟧ and respond to ⟦2⟧ quickly please.", validators=small)
    assert [r.code for r in dropped.reasons] == ["token_missing"]


def test_verbatim_copy_of_an_original_is_rejected(small: Compiled) -> None:
    """Reference bug: comparing with the masked source let copies of originals through."""
    spec = _spec(small, "t/i0")
    copy_of_other = validate(spec, "Answer the question ⟦2⟧ about ⟦1⟧.")
    assert [r.code for r in copy_of_other.reasons] == ["copies_original"]
    same = validate(spec, "  look at ⟦1⟧ and ANSWER ⟦2⟧ ")
    assert [r.code for r in same.reasons] == ["identical_source"]


def test_two_line_reply_is_parsed() -> None:
    """Reference bug: 'the third line of the reply' crashed on two-line replies."""
    parsed = parse_reply('Here is the rewrite:\n["Find ⟦1⟧ and answer ⟦2⟧."]')
    assert parsed.problem is None and parsed.rewrites == ("Find ⟦1⟧ and answer ⟦2⟧.",)


def test_tokens_are_named_in_the_prompt(small: Compiled) -> None:
    """Reference bug: the released prompt never told the model to keep the tokens."""
    assert "keep ⟦1⟧ ⟦2⟧" in _req(small, "t/i0").messages[-1].content


def test_target_templates_never_reach_the_model(small: Compiled) -> None:
    """An instruction's own target (`-> "..."`) changes no request or validator: it is
    never paraphrased, only carried to the catalog snapshot."""
    src = SMALL.replace(
        'instruction i2 = "Answer the question {question} about {region}."',
        'instruction i2 = "Answer the question {question} about {region}." -> "{region} SECRET"',
    )
    assert src != SMALL
    with_target = _compile_small(src)
    assert [r.to_json() for r in with_target.requests] == [r.to_json() for r in small.requests]
    assert with_target.validators == small.validators
    assert all("SECRET" not in json.dumps(r.to_json()) for r in with_target.requests)
    task = with_target.snapshot.catalog().tasks["t"]
    assert task.instructions[2].target_text == "{region} SECRET"


def test_pinned_segments_never_reach_the_model(small: Compiled) -> None:
    req = _req(small, "t/i0")
    assert req.trail == "{options}"
    assert "options" not in json.dumps([m.content for m in req.messages])


# --------------------------------------------------------------- validators


@pytest.mark.parametrize(
    ("candidate", "codes"),
    [
        ("Study ⟦1⟧ and reply to ⟦2⟧.", []),
        ("", ["empty", "token_missing"]),
        ("Study ⟦1⟧ and reply.", ["token_missing"]),
        ("Study ⟦1⟧ ⟦1⟧ and reply to ⟦2⟧.", ["token_duplicated"]),
        ("Study ⟦1⟧ and reply to ⟦2⟧ ⟦3⟧.", ["token_invented"]),
        ("Study ⟦1 ⟧ and reply to ⟦2⟧.", ["token_missing", "token_altered"]),
        ("Study ⟦1⟧ {x} and reply to ⟦2⟧.", ["stray_brace", "foreign_token"]),
        ("Study ⟦1⟧ {{x}} and reply to ⟦2⟧.", ["stray_brace", "template_syntax", "foreign_token"]),
        ("Study ⟦1⟧ and %(x)s reply to ⟦2⟧.", ["template_syntax"]),
        ("Study ⟦1⟧\nand reply to ⟦2⟧.", ["multiline"]),
        ("Study ⟦1⟧ and reply to ⟦2⟧ " + "at length " * 5, ["length_ratio"]),
        ("Sure, study ⟦1⟧ and reply to ⟦2⟧.", ["preamble"]),
        ("Rephrased instruction: study ⟦1⟧ and reply to ⟦2⟧.", ["preamble"]),
        ("Here is the rewritten version: study ⟦1⟧, reply ⟦2⟧.", ["preamble"]),
        ("As an AI, I study ⟦1⟧ and reply to ⟦2⟧.", ["preamble", "answer"]),
    ],
)
def test_validator_rules(small: Compiled, candidate: str, codes: list[str]) -> None:
    verdict = validate(_spec(small, "t/i0"), candidate)
    assert [r.code for r in verdict.reasons] == codes
    assert verdict.accepted == (not codes)
    assert all(code in REASONS for code in codes)
    if codes:
        assert verdict.reask and verdict.reask.endswith('like ["..."].')


def test_choices_slot_ending_the_body_must_stay_at_the_end(small: Compiled) -> None:
    spec = _spec(small, "t/i3")
    assert [t.at_end for t in spec.tokens] == [False, False, True]
    ok = validate(spec, "Regarding ⟦2⟧, answer ⟦1⟧ by picking one of these.⟦3⟧")
    assert ok.accepted, ok.reasons
    moved = validate(spec, "Pick from ⟦3⟧ to answer ⟦1⟧ about region ⟦2⟧.")
    assert [r.code for r in moved.reasons] == ["slot_order"]
    assert "Keep ⟦3⟧ at the very end." in (moved.reask or "")


def test_exact_policy_pins_the_token_order() -> None:
    src = SMALL.replace("seed 3 }", "seed 3  filter { placeholders exact } }")
    compiled = _compile_small(src)
    spec = _spec(compiled, "t/i0")
    assert spec.ordered
    assert validate(spec, "Examine ⟦1⟧ and then answer ⟦2⟧.").accepted
    assert [r.code for r in validate(spec, "Answer ⟦2⟧ after examining ⟦1⟧.").reasons] == [
        "slot_order"
    ]


def test_length_bounds_come_from_the_plan() -> None:
    src = SMALL.replace("seed 3 }", "seed 3  filter { length_ratio 0.5..1.5 } }")
    spec = _spec(_compile_small(src), "t/i2")
    assert spec.length_ratio == (0.5, 1.5)
    assert [r.code for r in validate(spec, "Answer ⟦2⟧ ⟦1⟧.").reasons] == ["length_ratio"]


def test_validate_by_request_id_and_mapping(small: Compiled) -> None:
    req = _req(small, "t/i2")
    assert validate(req.id, "Respond to ⟦2⟧ regarding ⟦1⟧ now.", validators=small).accepted
    assert validate(
        req.validator, "Respond to ⟦2⟧ regarding ⟦1⟧ now.", validators=small.validators
    ).accepted
    with pytest.raises(TypeError):
        validate(req, "x")


# ------------------------------------------------------------------ replies


@pytest.mark.parametrize(
    ("reply", "rewrites"),
    [
        ('["A ⟦1⟧."]', ("A ⟦1⟧.",)),
        ('```json\n["A ⟦1⟧.", "B ⟦1⟧."]\n```', ("A ⟦1⟧.", "B ⟦1⟧.")),
        ('Sure! Here it is: ["A ⟦1⟧."] Hope it helps.', ("A ⟦1⟧.",)),
        ('{"rewrites": ["A ⟦1⟧."]}', ("A ⟦1⟧.",)),
        ('"A ⟦1⟧."', ("A ⟦1⟧.",)),
        ('Rewrites:\n1. A ⟦1⟧.\n2) "B ⟦1⟧."', ("A ⟦1⟧.", "B ⟦1⟧.")),
        ('["Say \\"hi\\" to ⟦1⟧ [twice]."]', ('Say "hi" to ⟦1⟧ [twice].',)),
    ],
)
def test_reply_deviations_are_accepted(reply: str, rewrites: tuple[str, ...]) -> None:
    parsed = parse_reply(reply)
    assert parsed.problem is None
    assert parsed.rewrites == rewrites


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "Here is a rewrite. Find it. I hope this helps!",
        '["a"] or maybe ["b"]',
        "[1, 2]",
        "1. first\n3. third",
        '["unterminated',
        "x" * 200_000,
    ],
)
def test_unparseable_replies_are_reported_not_guessed(reply: str) -> None:
    parsed = parse_reply(reply)
    assert parsed.rewrites == () and parsed.problem


def test_evaluate_reply(small: Compiled) -> None:
    req = _req(small, "t/i2")
    spec = small.validator_for(req)
    (bad,) = evaluate_reply(req, spec, "I can't do that.")
    assert not bad.accepted and [r.code for r in bad.reasons] == ["unparseable"] and bad.reask
    good, copy = evaluate_reply(
        req, spec, '["Respond to ⟦1⟧ regarding ⟦2⟧ now.", "Answer the question ⟦1⟧ about ⟦2⟧."]'
    )
    assert good.accepted and good.restored == "Respond to {question} regarding {region} now."
    assert [r.code for r in copy.reasons] == ["identical_source"]
    with pytest.raises(IatCompileError):
        evaluate_reply(req, _spec(small, "t/i0"), "[]")


def test_offline_rules_provider_round_trip(small: Compiled) -> None:
    """The offline test provider's replies parse and mostly validate; chaos replies never do."""
    from instraug_dsl.runtime import offline

    accepted = 0
    for req in small.requests:
        msgs = [{"role": m.role, "content": m.content} for m in req.messages]
        verdicts = evaluate_reply(
            req, small.validator_for(req), offline.generate("offline/rules", msgs, req.seed).text
        )
        accepted += verdicts[0].accepted
        for mode in offline.CHAOS_MODES:
            if mode in ("code_fence", "preamble"):  # deviations the parser accepts by design
                continue
            reply = offline.corrupt(offline.extract_instruction(msgs), req.seed, mode)
            assert not any(
                v.accepted for v in evaluate_reply(req, small.validator_for(req), reply)
            ), (mode, reply)
    assert accepted >= len(small.requests) // 2


# ------------------------------------------------------------- iteration


def test_derive_requests_for_the_iterative_round(tmp_path: Path) -> None:
    compiled = _compile_small(SMALL, "it")
    req = _req(compiled, "t/i1")
    verdict = validate(
        req, "Locate ⟦1⟧; after checking ⟦1⟧ once more, respond to ⟦2⟧.", validators=compiled
    )
    assert verdict.restored is not None
    reqs, validators = derive_requests(
        compiled, [(req, verdict.restored), (req, verdict.restored)], 1
    )
    assert len(reqs) == 3  # one per meta-prompt expansion (m, g.a, g.b), duplicates merged
    assert {r.metaprompt for r in reqs} == {"m", "g.a", "g.b"} and {r.sample for r in reqs} == {0}
    child = reqs[0]
    assert child.iteration == 1 and child.root == "t/i1" and child.parent == child.instruction
    assert child.temperature == req.temperature
    spec = validators[child.validator]
    assert spec.source_words == 10  # the parent's length (the root has 11 words)
    assert dict(spec.slots) == {"region": 2, "question": 1}  # the root's placeholders
    assert [
        r.code
        for r in validate(spec, "Locate ⟦1⟧; after checking ⟦1⟧ once more, respond to ⟦2⟧.").reasons
    ] == ["identical_source"]
    assert [
        r.code for r in validate(spec, "Find ⟦1⟧, then look at ⟦1⟧ again to answer ⟦2⟧.").reasons
    ] == ["copies_original"]
    with pytest.raises(IatCompileError):
        derive_requests(compiled, [(req, "Locate {region} only.")], 1)
    # A compile read back from disk derives exactly the same round (its catalog
    # snapshot carries everything the plan context needs).
    compiled.write(tmp_path / "c")
    again, more = derive_requests(Compiled.read(tmp_path / "c"), [(req, verdict.restored)], 1)
    assert again == reqs[:3] and more == validators


# ------------------------------------------------------- masking, bootstrap


def test_mask_and_unmask_public_api() -> None:
    masked = mask("Use {a} then {b} then {a}.", "white_bracket")
    assert masked.protected == "Use ⟦1⟧ then ⟦2⟧ then ⟦1⟧."
    assert dict(masked.counts) == {"⟦1⟧": 2, "⟦2⟧": 1}
    assert unmask(masked.protected, masked) == "Use {a} then {b} then {a}."
    assert mask("{a}", "double_square").protected == "[[SLOT_1]]"
    with pytest.raises(IatCompileError):
        mask("x [[y]] {a}", "double_square")


def test_text_containing_the_default_delimiters_gets_the_next_family() -> None:
    first, second = (FAMILIES[n] for n in PREFERENCE[:2])
    text = ir.TextPiece(f"Text with {first.open}x{first.close} and ", BUILTIN)
    masked = mask([text, ir.SlotRef("a", BUILTIN)])
    assert masked.family == second.name
    assert masked.protected == text.text + second.token(1)
    assert mask("Plain {a}").family == PREFERENCE[0]


def test_bootstrap_helpers() -> None:
    src = 'bootstrap b { count 3 take 2 user "Give {{ count }} ways." }'
    from instraug_dsl.lang.frontend import check_text

    catalog = check_text(src).raise_for_errors()
    req = bootstrap_request(catalog, "b")
    assert req.messages[-1].content == "Give 3 ways." and req.take == 2
    items = strategies_from_reply(
        '```json\n["Use synonyms.", "Reorder \\"clauses\\".", "Be brief."]\n```', 2
    )
    assert items == ("Use synonyms.", 'Reorder "clauses".')
    text = strategies_source("boot", items)
    assert check_text(
        text + 'metaprompt g { strategies boot user "{{ strategy }} {{ instruction }}" }'
    ).ok
    with pytest.raises(IatCompileError):
        strategies_from_reply('["only one"]', 2)


def test_unknown_plan_has_a_hint() -> None:
    from instraug_dsl.lang.frontend import check_text

    catalog = check_text(SMALL).raise_for_errors()
    with pytest.raises(IatCompileError, match="did you mean `p`"):
        compile_plan(catalog, "pp")


# ---------------------------------------------------------------------- CLI


def test_cli_compile(tmp_path: Path) -> None:
    from instraug_dsl.commands.app import app
    from instraug_dsl.commands.app import register_commands as _register_commands

    _register_commands()
    src = tmp_path / "a.iat"
    src.write_text(SMALL, encoding="utf-8")
    runner = CliRunner()
    ok = runner.invoke(app, ["compile", str(src), "-o", str(tmp_path / "out"), "--plan", "p"])
    assert ok.exit_code == 0, ok.output
    assert "32 requests for 4 instructions of 1 task (0 tasks and 0 instructions" in ok.output
    lines = (tmp_path / "out" / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 32 and all(json.loads(line)["id"].startswith("r") for line in lines)
    no_plan = runner.invoke(app, ["compile", str(src), "-o", str(tmp_path / "o2")])
    assert (
        no_plan.exit_code == exitcodes.USAGE
        and "several plans are declared (`it`, `p`) and none is marked `default`" in no_plan.output
    )
    unknown = runner.invoke(
        app, ["compile", str(src), "-o", str(tmp_path / "o3"), "--plan", "nope"]
    )
    assert unknown.exit_code == exitcodes.USAGE and "unknown plan `nope`" in unknown.output
    bad = tmp_path / "bad.iat"
    bad.write_text('task t { instruction i0 = "{nope}" }', encoding="utf-8")
    broken = runner.invoke(app, ["compile", str(bad), "-o", str(tmp_path / "o4")])
    assert broken.exit_code == exitcodes.DIAGNOSTICS and "E020" in broken.output
    missing = runner.invoke(
        app, ["compile", str(tmp_path / "missing.iat"), "-o", str(tmp_path / "o5")]
    )
    assert missing.exit_code == exitcodes.USAGE
