"""The collection importers: `iatc import flan|promptsource|natural-instructions`.

The fixtures in tests/fixtures/collections/ are our own small files in each collection's
format.  For every template the importers can express, the test imports, checks the
output, augments it with the offline model, materializes with raw share 1 and compares
every row's (prompt, target) byte for byte with what the collection's own renderer gives
for the same record: FLAN's ``format_from_feature_dictionary`` (a regex split, cross-checked
with ``str.format`` where the two agree), promptsource's ``Template.apply`` (Jinja, test
code only), and the documented Natural Instructions prompt.  Every template that is not
imported must be in the report with its reason.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from typer.testing import CliRunner

from instraug_dsl import api, check, check_text
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.contract.dataset import MaterializeOptions
from instraug_dsl.errors import DataError, OutputError, UsageError
from instraug_dsl.importers import emit
from instraug_dsl.importers.emit import (
    REPORT_FILE,
    InstructionOut,
    Report,
    SlotOut,
    TaskOut,
    build_files,
    task_name,
)
from instraug_dsl.importers.flan import import_flan, parse_template
from instraug_dsl.importers.jinja_subset import Unsupported, parse_output, tokenize
from instraug_dsl.importers.jsonl import import_jsonl, jinja_warnings, parse_records
from instraug_dsl.importers.natural_instructions import import_natural_instructions
from instraug_dsl.importers.promptsource import (
    PromptTemplate,
    _TaskBuilder,
    import_promptsource,
    translate_template,
)
from instraug_dsl.importers.records import Part

FIXTURES = Path(__file__).parent / "fixtures" / "collections"
FLAN = FIXTURES / "flan" / "templates.py"
FLAN_RECORDS = FIXTURES / "flan" / "instances.jsonl"
PROMPTSOURCE = FIXTURES / "promptsource" / "templates"
PROMPTSOURCE_RECORDS = FIXTURES / "promptsource" / "instances.jsonl"
NI = FIXTURES / "natural_instructions" / "tasks"
COPIES = 24  # copies of each record, so that every original instruction is drawn
PLAN = 'import "@common/metaprompts.iat"\n\ndefault plan p {\n  use direct samples 1\n}\n'


# ----------------------------------------------------------------- helpers


def _report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    return data


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _materialize(tmp: Path, iat_dir: Path, records: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Augment ``iat_dir`` with the offline model, then materialize every record COPIES
    times with raw share 1 (original instructions only); return the rows."""
    plan = tmp / "plan" / "plan.iat"
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(PLAN, encoding="utf-8")
    api.augment([iat_dir, plan], tmp / "run", backend=api.Backend(model="offline/rules"), limit=4)
    instances = tmp / "instances.jsonl"
    with instances.open("w", encoding="utf-8") as out:
        for copy in range(COPIES):
            for record in records:
                row = {**record, "unique_id": f"{record['unique_id']}#{copy}"}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
    result = api.materialize(
        tmp / "run",
        instances,
        tmp / "data",
        options=MaterializeOptions(raw_share=1.0, carry=("task_name",)),
    )
    assert result.manifest.counts.errors == 0
    rows = _records(tmp / "data" / "train.jsonl")
    assert rows and {r["instruction_kind"] for r in rows} == {"original"}
    return rows


def _by_id(records: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(r["unique_id"]): r for r in records}


def _origins(report: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    """task -> (original name, instruction -> source template)."""
    return {t["task"]: (t["original"], t["instructions"]) for t in report["tasks"]}


def _compare(
    rows: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    report: Mapping[str, Any],
    reference: Callable[[str, str, Mapping[str, Any]], tuple[str, str]],
) -> None:
    """Every row equals ``reference(original task, template, record)``, and every imported
    instruction was drawn at least once."""
    origins = _origins(report)
    originals = _by_id(records)
    drawn: set[str] = set()
    for row in rows:
        task, instruction = row["instruction_id"].split("/")
        original, templates = origins[task]
        record = originals[row["unique_id"].split("#")[0]]
        assert record["task_name"] == original
        want = reference(original, templates[instruction], record)
        assert (row["prompt"], row["target"]) == want, row["instruction_id"]
        drawn.add(row["instruction_id"])
    every = {f"{t}/{i}" for t, (_, templates) in origins.items() for i in templates}
    assert drawn == every


# ------------------------------------------------------------- FLAN: reference


_FLAN_FIELD = re.compile(r"({\w*})")


def flan_patterns() -> dict[str, list[tuple[str, str]]]:
    """The fixture's PATTERNS as FLAN sees them: the module run (test code, our own file)
    without its final `raise`."""
    tree = ast.parse(FLAN.read_text(encoding="utf-8"))
    assert isinstance(tree.body[-1], ast.Raise)
    tree.body.pop()
    namespace: dict[str, Any] = {}
    exec(compile(tree, str(FLAN), "exec"), namespace)  # noqa: S102 - our own fixture
    patterns: dict[str, list[tuple[str, str]]] = namespace["PATTERNS"]
    return patterns


def flan_render(template: str, example: Mapping[str, Any], letters: bool = False) -> str:
    """FLAN's rendering: ``format_options`` then ``format_from_feature_dictionary``."""
    features = dict(example)
    if "options" in features:
        if letters:  # FLAN v2 `use_char_options_format` (and `use_char_answer`)
            options = features["options"]
            features["options_"] = "OPTIONS:" + "".join(
                f"\n({chr(ord('A') + k)}) {option}" for k, option in enumerate(options)
            )
            features["answer"] = f"({chr(ord('A') + options.index(features['answer']))})"
        else:
            features["options_"] = "OPTIONS:\n- " + "\n- ".join(features["options"])
    out = []
    for part in [p for p in _FLAN_FIELD.split(template) if p]:
        out.append(str(features[part[1:-1]]) if part[0] == "{" and part[-1] == "}" else part)
    rendered = "".join(out)
    if not re.search(r"[{}]", re.sub(r"{\w+}", "", template)):  # only fields: str.format agrees
        assert rendered == template.format(**features)
    return rendered


def _flan_reference(
    letters: bool = False,
) -> Callable[[str, str, Mapping[str, Any]], tuple[str, str]]:
    patterns = flan_patterns()

    def reference(task: str, template: str, record: Mapping[str, Any]) -> tuple[str, str]:
        inputs, targets = patterns[task][int(template.strip("[]"))]
        return flan_render(inputs, record, letters), flan_render(targets, record, letters)

    return reference


# ------------------------------------------------------------------- FLAN


def test_flan_import_is_checked_and_reported(tmp_path: Path) -> None:
    """Names with `:`/`.` are normalized (mapping in the report); every pair that is not
    imported is listed with its reason; the output passes `iatc check`."""
    result = import_flan(FLAN, tmp_path)
    assert check([tmp_path]).ok
    report = _report(tmp_path)
    assert report["renamed"] == {"glue:mnli": "glue_mnli", "squad.v1": "squad_v1"}
    assert result.renamed == report["renamed"]
    assert {t["task"]: len(t["instructions"]) for t in report["tasks"]} == {
        "broken": 1,
        "echo": 1,
        "glue_mnli": 2,
        "natural_questions": 2,
        "rte": 3,
        "rte_copy": 3,
        "squad_v1": 3,
    }
    skipped = {(s["task"], s["template"]): s["reason"] for s in report["skipped"]}
    assert skipped == {
        ("broken", "[0]"): "`{0}` is read by FLAN as the field `0`, which cannot be a slot name",
        ("broken", "[1]"): '`{"k": 1}` is read by FLAN as the field `"k": 1`, which cannot be '
        "a slot name",
        ("broken", "[2]"): "not a literal (input, target) pair of strings (not evaluated)",
        ("broken", "[4]"): "the input template is empty",
        ("computed", ""): "its templates are not a list literal (not evaluated)",
        ("**EXTRA_PATTERNS", ""): "`**` in PATTERNS is not a literal (not evaluated)",
        ("<PATTERNS>", ""): "statement at line 61 may change PATTERNS and is not evaluated; "
        "tasks it adds or changes are not imported",
    }
    assert [(n["task"], n["template"]) for n in report["notes"]] == [("squad.v1", "[2]")]
    # every pair FLAN itself would use is imported or reported, never both, never neither
    imported = {
        (t["original"], origin) for t in report["tasks"] for origin in t["instructions"].values()
    }
    for task, pairs in flan_patterns().items():
        for index in range(len(pairs)):
            key = (task, f"[{index}]")
            assert (key in imported) != (key in skipped), key
    text = (tmp_path / "glue_mnli.iat").read_text(encoding="utf-8")
    assert 'source "glue:mnli"' in text and 'instances "glue:mnli"' in text
    assert (
        'slot options_: choices sep "\\n- " prefix "OPTIONS:\\n- " shuffle false from options'
        in text
    )


def test_flan_inverted_template_gets_its_own_target(tmp_path: Path) -> None:
    import_flan(FLAN, tmp_path)
    lines = (tmp_path / "rte.iat").read_text(encoding="utf-8").splitlines()
    assert lines[-4:-1] == [
        '  instruction i0 = "{premise}\\n\\nDoes it follow that \\"{hypothesis}\\"?" pin '
        '"\\n\\n{options_}" -> "{answer}"',
        '  instruction i1 = "Premise: {premise}\\nHypothesis: {hypothesis}\\n{options_}\\nAnswer:"'
        ' -> "{answer}"',
        '  instruction i2 = "Write a premise and a hypothesis that it entails." -> '
        '"Premise: {premise}\\n\\nHypothesis: {hypothesis}"',
    ]


def test_flan_file_is_never_executed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The fixture ends with `raise`; exec/eval are unavailable while importing."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the importer ran code")

    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(builtins, "eval", refuse)
    before = set(sys.modules)
    import_flan(FLAN, tmp_path)
    assert not {m for m in set(sys.modules) - before if "templates" in m}


def test_flan_rows_equal_flans_own_rendering(tmp_path: Path) -> None:
    import_flan(FLAN, tmp_path / "iat")
    records = _records(FLAN_RECORDS)
    rows = _materialize(tmp_path, tmp_path / "iat", records)
    _compare(rows, records, _report(tmp_path / "iat"), _flan_reference())
    # the literal-brace case, spelled out: FLAN keeps `{{` (str.format would not)
    squad = [r for r in rows if r["instruction_id"] == "squad_v1/i2"]
    assert squad and squad[0]["target"] == '{{"answer": "ten"}}'


def test_flan_letters_option_style(tmp_path: Path) -> None:
    """`--options letters`: FLAN v2's `OPTIONS:\\n(A) ...` block and `(A)` answers."""
    import_flan(FLAN, tmp_path / "iat", options="letters")
    text = (tmp_path / "iat" / "rte.iat").read_text(encoding="utf-8")
    assert "slot answer: choice of options_ from answer" in text
    records = [r for r in _records(FLAN_RECORDS) if r["task_name"] in ("rte", "glue:mnli")]
    rows = _materialize(tmp_path, tmp_path / "iat", records)
    report = _report(tmp_path / "iat")
    report["tasks"] = [t for t in report["tasks"] if t["original"] in ("rte", "glue:mnli")]
    _compare(rows, records, report, _flan_reference(letters=True))
    assert {r["target"] for r in rows if r["instruction_id"] == "rte/i0"} == {"(A)", "(B)"}


def test_flan_names_that_normalize_alike_are_kept_apart(tmp_path: Path) -> None:
    src = tmp_path / "templates.py"
    src.write_text(
        'PATTERNS = {"a:b": [("One {x}", "{y}")], "a.b": [("Two {x}", "{y}")],'
        ' "9lives": [("Three {x}", "{y}")]}\n',
        encoding="utf-8",
    )
    result = import_flan(src, tmp_path / "out")
    assert result.renamed == {"a:b": "a_b", "a.b": "a_b_2", "9lives": "_9lives"}
    assert check([tmp_path / "out"]).ok


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("PATTERNS = {\n", "templates.py:1: not Python"),
        ("OTHER = {}\n", "no module-level `PATTERNS = {...}`"),
        ("PATTERNS = dict(a=[])\n", "templates.py:1: `PATTERNS` is not a dict literal"),
    ],
)
def test_flan_unreadable_files(tmp_path: Path, source: str, message: str) -> None:
    src = tmp_path / "templates.py"
    src.write_text(source, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)):
        import_flan(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("template", "parts"),
    [
        ("Q: {q}", (Part(False, "Q: "), Part(True, "q"))),
        ("{{x}}", (Part(False, "{"), Part(True, "x"), Part(False, "}"))),
        ('JSON {"a": 1} {b}', (Part(False, 'JSON {"a": 1} '), Part(True, "b"))),
        ("a {b c} d", (Part(False, "a {b c} d"),)),
    ],
)
def test_flan_template_reading(template: str, parts: tuple[Part, ...]) -> None:
    """Placeholders are what FLAN's regex split reads as features, nothing else."""
    assert parse_template(template) == parts


# ------------------------------------------------------- promptsource: reference


_PIPE = "3ed2dface8203c4c9dfb1a5dc58e41e0"  # promptsource's pipe protector


def _yaml_loader() -> type:
    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        return dict(loader.construct_mapping(node, deep=True))

    Loader.add_constructor("!Template", mapping)
    Loader.add_constructor("!TemplateMetadata", mapping)
    return Loader


def promptsource_templates(folder: Path = PROMPTSOURCE) -> dict[str, dict[str, dict[str, Any]]]:
    """original dataset name -> template name -> template, for every templates.yaml below
    ``folder`` (test code: a YAML loader of its own)."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(folder.rglob("templates.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())
        except yaml.YAMLError:
            continue
        name = f"{data['dataset']}/{data['subset']}" if data.get("subset") else data["dataset"]
        found[name] = {t["name"]: t for t in data["templates"].values()}
    return found


def promptsource_apply(template: Mapping[str, Any], example: Mapping[str, Any]) -> list[str]:
    """promptsource's `Template.apply(example)` (truncate=True), transcribed."""
    env = jinja2.Environment(loader=jinja2.BaseLoader())
    jinja = template["jinja"].replace("}}", " | string | truncate(2048) }}")
    protected = {
        k: v.replace("|||", _PIPE) if isinstance(v, str) else v for k, v in example.items()
    }
    choices = None
    if template.get("answer_choices") is not None:
        rendered = env.from_string(template["answer_choices"]).render(**protected)
        choices = [c.strip().replace(_PIPE, "|||") for c in rendered.split("|||")]
    protected["answer_choices"] = choices
    rendered = env.from_string(jinja).render(**protected)
    return [part.replace(_PIPE, "|||").strip() for part in rendered.split("|||")]


def _promptsource_reference(task: str, template: str, record: Mapping[str, Any]) -> tuple[str, str]:
    prompt, target = promptsource_apply(promptsource_templates()[task][template], record)
    return prompt, target


# ------------------------------------------------------------- promptsource


def test_promptsource_import_is_checked_and_reported(tmp_path: Path) -> None:
    import_promptsource(PROMPTSOURCE, tmp_path)
    assert check([tmp_path]).ok
    report = _report(tmp_path)
    assert report["renamed"] == {"glue/mnli": "glue_mnli", "trivia.qa/rc": "trivia_qa_rc"}
    skipped = {(s["task"], s["template"]): s["reason"] for s in report["skipped"]}
    assert skipped == {
        ("ag_news", "choices from the example"): "its answer_choices depend on the example "
        "(`{{ first_topic }} ||| {{ second_topic }}`)",
        ("ag_news", "no target"): "no `|||`: the template has no target",
        ("ag_news", "loop"): "`{% for %}`: Jinja statements are not translated",
        ("ag_news", "slice"): "`{{ text[:100] }}` is an expression, not a variable",
        ("broken", ""): "not valid promptsource YAML: found unexpected end of stream",
        ("glue/mnli", "only labelled"): "`{% if %}`: Jinja statements are not translated",
        ("glue/mnli", "lower case"): "the filter `lower` is not supported by the renderer",
        ("glue/mnli", "right trim"): "`-}}`: promptsource's own rendering (Template.apply) "
        "fails on it",
        ("trivia.qa/rc", "a dict method"): "`.items` is a dict method for Jinja, not the "
        "field `items`",
        ("unsafe", ""): "not valid promptsource YAML: could not determine a constructor for "
        "the tag 'tag:yaml.org,2002:python/object/apply:os.system'",
    }
    # every template of the fixtures is either imported or reported
    imported = {
        (t["original"], origin) for t in report["tasks"] for origin in t["instructions"].values()
    }
    for dataset, templates in promptsource_templates().items():
        for name in templates:
            assert ((dataset, name) in imported) != ((dataset, name) in skipped), (dataset, name)
    text = (tmp_path / "glue_mnli.iat").read_text(encoding="utf-8")
    assert 'slot answer_choices: label names "Yes", "Maybe", "No" from label' in text
    assert 'slot answer_choices_list: const "Yes, Maybe, No"' in text
    assert 'source "glue/mnli"' in text and 'instances "glue/mnli"' in text


def test_promptsource_rows_equal_promptsources_own_rendering(tmp_path: Path) -> None:
    import_promptsource(PROMPTSOURCE, tmp_path / "iat")
    records = _records(PROMPTSOURCE_RECORDS)
    rows = _materialize(tmp_path, tmp_path / "iat", records)
    _compare(rows, records, _report(tmp_path / "iat"), _promptsource_reference)


def test_promptsource_never_renders_jinja(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the importer ran Jinja")

    monkeypatch.setattr(jinja2.Environment, "from_string", refuse)
    monkeypatch.setattr(jinja2.Environment, "parse", refuse)
    monkeypatch.setattr(jinja2.Template, "render", refuse)
    result = import_promptsource(PROMPTSOURCE, tmp_path)
    assert result.instructions == 9


def test_promptsource_single_file(tmp_path: Path) -> None:
    result = import_promptsource(PROMPTSOURCE / "ag_news" / "templates.yaml", tmp_path)
    assert [t.name for t in result.tasks] == ["ag_news"]


def test_promptsource_names_come_from_the_yaml_then_the_folders(tmp_path: Path) -> None:
    """`dataset:`/`subset:` name the task (a user's dataset `Zaid/coqa_expanded` has no
    subset); without them the folders do."""
    body = "templates:\n  a: !Template\n    jinja: '{{x}} ||| {{y}}'\n    name: t\n"
    for folder, head in (
        ("Zaid/coqa_expanded", "dataset: Zaid/coqa_expanded\n"),
        ("plain/sub", ""),
    ):
        (tmp_path / "in" / folder).mkdir(parents=True)
        (tmp_path / "in" / folder / "templates.yaml").write_text(head + body, encoding="utf-8")
    result = import_promptsource(tmp_path / "in", tmp_path / "out")
    assert result.renamed == {"Zaid/coqa_expanded": "Zaid_coqa_expanded", "plain/sub": "plain_sub"}


def test_promptsource_needs_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.import_module

    def no_yaml(name: str, package: str | None = None) -> Any:
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_yaml)
    with pytest.raises(UsageError, match=r"pip install 'instraug-dsl\[promptsource\]'"):
        import_promptsource(PROMPTSOURCE, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("expr", "kind"),
    [
        ("premise", "path"),
        (" answers.text[0] | string ", "path"),
        ('meta["source id"]', "path"),
        ("'yes'", "literal"),
        ("answer_choices[label]", "choice_label"),
        ("answer_choices[-1]", "choice_index"),
        ('answer_choices | join(", ")', "choice_join"),
    ],
)
def test_jinja_subset_expressions(expr: str, kind: str) -> None:
    assert parse_output(expr).kind == kind


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("x | lower", "the filter `lower`"),
        ("x | trim", "the filter `trim`"),
        ("x + y", "is an expression"),
        ("x[i]", "the index `i` is computed"),
        ("answer_choices", "only translated as"),
        ("x.keys", "dict method"),
        ('"a\\nb"', "has escapes"),
        ("x(1)", "is an expression"),
    ],
)
def test_jinja_subset_refusals(expr: str, reason: str) -> None:
    with pytest.raises(Unsupported, match=re.escape(reason)):
        parse_output(expr)


@pytest.mark.parametrize(
    ("jinja", "choices", "reason"),
    [
        ('{{ "a|||b" }} x ||| y', None, "renders `|||`"),
        ('{{ answer_choices | join("|||") }} ||| y', "a ||| b", "renders `|||`"),
        ("x ||| y ||| z", None, "`|||` appears 2 times"),
        ("{{ x }} ||| {{ answer_choices[label] }}", None, "the template has none"),
        ("{{ x }} ||| {{ answer_choices[2] }}", "a ||| b", "out of range (2 choices)"),
        ("  ||| {{ x }}", None, "the prompt (before `|||`) is empty"),
        ("{{ x }} |||  {# nothing #} ", None, "the target (after `|||`) is empty"),
        ("{{ x ||| y", None, "`}}` missing"),
    ],
)
def test_promptsource_template_refusals(jinja: str, choices: str | None, reason: str) -> None:
    builder = _TaskBuilder(TaskOut("t", "t"))
    with pytest.raises(Unsupported, match=re.escape(reason)):
        translate_template(builder, PromptTemplate("id", "n", jinja, choices, 1))
    assert builder.task.slots == {}  # a refused template adds no slot


@pytest.mark.parametrize(
    "source",
    [
        'a  {{- "}}" }} b {# c #}\n{{ {"k": 1}["k"] }} {%- if x %}d{% endif -%}  e',
        "{{x}}\n\n{#- note -#}\n  y {{ 'a|||b' }}|||  {{z}}",
        "no tags at all {} }",
    ],
)
def test_jinja_text_pieces_match_jinjas_lexer(source: str) -> None:
    """Literal text after whitespace control is what Jinja's own lexer reads (test code)."""
    ours = [t.text for t in tokenize(source) if t.kind == "text"]
    theirs = [v for _, kind, v in jinja2.Environment().lex(source) if kind == "data"]
    assert [t for t in ours if t] == [t for t in theirs if t]


# ------------------------------------------------------- Natural Instructions


def test_natural_instructions_rows_equal_the_documented_prompt(tmp_path: Path) -> None:
    """`definition\\n\\nInput: {input}\\nOutput:` with target `output[0]`, from the task
    files' own instances (written by `--instances`)."""
    records_file = tmp_path / "ni.jsonl"
    result = import_natural_instructions(NI, tmp_path / "iat", instances=records_file)
    assert check([tmp_path / "iat"]).ok
    report = _report(tmp_path / "iat")
    assert report["renamed"] == {"task002_toy.sentiment": "task002_toy_sentiment"}
    assert {(s["task"], s["reason"]) for s in report["skipped"]} == {
        ("task003_no_definition", "`Definition` is not a list of strings"),
        ("task004_not_json", "invalid JSON: Expecting ',' delimiter"),
    }
    assert [t.name for t in result.tasks] == [
        "task001_toy_question_generation",
        "task002_toy_sentiment",
    ]
    records = _records(records_file)
    assert len(records) == 5 and records[0] == {
        "task_name": "task001_toy_question_generation",
        "unique_id": "task001-1",
        "input": "Tom lent his bike to Maya.",
        "output": ["Who borrowed Tom's bike?", "To whom did Tom lend his bike?"],
    }
    tasks = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in NI.glob("task00[12]*")}

    def reference(task: str, template: str, record: Mapping[str, Any]) -> tuple[str, str]:
        assert template == "Definition"
        definition = "\n\n".join(d.strip() for d in tasks[task]["Definition"])
        return f"{definition}\n\nInput: {record['input']}\nOutput:", record["output"][0]

    rows = _materialize(tmp_path, tmp_path / "iat", records)
    _compare(rows, records, report, reference)


def test_natural_instructions_frame_is_pinned(tmp_path: Path) -> None:
    import_natural_instructions(NI, tmp_path)
    text = (tmp_path / "task002_toy_sentiment.iat").read_text(encoding="utf-8")
    assert 'pin "\\n\\nInput: {input}\\nOutput:"' in text
    assert "target from output[0]" in text and 'instances "task002_toy.sentiment"' in text


def test_natural_instructions_instances_file_is_not_overwritten(tmp_path: Path) -> None:
    taken = tmp_path / "mine.jsonl"
    taken.write_text("keep\n", encoding="utf-8")
    with pytest.raises(OutputError, match="exists"):
        import_natural_instructions(NI, tmp_path / "iat", instances=taken)
    assert taken.read_text(encoding="utf-8") == "keep\n" and not (tmp_path / "iat").exists()


# ----------------------------------------------------------------- shared


@pytest.mark.parametrize(
    ("original", "name"),
    [
        ("rte", "rte"),
        ("open-domain_VQA", "open-domain_VQA"),
        ("glue:mnli", "glue_mnli"),
        ("squad.v1", "squad_v1"),
        ("super_glue/rte", "super_glue_rte"),
        ("ai2_arc/ARC-Challenge", "ai2_arc_ARC-Challenge"),
        ("3way", "_3way"),
        ("a--b", "a__b"),
        ("-x-", "_x_"),
    ],
)
def test_task_name_normalization(original: str, name: str) -> None:
    assert task_name(original) == name
    assert check_text(f'task {name} {{ instruction i0 = "x" }}').ok


def test_instructions_refused_by_the_checker_are_reported_not_written(tmp_path: Path) -> None:
    """One instruction the checker refuses is dropped (reason in the report); the rest of
    its task is written."""
    task = TaskOut("t", "t:orig")
    task.slots["x"] = SlotOut("x", "text")
    task.instructions = [
        InstructionOut("i0", (Part(False, "Say "), Part(True, "x")), origin="[0]"),
        InstructionOut("i1", (Part(True, "undeclared"),), origin="[1]"),
    ]
    report = Report("test", "in")
    built = build_files([task], report, emit.header("test", "in"), tmp_path)
    assert [len(t.instructions) for t in built.tasks] == [1]
    assert [(s.template, s.reason[:40]) for s in report.skipped] == [
        ("[1]", "does not pass `iatc check`: E020 undecla")
    ]


def test_reimport_is_idempotent_and_overwrite_protected(tmp_path: Path) -> None:
    first = import_flan(FLAN, tmp_path)
    again = import_flan(FLAN, tmp_path)
    assert again.written == [] and sorted(again.unchanged) == sorted(first.written)
    (tmp_path / "rte.iat").write_text("# my own file\n", encoding="utf-8")
    with pytest.raises(OutputError, match="not generated by `iatc import`"):
        import_flan(FLAN, tmp_path)
    assert (tmp_path / "rte.iat").read_text(encoding="utf-8") == "# my own file\n"
    assert import_flan(FLAN, tmp_path, force=True).written == ["rte.iat"]
    (tmp_path / REPORT_FILE).write_text('{"mine": true}\n', encoding="utf-8")
    with pytest.raises(OutputError, match=REPORT_FILE):
        import_flan(FLAN, tmp_path)
    (tmp_path / "echo.iat").unlink()
    (tmp_path / "gone.iat").write_text(emit.header("flan", "old.py"), encoding="utf-8")
    result = import_flan(FLAN, tmp_path, force=True)
    assert result.written == ["echo.iat", REPORT_FILE] and result.stale == ["gone.iat"]
    assert (tmp_path / "gone.iat").exists()


# -------------------------------------------------------------------- JSONL


def test_jsonl_import_warns_about_jinja_looking_text(tmp_path: Path) -> None:
    lines = [
        json.dumps({"task": "t", "template": "Answer {{question}} now."}),
        json.dumps({"task": "t", "template": "Keep {{{x}}} and {{ a.b | lower }}."}),
        json.dumps({"task": "t", "template": "Plain {question}."}),
    ]
    warnings = jinja_warnings(parse_records(lines, "in.jsonl"), "in.jsonl")
    assert warnings == [
        "in.jsonl:1: field `template`: `{{question}}` is kept as the literal text "
        "`{question}`: `{{`/`}}` are braces here, not Jinja; write `{question}` if it is a "
        "placeholder",
        "in.jsonl:2: field `template`: `{{ a.b | lower }}` is kept as the literal text "
        "`{ a.b | lower }`: `{{`/`}}` are braces here, not Jinja; a placeholder is `{name}` "
        "(a path goes in the overrides' `from`)",
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(import_jsonl(src, tmp_path / "out").notes) == 2
    _register_commands()
    result = CliRunner().invoke(app, ["import", "jsonl", str(src), "-o", str(tmp_path / "o2")])
    assert result.exit_code == 0 and "iatc: warning: in.jsonl:1: field `template`" in result.stderr


def test_flan_variable_option(tmp_path: Path) -> None:
    src = tmp_path / "templates.py"
    src.write_text('FEW = {"t": [("Say {x}", "{x}")]}\nPATTERNS = {}\n', encoding="utf-8")
    result = import_flan(src, tmp_path / "out", variable="FEW")
    assert [t.name for t in result.tasks] == ["t"]
    assert _report(tmp_path / "out")["options"] == {"options": "dash", "variable": "FEW"}


# ------------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register_commands()
    return CliRunner()


def test_cli_flan_summary_lists_what_was_not_imported(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "flan"
    result = runner.invoke(app, ["import", "flan", str(FLAN), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (
        f"7 tasks, 15 instructions; 7 not imported (report: {out / REPORT_FILE}); "
        "2 task name(s) normalized" in result.stdout
    )
    assert (
        "iatc: warning: not imported: templates.py:49: broken [0]: `{0}` is read by FLAN"
        in result.stderr
    )
    check_run = runner.invoke(app, ["import", "flan", str(FLAN), "-o", str(out), "--check"])
    assert check_run.exit_code == 0 and "up to date" in check_run.stdout
    (out / "echo.iat").unlink()
    stale = runner.invoke(app, ["import", "flan", str(FLAN), "-o", str(out), "--check"])
    assert stale.exit_code == 1 and f"would change: {out / 'echo.iat'}" in stale.stderr


def test_cli_promptsource_and_natural_instructions(runner: CliRunner, tmp_path: Path) -> None:
    ps = runner.invoke(
        app, ["import", "promptsource", str(PROMPTSOURCE), "-o", str(tmp_path / "p")]
    )
    assert ps.exit_code == 0, ps.output
    assert 'glue/mnli "lower case": the filter `lower`' in ps.stderr
    ni = runner.invoke(
        app,
        [
            "import",
            "natural-instructions",
            str(NI),
            "-o",
            str(tmp_path / "n"),
            "--instances",
            str(tmp_path / "n.jsonl"),
        ],
    )
    assert ni.exit_code == 0, ni.output
    assert "2 tasks, 2 instructions; 2 not imported" in ni.stdout
    assert (tmp_path / "n.jsonl").is_file()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["flan", "missing.py"], 2, "no such file: missing.py"),
        (["promptsource", "missing"], 2, "no such file or folder: missing"),
        (["flan", "bad.py"], 1, "bad.py:1: not Python"),
        (["flan", "bad.py", "--options", "roman"], 2, "--options must be one of dash, letters"),
    ],
)
def test_cli_errors(
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text("PATTERNS = {\n", encoding="utf-8")
    result = runner.invoke(app, ["import", *args, "-o", "out"])
    assert result.exit_code == code and message in result.stderr, result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
