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
