"""Rendering instruction templates with typed slot values (instraug_dsl.dataset.render)."""

from __future__ import annotations

import builtins
import doctest
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instraug_dsl.dataset import eachfmt
from instraug_dsl.dataset import render as render_mod
from instraug_dsl.dataset.render import (
    FormatError,
    RenderError,
    RenderPlan,
    TaskRenderer,
    compile_template,
    render,
    render_row,
    render_target,
    split_text,
)
from instraug_dsl.lang import ir
from instraug_dsl.lang.frontend import check_text
from instraug_dsl.lang.model import TaskSpec
from instraug_dsl.lang.source import BUILTIN
from instraug_dsl.lang.strings import quote, split_template

TASK = r"""
type regions = bbox[] sep "||||"
task t {
  slot question: text
  slot options: choices
  slot options_list: text[] from options
  slot box: bbox from region[0]
  slot boxes: regions from region
  slot given: regions from meta_data.object_regions.given_region
  slot info: text[] sep " " from meta_data.object_regions each "{key} is in {value[0]}."
  slot hist: text[] sep " " from meta_data.dialog_hist each "{q}, {a};"
  slot last: text[] from meta_data.dialog_hist[-1] each "{q}, {a};"
  slot nested: text[] sep "/" from items each "{value.name}={value.size[1]}"
  slot ctx: text[] sep "\n" from context default "\"nothing\""
  slot note: text? from meta_data.note
  slot token: const "image"
  slot picks: choices prefix " Pick: " sep " | " from meta_data.picks default "next | previous"
  instruction i0 = "{question} {token}" pin "{options}"
}
"""


@pytest.fixture(scope="module")
def task() -> TaskSpec:
    return check_text(TASK).raise_for_errors().tasks["t"]


def plan_for(task: TaskSpec, text: str) -> RenderPlan:
    return compile_template(text, task)


def r(task: TaskSpec, text: str, record: dict[str, Any], seed: int | None = None) -> str:
    return render(plan_for(task, text), record, seed, shuffle_options=seed is not None)


RECORD: dict[str, Any] = {
    "question": "What is it?",
    "options": ["a", "b", "c"],
    "region": ["1 2 3 4", [5, 6.5, 7, 8]],
    "meta_data": {
        "object_regions": {"given_region": ["9 9 9 9"], "person 1": ["1 1 2 2"]},
        "dialog_hist": [{"q": "is it big", "a": "yes"}, {"q": "is it red", "a": "no"}],
    },
    "items": [{"name": "x", "size": [1, 2]}, {"name": "y", "size": [3, 4.5]}],
    "target": "b",
}


def test_text_const_and_pinned_choices(task: TaskSpec) -> None:
    plan = compile_template(task.instructions[0].pieces, task)
    out = render(plan, RECORD, None, shuffle_options=False)
    assert out == "What is it? image\n\n[Options]: a||||b||||c"
    assert plan.slot_names == ("question", "token", "options")


def test_bbox_string_verbatim_and_list_of_numbers(task: TaskSpec) -> None:
    assert r(task, "{box}", RECORD) == "1 2 3 4"
    assert r(task, "[{boxes}]", RECORD) == "[1 2 3 4||||5 6.5 7 8]"
    odd = {"region": [" 1.5  -2 3e2 .4 "]}
    assert r(task, "{box}", odd) == " 1.5  -2 3e2 .4 "  # verbatim, spacing included


@pytest.mark.parametrize(
    ("region", "field", "reason"),
    [
        (["1 2 3"], "region[0]", 'expected a bounding box "x1 y1 x2 y2"'),
        (["1 2 3 four"], "region[0]", 'expected a bounding box "x1 y1 x2 y2"'),
        ([[1, 2, 3]], "region[0]", "expected a bounding box (4 numbers), got list"),
        ([[1, 2, 3, True]], "region[0]", "expected a bounding box (4 numbers), got list"),
        ([{"x": 1}], "region[0]", "expected a bounding box (4 numbers), got object"),
        ("1 2 3 4", "region", "expected a list to index with [0], got string"),
    ],
)
def test_bad_bbox_names_field(task: TaskSpec, region: object, field: str, reason: str) -> None:
    with pytest.raises(RenderError) as info:
        r(task, "{box}", {"region": region})
    assert info.value.field == field
    assert info.value.reason.startswith(reason)


def test_each_over_list_of_objects_mapping_items_and_single_object(task: TaskSpec) -> None:
    assert r(task, "{hist}", RECORD) == "is it big, yes; is it red, no;"
    assert r(task, "{last}", RECORD) == "is it red, no;"
    assert r(task, "{info}", RECORD) == "given_region is in 9 9 9 9. person 1 is in 1 1 2 2."
    assert r(task, "{nested}", RECORD) == "x=2/y=4.5"


@pytest.mark.parametrize(
    ("meta", "field", "reason"),
    [
        ({"dialog_hist": [{"q": "x"}]}, "meta_data.dialog_hist[0] (each {a})", "missing value"),
        ({"dialog_hist": ["plain"]}, "meta_data.dialog_hist[0] (each {q})", "expected an object"),
        (
            {"dialog_hist": [{"q": [1], "a": "y"}]},
            "meta_data.dialog_hist[0] (each {q})",
            "expected text or a number, got list",
        ),
        ({"dialog_hist": "text"}, "meta_data.dialog_hist", "expected a list or an object"),
    ],
)
def test_each_errors_name_the_element(
    task: TaskSpec, meta: object, field: str, reason: str
) -> None:
    with pytest.raises(RenderError) as info:
        r(task, "{hist}", {"meta_data": meta})
    assert info.value.field == field
    assert info.value.reason.startswith(reason)


@pytest.mark.parametrize("fmt", [r"{a.}", r"{a[x]}", r"{a", r"a}", r"{a b}", r"{}"])
def test_bad_each_format_is_a_compile_error_with_position(fmt: str) -> None:
    src = f'task t {{ slot h: text[] from x each "{fmt}"  instruction i0 = "{{h}}" }}'
    task = check_text(src, "bad.iat").raise_for_errors().tasks["t"]
    with pytest.raises(FormatError, match=r"^bad\.iat:1:\d+: "):
        compile_template("{h}", task)


def test_each_literal_braces_via_escapes() -> None:
    src = r'task t { slot h: text[] from x each "\{{value}\}"  instruction i0 = "{h}" }'
    task = check_text(src).raise_for_errors().tasks["t"]
    assert r(task, "{h}", {"x": ["a", "b"]}) == "{a}||||{b}"


def test_defaults_optional_and_missing(task: TaskSpec) -> None:
    assert r(task, "<{ctx}>", {}) == '<"nothing">'
    assert r(task, "<{ctx}>", {"context": []}) == '<"nothing">'
    assert r(task, "<{ctx}>", {"context": None}) == '<"nothing">'
    assert r(task, "<{ctx}>", {"context": ["s1", "s2"]}) == "<s1\ns2>"
    assert r(task, "<{note}>", {}) == "<>"
    assert r(task, "<{note}>", {"meta_data": {"note": ""}}) == "<>"
    assert r(task, "<{picks}>", {}) == "< Pick: next | previous>"
    assert r(task, "<{picks}>", {"meta_data": {"picks": ["x", "y"]}}) == "< Pick: x | y>"
    with pytest.raises(RenderError) as info:
        r(task, "{question}", {"question": None})
    assert (info.value.field, info.value.reason) == ("question", "missing required field")
    assert r(task, "<{question}>", {"question": ""}) == "<>"  # present but empty is a value


def test_text_values_numbers_and_wrong_shapes(task: TaskSpec) -> None:
    assert r(task, "{question}", {"question": 12}) == "12"
    assert r(task, "{question}", {"question": 0.5}) == "0.5"
    for bad, kind in ((True, "boolean"), (["x"], "list"), ({"x": 1}, "object")):
        with pytest.raises(RenderError, match=f"question: expected text, got {kind}"):
            r(task, "{question}", {"question": bad})
    with pytest.raises(RenderError, match=r"^meta_data: expected an object with field"):
        r(task, "{given}", {"meta_data": ["not", "an", "object"]})


def test_unknown_slot_and_stray_braces_never_compile(task: TaskSpec) -> None:
    for text in ("{__class__}", "{{7*7}}", "a } b", "{question.__class__}", "{0}", "{ question }"):
        with pytest.raises(FormatError):
            compile_template(text, task)


def test_options_shuffle_is_seeded_and_consistent(task: TaskSpec) -> None:
    plan = plan_for(task, "{options}#{options_list}")
    record = {"options": [f"opt{i}" for i in range(8)], "target": "opt3"}
    outs = {render(plan, record, seed, shuffle_options=True) for seed in range(30)}
    assert len(outs) > 20  # really shuffled
    for seed in range(30):
        out = render(plan, record, seed, shuffle_options=True)
        assert out == render(plan, record, random.Random(seed), shuffle_options=True)
        block, listed = out.split("#")
        shown = block.removeprefix("\n\n[Options]: ").split("||||")
        # the same permutation everywhere, the target still among the options, record untouched
        assert listed == "||||".join(shown)
        assert sorted(shown) == sorted(record["options"])
        assert render_target(plan, record) in shown
    assert record["options"] == [f"opt{i}" for i in range(8)]


def test_shuffle_needs_a_seed(task: TaskSpec) -> None:
    with pytest.raises(ValueError, match="needs a random.Random or a seed"):
        render(plan_for(task, "{options}"), RECORD, None, shuffle_options=True)


def test_render_target() -> None:
    src = 'task t { target from meta.answer  slot q: text  instruction i0 = "{q}" }'
    task = check_text(src).raise_for_errors().tasks["t"]
    plan = compile_template("{q}", task)
    assert render_target(plan, {"meta": {"answer": 3}}) == "3"
    with pytest.raises(RenderError, match="meta.answer: missing target"):
        render_target(plan, {"meta": {}})


def test_task_renderer_renders_every_used_slot_once(task: TaskSpec) -> None:
    plans = [plan_for(task, "{question}{options}"), plan_for(task, "{hist} {question}")]
    values = TaskRenderer(plans).values(RECORD, random.Random(0), shuffle_options=True)
    assert set(values) == {"question", "options", "hist"}
    assert plans[1].assemble(values) == "is it big, yes; is it red, no; What is it?"
    with pytest.raises(RenderError, match="meta_data.dialog_hist"):
        # hist is validated even for a plan that does not use it
        TaskRenderer(plans).values({**RECORD, "meta_data": {}}, None, shuffle_options=False)


MALICIOUS = [
    "{__class__}",
    "{{7*7}}",
    "{0.__class__.__mro__}",
    "{question}",
    "\"); __import__('os').system('touch /tmp/iatc-pwned') #",
    "'''; import os; os.system('id') #",
    "{% for x in range(9) %}x{% endfor %}",
    "${7*7} #{7*7} %(x)s %s",
]


@pytest.fixture
def no_code_execution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering must never reach eval/exec/compile."""

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("code execution attempted")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, boom)


@pytest.mark.usefixtures("no_code_execution")
@pytest.mark.parametrize("value", MALICIOUS)
def test_malicious_field_values_render_literally(
    task: TaskSpec, value: str, tmp_path: Path
) -> None:
    record = {
        "question": value,
        "options": [value, "ok"],
        "meta_data": {"dialog_hist": [{"q": value, "a": value}]},
    }
    plan = plan_for(task, "Q: {question} H: {hist}{options}")
    out = render(plan, record, None, shuffle_options=False)
    assert out == f"Q: {value} H: {value}, {value};\n\n[Options]: {value}||||ok"


@pytest.mark.usefixtures("no_code_execution")
def test_generated_instruction_with_code_is_text(task: TaskSpec, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"Reply \"\"\"); __import__('os').system('touch {marker}') # then {{question}}"
    out = r(task, text, RECORD)
    assert out == f"Reply \"\"\"); __import__('os').system('touch {marker}') # then What is it?"
    assert not marker.exists()


@settings(max_examples=300, deadline=None)
@given(value=st.text(), before=st.text(alphabet=st.characters(blacklist_characters="{}\\")))
def test_any_text_value_is_inserted_verbatim(value: str, before: str) -> None:
    task = (
        check_text('task t { slot q: text  instruction i0 = "{q}" }').raise_for_errors().tasks["t"]
    )
    plan = compile_template(before + "{q}" + before, task)
    assert render(plan, {"q": value}, None, shuffle_options=False) == before + value + before


def test_module_doctests() -> None:
    for module in (render_mod, eachfmt):
        result = doctest.testmod(module)
        assert result.failed == 0


def _shape(pieces: tuple[ir.Piece, ...]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for p in pieces:
        if isinstance(p, ir.TextPiece):
            out.append(("text", p.text))
        elif isinstance(p, ir.SlotRef):
            out.append(("slot", p.name))
        else:
            out.append(("bad", p.kind))
    return out


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('{}ab_1 \n\\"é')) | st.characters(), max_size=30))
def test_fast_text_split_agrees_with_split_template(text: str) -> None:
    """The regex fast path of split_text gives split_template's pieces for every input."""
    reference = split_template(ir.StringLit(text, False, quote(text), BUILTIN))
    assert _shape(split_text(text)) == _shape(reference)


# ------------------------------------------------ label, choice, enumerate, targets

TYPED = r"""
type lettered = choices enumerate "(A) "
task t {
  slot question: text
  slot options: lettered sep "||||"
  slot answer: choice of options from target
  slot answers: choice[] sep "," of options from meta.all
  slot nli: label names "entailment", "neutral", "contradiction" from meta.label
  slot nlis: label[] names "no", "yes" sep "+" from meta.labels
  slot fixed: choices enumerate "a) " shuffle false from listing
  slot spare: choices? enumerate "1. " from meta.spare default "x||||y||||z"
  slot spare_pick: choice of spare from meta.pick
  instruction i0 = "{question}" pin "{options}" -> "{answer}"
  instruction i1 = "{question} {fixed}" -> "({nli}) {nlis}"
  instruction i2 = "{question}" pin "{options}"
}
"""


@pytest.fixture(scope="module")
def typed() -> TaskSpec:
    return check_text(TYPED).raise_for_errors().tasks["t"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "entailment"), (2, "contradiction"), ("1", "neutral"), (" 2 ", "contradiction")],
)
def test_label_names_select_by_number(typed: TaskSpec, value: object, expected: str) -> None:
    assert r(typed, "{nli}", {"meta": {"label": value}}) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (3, "label 3 is out of range: 3 names (0..2)"),
        (-1, "label -1 is out of range: 3 names (0..2)"),
        ("two", "expected a label number (an integer), got 'two'"),
        (1.0, "expected a label number (an integer), got number"),
        (True, "expected a label number (an integer), got boolean"),
        ([0], "expected a label number (an integer), got list"),
    ],
)
def test_bad_label_values_name_the_field(typed: TaskSpec, value: object, reason: str) -> None:
    with pytest.raises(RenderError) as info:
        r(typed, "{nli}", {"meta": {"label": value}})
    assert (info.value.field, info.value.reason) == ("meta.label", reason)


def test_label_lists(typed: TaskSpec) -> None:
    assert r(typed, "{nlis}", {"meta": {"labels": [1, 0, "1"]}}) == "yes+no+yes"
    with pytest.raises(RenderError) as info:
        r(typed, "{nlis}", {"meta": {"labels": [1, 5]}})
    assert info.value.field == "meta.labels[1]"


@pytest.mark.parametrize(
    ("pattern", "labels"),
    [
        ("(A) ", ["(A) ", "(B) ", "(C) "]),
        ("a. ", ["a. ", "b. ", "c. "]),
        ("1) ", ["1) ", "2) ", "3) "]),
        ("i. ", ["i. ", "ii. ", "iii. "]),
        ("Option 1: ", ["Option 1: ", "Option 2: ", "Option 3: "]),
        ("[A]", ["[A]", "[B]", "[C]"]),
    ],
)
def test_enumerate_patterns(pattern: str, labels: list[str]) -> None:
    src = (
        f'task t {{ slot o: choices prefix "" sep "|" enumerate {quote(pattern)}'
        ' instruction i0 = "{o}" }'
    )
    task = check_text(src).raise_for_errors().tasks["t"]
    out = r(task, "{o}", {"o": ["x", "y", "z"]})
    assert out == "|".join(f"{label}{text}" for label, text in zip(labels, "xyz", strict=True))


def test_enumeration_counters_go_on() -> None:
    from instraug_dsl.lang.enumeration import Pattern, counter_text

    assert [counter_text("A", k) for k in (0, 25, 26, 27, 701, 702)] == [
        "A",
        "Z",
        "AA",
        "AB",
        "ZZ",
        "AAA",
    ]
    assert [counter_text("i", k) for k in (3, 8, 13, 48, 1998)] == [
        "iv",
        "ix",
        "xiv",
        "xlix",
        "mcmxcix",
    ]
    assert Pattern.parse("Answer A: ") == Pattern("Answer ", "A", ": ")
    assert Pattern.parse("Options") is None


def test_choice_renders_the_label_of_the_answer(typed: TaskSpec) -> None:
    record = {"question": "Q?", "options": ["red", "green", "blue"], "target": "blue"}
    plan = compile_template(typed.instructions[0].pieces, typed, typed.instructions[0].target)
    prompt, target = render_row(plan, record, None, shuffle_options=False)
    assert prompt == "Q?\n\n[Options]: (A) red||||(B) green||||(C) blue"
    assert target == "C"
    assert render_target(plan, record) == "C"
    with pytest.raises(RenderError) as info:
        render_row(plan, {**record, "target": "pink"}, None, shuffle_options=False)
    assert (info.value.field, info.value.reason) == (
        "target",
        "'pink' is not one of the options of `options`",
    )
    many = {**record, "meta": {"all": ["green", "red"]}}
    assert r(typed, "{answers}", many) == "B,A"


def test_shuffle_false_keeps_the_order(typed: TaskSpec) -> None:
    record = {"question": "Q", "listing": [f"o{i}" for i in range(6)], "target": "o1"}
    plan = compile_template("{fixed}", typed)
    for seed in range(10):
        out = render(plan, record, seed, shuffle_options=True)
        assert out == "\n\n[Options]: " + "||||".join(
            f"{chr(ord('a') + i)}) o{i}" for i in range(6)
        )
    # a field that another choices slot shuffles is shown in the shared (shuffled) order
    src = (
        "task t { slot a: choices  slot b: choices shuffle false from a"
        '  instruction i0 = "{a}#{b}" }'
    )
    shared = check_text(src).raise_for_errors().tasks["t"]
    out = r(shared, "{a}#{b}", {"a": [str(i) for i in range(8)]}, seed=3)
    assert out.split("#")[0] == out.split("#")[1]


def test_choice_of_shuffled_default_options_agrees(typed: TaskSpec) -> None:
    plan = compile_template("{spare}", typed, "{spare_pick}")
    for seed in range(20):
        prompt, target = render_row(plan, {"meta": {"pick": "y"}}, seed, shuffle_options=True)
        shown = prompt.removeprefix("\n\n[Options]: ").split("||||")
        assert shown[int(target) - 1] == f"{target}. y"


def _rendered_options(prompt: str) -> dict[str, str]:
    """``(B) text`` items of the options block, by their bare counter."""
    out = {}
    for item in prompt.split("\n\n[Options]: ", 1)[1].split("||||"):
        label, _, text = item[1:].partition(") ")
        out[label] = text
    return out


_option_texts = st.text(alphabet=st.characters(blacklist_characters="|"), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    options=st.lists(_option_texts, min_size=1, max_size=30),
    pick=st.integers(min_value=0),
    seed=st.integers(min_value=0, max_value=2**32),
    shuffle=st.booleans(),
)
def test_choice_label_points_at_the_answer_under_any_shuffle(
    typed: TaskSpec, options: list[str], pick: int, seed: int, shuffle: bool
) -> None:
    """For any options and any answer among them, after any shuffle the label rendered for
    the answer is the counter of an option showing exactly the answer's text."""
    answer = options[pick % len(options)]
    record = {
        "question": "Q",
        "options": options,
        "listing": ["l"],
        "target": answer,
        "meta": {"label": 0, "labels": []},
    }
    plans = [compile_template(i.pieces, typed, i.target) for i in typed.instructions]
    prompt, label = render_row(plans[0], record, seed, shuffle_options=shuffle)
    shown = _rendered_options(prompt)
    assert shown[label] == answer
    assert sorted(shown.values()) == sorted(options)
    # the same through the materializer's renderer, whichever instruction is drawn
    renderer = TaskRenderer(plans)
    prompt, label = renderer.render_row(
        plans[0], record, random.Random(seed), shuffle_options=shuffle
    )
    assert _rendered_options(prompt)[label] == answer
    assert record["options"] == options  # never shuffled in place


def test_per_instruction_targets(typed: TaskSpec) -> None:
    plans = [compile_template(i.pieces, typed, i.target) for i in typed.instructions]
    record = {
        "question": "Q",
        "options": ["x", "y"],
        "listing": ["u", "v"],
        "target": "y",
        "meta": {"label": 2, "labels": [1]},
    }
    renderer = TaskRenderer(plans)
    rows = [renderer.render_row(p, record, None, shuffle_options=False) for p in plans]
    assert [target for _, target in rows] == ["B", "(contradiction) yes", "y"]
    assert rows[1][0] == "Q \n\n[Options]: a) u||||b) v"
    assert plans[1].target_text == "({nli}) {nlis}"
    assert plans[2].target_parts is None
    # a target slot is validated for every record, whichever instruction is drawn
    with pytest.raises(RenderError, match="meta.label"):
        renderer.render_row(plans[2], {**record, "meta": {}}, None, shuffle_options=False)


def test_rewrites_keep_their_roots_target(typed: TaskSpec) -> None:
    from instraug_dsl.contract.run import InstructionRow
    from instraug_dsl.dataset.filters import build_pools
    from instraug_dsl.lang.model import Catalog

    catalog = Catalog({"t": typed}, {}, {}, {}, {}, {})
    rows = [
        InstructionRow("g-1", "t", "generated", "Please answer: {question}{options}", root="t/i0"),
        InstructionRow("g-2", "t", "generated", "Now say it: {question} {fixed}", root="t/i1"),
        InstructionRow("g-3", "t", "generated", "Reply to {question}{options}", root="t/i2"),
    ]
    pools, _ = build_pools(catalog, rows, 1.0)
    kept = {c.id: c.plan.target_text for c in pools["t"].kept}
    assert kept == {"g-1": "{answer}", "g-2": "({nli}) {nlis}", "g-3": None}


def test_target_template_values_are_never_interpreted(typed: TaskSpec) -> None:
    src = 'task t { slot q: text  slot a: text from meta.a  instruction i0 = "{q}" -> "A: {a}." }'
    task = check_text(src).raise_for_errors().tasks["t"]
    ins = task.instructions[0]
    plan = compile_template(ins.pieces, task, ins.target)
    for value in MALICIOUS:
        record = {"q": "x", "meta": {"a": value}}
        assert render_row(plan, record, None, shuffle_options=False) == ("x", f"A: {value}.")


def test_targets_and_new_types_survive_the_catalog_snapshot(tmp_path: Path) -> None:
    """compiled/catalog.json keeps targets, label names, choice and enumerate options and
    the carried fields, so a run directory renders the same rows without the sources."""
    from instraug_dsl.contract.codec import encode
    from instraug_dsl.contract.compiled import CATALOG, CatalogSnapshot, read_snapshot
    from instraug_dsl.fsio import write_json

    src = TYPED + 'sampling s { instances "x.jsonl" carry image_path, meta["a b"].c, x[0] }'
    catalog = check_text(src).raise_for_errors()
    write_json(tmp_path / CATALOG, encode(CatalogSnapshot.of(catalog, {})), indent=None)
    again = read_snapshot(tmp_path).catalog()
    assert again.tasks == catalog.tasks
    assert again.samplings["s"].carry == (("image_path",), ("meta", "a b", "c"), ("x", 0))
    task = again.tasks["t"]
    assert task.instructions[0].target_text == "{answer}"
    assert task.slot("nli").names == ("entailment", "neutral", "contradiction")
    assert (task.slot("fixed").shuffle, task.slot("fixed").enumeration) == (False, "a) ")
    assert task.slot("answer").of == "options" and task.slot("options").enumeration == "(A) "
