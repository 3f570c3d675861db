"""The JSONL importer (`iatc import jsonl`) and the MultiInstruct library it made.

Golden cases live in tests/golden/importer/<case>/: ``input.jsonl``, an
optional ``overrides.json`` and the ``expected/`` files.  Regenerate them
with ``pytest tests/test_importer.py --update-golden`` and review the diff.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from instraug_dsl import check, check_text, load_catalog
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.errors import DataError, IatCheckError
from instraug_dsl.importers.jsonl import import_jsonl, parse_records, render_tasks
from instraug_dsl.importers.records import Part, parse_template
from instraug_dsl.importers.rules import BUILTIN_SLOTS, category_for, load_overrides

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "importer"
LIBRARY = ROOT / "templates" / "multiinstruct"
# The 378 upstream instructions the library is imported from (examples/multiinstruct/README.md).
DATA = ROOT / "examples" / "multiinstruct" / "instructions.jsonl"


def _task_file(template_lines: list[str]) -> str:
    """Render records given as JSON lines; return the last task's file text."""
    files = render_tasks(parse_records(template_lines, "t.jsonl"), source_name="t.jsonl")
    return files[next(n for n in files if n != "_types.iat")]


def _one(template: str, **extra: object) -> str:
    return _task_file([json.dumps({"task": "t", "template": template, **extra})])


def _lines(text: str, prefix: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith(prefix)]


# ----------------------------------------------------------------- golden


@pytest.mark.parametrize("case", sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()))
def test_golden(case: str, tmp_path: Path, update_golden: bool) -> None:
    """GIVEN a fixture JSONL WHEN imported THEN the files equal the golden ones byte for byte."""
    src = GOLDEN / case
    overrides = src / "overrides.json"
    result = import_jsonl(
        src / "input.jsonl",
        tmp_path,
        overrides=overrides if overrides.is_file() else None,
        default_overrides=False,
    )
    expected = src / "expected"
    if update_golden:
        shutil.rmtree(expected, ignore_errors=True)
        shutil.copytree(tmp_path, expected)
    got = {p.name: p.read_text(encoding="utf-8") for p in sorted(tmp_path.iterdir())}
    want = {p.name: p.read_text(encoding="utf-8") for p in sorted(expected.iterdir())}
    assert got == want
    assert sorted(result.written) == sorted(want)
    assert check([tmp_path]).ok


def test_import_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    """A second run writes nothing and reports every file unchanged."""
    src = GOLDEN / "generic" / "input.jsonl"
    first = import_jsonl(src, tmp_path)
    second = import_jsonl(src, tmp_path)
    assert second.written == [] and sorted(second.unchanged) == sorted(first.written)


# ------------------------------------------------------- type inference


@pytest.mark.parametrize(
    ("name", "slot_line"),
    [
        ("question", "slot question: text"),
        ("options", "slot options: choices"),
        ("options_list", 'slot options_list: choices prefix "" from options'),
        ("options_token", 'slot options_token: const "\\n\\n[Options]:"'),
        ("image_token", 'slot image_token: const "image"'),
        ("region_token", 'slot region_token: const "Regions: "'),
        ("region", "slot region: regions"),
        ("region_0", "slot region_0: bbox from region[0]"),
        ("region_1", "slot region_1: bbox from region[1]"),
        ("given_region", "slot given_region: regions from meta_data.object_regions.given_region"),
        ("relation", "slot relation: text from meta_data.relation"),
        ("method", "slot method: text from meta_data.method"),
        (
            "dial_history",
            'slot dial_history: text[] sep " " from meta_data.dialog_hist each "{q}, {a};"',
        ),
        (
            "dial_history_last",
            'slot dial_history_last: text[] from meta_data.dialog_hist[-1] each "{q}, {a};"',
        ),
        (
            "region_info",
            'slot region_info: text[] sep " " from meta_data.object_regions'
            ' each "{key} is in {value[0]}."',
        ),
    ],
)
def test_builtin_slot_inference(name: str, slot_line: str) -> None:
    """Each MultiInstruct placeholder name gets its documented type and source."""
    assert name in BUILTIN_SLOTS
    assert _lines(_one(f"Look: {{{name}}} now."), "slot ") == [slot_line]


def test_unknown_placeholder_is_text_with_a_check_comment() -> None:
    """An unknown name becomes text from the same-named field, flagged for a human."""
    text = _one("Rate {widget}.")
    assert _lines(text, "slot ") == [
        "slot widget: text  # check: unknown placeholder;"
        " assumed to be the text of record field `widget`"
    ]
    assert check_text(text).ok


def test_regions_alias_is_imported_once() -> None:
    """Tasks using `regions` import `_types.iat`, which declares the alias once."""
    files = render_tasks(
        parse_records(
            [
                json.dumps({"task": "a", "template": "{region}"}),
                json.dumps({"task": "b", "template": "x"}),
            ],
            "t.jsonl",
        )
    )
    assert sorted(files) == ["_types.iat", "a.iat", "b.iat"]
    assert 'import "_types.iat"' in files["a.iat"] and 'import "' not in files["b.iat"]
    assert 'type regions = bbox[] sep "||||"' in files["_types.iat"]


@pytest.mark.parametrize(
    ("task", "category"),
    [
        ("VQA_color", "VQA"),
        ("open-domain_VQA", "VQA"),
        ("text_vqa", "VQA"),
        ("ocr", "OCR"),
        ("wikihow_next_step", "temporal ordering"),
        ("select_overlap_most_region", "region understanding"),
        ("VG_selection", "grounded matching"),
        ("GC", "grounded generation"),
        ("medic_informative", "disaster classification"),
        ("my_task", None),
    ],
)
def test_category_table(task: str, category: str | None) -> None:
    """Categories follow the task-name table; unknown names get none."""
    assert category_for(task) == category


def test_record_category_wins_over_the_table() -> None:
    text = _one("x", category="mine")
    assert 'category "mine"' in text


# -------------------------------------------------------- pins, purity


@pytest.mark.parametrize(
    ("template", "instruction"),
    [
        ("Pick.{options}", 'instruction i0 = "Pick." pin "{options}"'),
        ("Pick. {options}", 'instruction i0 = "Pick." pin " {options}"'),
        ("Pick.{options}\n        ", 'instruction i0 = "Pick." pin "{options}\\n        "'),
        ("Pick {options}. Then say why.", 'instruction i0 = "Pick {options}. Then say why."'),
        ("{options} first", 'instruction i0 = "{options} first"'),
        (
            "Q{options_token} {options_list}",
            'instruction i0 = "Q{options_token}" pin " {options_list}"',
        ),
        ("Ends with {question}", 'instruction i0 = "Ends with {question}"'),
        ("{options}", 'instruction i0 = pin "{options}"'),
    ],
)
def test_trailing_choices_are_pinned(template: str, instruction: str) -> None:
    """Only a choices slot at the very end (whitespace aside) becomes a pin."""
    text = _one(template)
    assert _lines(text, "instruction") == [instruction]
    assert check_text(text).ok


def test_augment_false_only_when_every_instruction_is_pure() -> None:
    pure = _task_file([json.dumps({"task": "t", "template": "{question}{options}"})] * 2)
    mixed = _task_file(
        [json.dumps({"task": "t", "template": t}) for t in ("{question}", "Say {question}")]
    )
    assert "augment false  # every instruction is only placeholders" in pure
    assert "augment" not in mixed


def test_split_test_is_marked_held_out() -> None:
    assert "split test  # held out for evaluation" in _one("x", split="test")


# --------------------------------------------------- characters, braces


def test_literal_braces_are_escaped_and_never_slots() -> None:
    """`{{x}}` in a template is literal text: written `\\{x\\}`, not a slot."""
    text = _one("Use {{x}} and {y}.")
    assert 'instruction i0 = "Use \\{x\\} and {y}."' in text
    catalog = check_text(text).raise_for_errors()
    spec = catalog.tasks["t"]
    assert [s.name for s in spec.slots] == ["y"]
    assert spec.instructions[0].text == "Use {x} and {y}."


@pytest.mark.parametrize(
    "template",
    [
        'quote " and backslash \\ ok',
        "tab\there",
        "two  spaces  ",
        "line\nbreak\r\n",
        "café ✓ \u2028 sep",
        "ctrl \x01 char",
        "trailing {x}   \n\n",
    ],
)
def test_exact_characters_survive(template: str) -> None:
    """Whatever the template holds comes back from the checked catalog unchanged."""
    spec = check_text(_one(template)).raise_for_errors().tasks["t"]
    assert spec.instructions[0].text == template


@pytest.mark.parametrize(
    ("template", "parts"),
    [
        ("a {b} c", (Part(False, "a "), Part(True, "b"), Part(False, " c"))),
        ("{{}}", (Part(False, "{}"),)),
        ("{a}{b}", (Part(True, "a"), Part(True, "b"))),
    ],
)
def test_parse_template(template: str, parts: tuple[Part, ...]) -> None:
    assert parse_template(template) == parts


# ------------------------------------------------------------ bad input


def _error(lines: list[str]) -> str:
    with pytest.raises(DataError) as info:
        parse_records(lines, "in.jsonl")
    return str(info.value)


def test_invalid_json_names_the_line() -> None:
    msg = _error(['{"task": "t", "template": "x"}', "", "{oops"])
    assert msg.startswith("in.jsonl:3: invalid JSON: Expecting property name")


def test_missing_template_names_line_and_field() -> None:
    assert _error(['{"task": "t", "template": "x"}', '{"task": "t"}']) == (
        "in.jsonl:2: record has no `template` field"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"task": "t", "template": "a {b c}"}',
            "in.jsonl:1: field `template`: `{b c}` at column 3 is not a placeholder:"
            " names are letters, digits and `_`; write literal braces as `{{` and `}}`",
        ),
        (
            '{"task": "t", "template": "a {0}"}',
            "in.jsonl:1: field `template`: `{0}` at column 3 is not a placeholder",
        ),
        (
            '{"task": "t", "template": "a } b"}',
            "in.jsonl:1: field `template`: stray `}` at column 3",
        ),
        (
            '{"task": "t", "template": "a { b"}',
            "in.jsonl:1: field `template`: unclosed `{` at column 3",
        ),
        ('{"template": "x"}', "in.jsonl:1: record has no `task` field"),
        ('{"task": "t", "template": 3}', "in.jsonl:1: field `template` must be a string, got 3"),
        ('{"task": "a b", "template": "x"}', "in.jsonl:1: field `task`: `a b` is not a task name"),
        (
            '{"task": "t", "template": "x", "split": "dev"}',
            'in.jsonl:1: field `split` must be `train` or `test`, got "dev"',
        ),
        (
            '{"task": "t", "template": "x", "index": -1}',
            "in.jsonl:1: field `index` must be a non-negative integer",
        ),
        ("[1, 2]", "in.jsonl:1: expected a JSON object, got list"),
    ],
)
def test_bad_records(line: str, message: str) -> None:
    assert _error([line]).startswith(message)


def test_every_bad_line_is_reported() -> None:
    msg = _error(["{", '{"task": "t"}', '{"task": "t", "template": "ok"}', "nope"])
    assert [ln.split(":")[1] for ln in msg.splitlines()] == ["1", "2", "4"]


def test_empty_input() -> None:
    assert _error(["", "  "]) == "in.jsonl: no records"


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [
                {"task": "t", "template": "a", "split": "train"},
                {"task": "t", "template": "b", "split": "test"},
            ],
            "t.jsonl:2: field `split`: records of task `t` disagree",
        ),
        (
            [
                {"task": "t", "template": "a", "index": 0},
                {"task": "t", "template": "b", "index": 0},
            ],
            "t.jsonl:2: task `t` has instruction index 0 twice (also line 1)",
        ),
        ([{"task": "_types", "template": "a"}], "t.jsonl:1: task name `_types` is reserved"),
    ],
)
def test_inconsistent_tasks(records: list[dict[str, object]], message: str) -> None:
    with pytest.raises(DataError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        render_tasks(
            parse_records([json.dumps(r) for r in records], "t.jsonl"), source_name="t.jsonl"
        )


# ------------------------------------------------------------ overrides


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tasks": {"t": {"colour": "x"}}}, "tasks.t: unknown key `colour`"),
        (
            {"tasks": {"t": {"slots": {"x": {"type": "no such"}}}}},
            "tasks.t.slots.x.type: `no such` is not a type name",
        ),
        (
            {"tasks": {"t": {"slots": {"x": {"type": "text", "from": "a..b"}}}}},
            "tasks.t.slots.x.from: `a..b` is not a field path",
        ),
        (
            {"tasks": {"t": {"slots": {"x": {"type": "const"}}}}},
            "tasks.t.slots.x: `value` goes with type `const`",
        ),
        ({"tasks": {"t": {"augment": "no"}}}, 'tasks.t.augment: expected a bool, got "no"'),
        ({"tasks": {"t": {"where": "a b c"}}}, "tasks.t.where: `a b c` is not a condition"),
        ({"slots": {"x": {"from": "y"}}}, "slots.x: a slot rule needs `type`"),
        ({"extra": 1}, "unknown key `extra`"),
    ],
)
def test_bad_overrides(tmp_path: Path, overrides: dict[str, object], message: str) -> None:
    path = tmp_path / "o.json"
    path.write_text(json.dumps(overrides))
    with pytest.raises(DataError) as info:
        load_overrides(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_overrides_must_name_real_tasks_and_slots(tmp_path: Path) -> None:
    records = parse_records(['{"task": "t", "template": "{x}"}'], "t.jsonl")
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"tasks": {"u": {}}}))
    with pytest.raises(DataError, match="tasks.u: no such task in t.jsonl"):
        render_tasks(records, load_overrides(path), "t.jsonl")
    path.write_text(json.dumps({"tasks": {"t": {"slots": {"y": {"type": "text"}}}}}))
    with pytest.raises(DataError, match=r"tasks.t.slots.y: no instruction of `t` uses `\{y\}`"):
        render_tasks(records, load_overrides(path), "t.jsonl")


def test_output_failing_the_checker_writes_nothing(tmp_path: Path) -> None:
    """An override naming an unknown type is caught by `iatc check` before writing."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"task": "t", "template": "{x}"}\n')
    (tmp_path / "o.json").write_text(json.dumps({"slots": {"x": {"type": "colour"}}}))
    out = tmp_path / "out"
    with pytest.raises(IatCheckError) as info:
        import_jsonl(src, out, overrides=tmp_path / "o.json")
    assert "E022" in str(info.value) and "unknown slot type `colour`" in str(info.value)
    assert not out.exists()


# ------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register_commands()
    return CliRunner()


def test_cli_import_and_check(runner: CliRunner, tmp_path: Path) -> None:
    src = GOLDEN / "generic" / "input.jsonl"
    out = tmp_path / "lib"
    first = runner.invoke(app, ["import", "jsonl", str(src), "-o", str(out)])
    assert first.exit_code == 0, first.output
    assert "5 tasks, 12 instructions (1 tasks / 2 instructions held out)" in first.stdout
    assert (
        runner.invoke(app, ["import", "jsonl", str(src), "-o", str(out), "--check"]).exit_code == 0
    )
    (out / "ask.iat").write_text("# edited\n")
    stale = runner.invoke(app, ["import", "jsonl", str(src), "-o", str(out), "--check"])
    assert stale.exit_code == 1 and "would change" in stale.output
    assert (out / "ask.iat").read_text() == "# edited\n"


def test_cli_bad_input_exits_1_without_traceback(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"task": "t"}\n')
    result = runner.invoke(app, ["import", "jsonl", str(src), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "bad.jsonl:1: record has no `template` field" in result.output
    assert "Traceback" not in result.output


def test_cli_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["import", "jsonl", str(tmp_path / "none.jsonl"), "-o", str(tmp_path)]
    )
    assert result.exit_code == 2 and "no such file" in result.output


# ------------------------------------------------- the MultiInstruct library


def test_library_is_reproduced_by_the_import() -> None:
    """Re-running the import with the committed overrides changes nothing."""
    result = import_jsonl(DATA, LIBRARY, write=False)
    assert result.written == [], f"out of date: {result.written}"
    assert result.stale == []


def test_documented_regeneration_command_finds_nothing_to_change(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`iatc import jsonl ... --check`, run from the repository root as docs/importer.md says."""
    monkeypatch.chdir(ROOT)
    command = "import jsonl examples/multiinstruct/instructions.jsonl -o templates/multiinstruct"
    assert f"iatc {command} --check" in (ROOT / "docs" / "importer.md").read_text("utf-8")
    result = runner.invoke(app, [*command.split(), "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_library_round_trip_and_counts() -> None:
    """All 378 instruction texts equal the JSONL templates, task by task, in order."""
    records = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    catalog = load_catalog([LIBRARY])
    by_task: dict[str, list[str]] = {}
    for r in records:
        by_task.setdefault(r["task"], []).append(r["template"])
    assert list(by_task) and set(catalog.tasks) == set(by_task)
    for name, templates in by_task.items():
        assert [i.text for i in catalog.tasks[name].instructions] == templates, name
    assert sum(len(t) for t in by_task.values()) == 378
    splits = {r["task"]: r["split"] for r in records}
    for name, spec in catalog.tasks.items():
        assert spec.split == splits[name]
    test = [t for t in catalog.tasks.values() if t.split == "test"]
    train = [t for t in catalog.tasks.values() if t.split == "train"]
    assert (len(catalog.tasks), len(test), len(train)) == (75, 12, 63)
    assert sum(len(t.instructions) for t in test) == 60
    assert sum(len(t.instructions) for t in train) == 318
    assert sorted(t.name for t in catalog.tasks.values() if not t.augment) == [
        "VQA",
        "open-domain_VQA",
    ]
    pure_sent = [i for t in train if t.augment for i in t.instructions if i.pure_placeholder]
    assert len(pure_sent) == 11
    assert sum(len(t.instructions) for t in train if t.augment) - len(pure_sent) == 297


def test_library_checks_clean_apart_from_upstream_duplicates() -> None:
    """No errors; the only warnings are the repeated instructions of VQA/open-domain_VQA."""
    result = check([LIBRARY])
    assert result.ok
    assert {(d.code, Path(d.span.path).name) for d in result.diagnostics} <= {
        ("W034", "VQA.iat"),
        ("W034", "open-domain_VQA.iat"),
    }


def test_library_field_sources() -> None:
    """The sources that differ per task (docs/importer.md) are the ones MultiInstruct uses."""
    tasks = load_catalog([LIBRARY]).tasks
    assert tasks["visual_object_region"].slot("region").source == (
        "meta_data",
        "object_regions",
        "subject",
    )
    assert tasks["visual_subject_region"].slot("region").source == (
        "meta_data",
        "object_regions",
        "object",
    )
    for name, negated in (("visual_dialog_has_hist", False), ("visual_dialog_no_hist", True)):
        assert tasks[name].instances_task == "visual_dialog"
        assert tasks[name].condition == (negated, ("meta_data", "dialog_hist"))
    ctx = tasks["wikihow_next_step"].slot("context")
    assert (ctx.is_list, ctx.sep, ctx.default) == (True, "\n", '"nothing"')
    assert tasks["VQA_color"].slot("options").prefix == "\n\n[Options]: "
    assert tasks["if_region_overlap"].slot("given_region").sep == "||||"
