"""Issue 11, "done means": from FLAN or promptsource templates to trainer-ready data.

GIVEN the two examples (``examples/flan``, ``examples/promptsource``: small templates of our
own in each collection's format, records and a plan) copied to a folder outside the
checkout, WHEN a user runs the real CLI (``iatc import``, ``check``, ``augment --model
offline/rules``, ``materialize --format messages`` and one other trainer format) THEN

* the import exits 0 and lists every template it left out, with its reason (on standard
  error and in ``import-report.json``), and writes exactly the example's ``tasks/``;
* no record is lost silently: the rows, ``errors.jsonl`` (with field and reason) and the
  manifest's ``unmatched`` account for every line of the instance file;
* every row's target is what the collection's own rendering gives for that record (FLAN's
  regex-split formatter, promptsource's ``Template.apply`` transcribed with Jinja), an
  original instruction's prompt too, byte for byte;
* a generated instruction's prompt is its rewrite with every placeholder filled with the
  value the source's rendering puts there, and nothing left unfilled.

The outputs are loaded with HF ``datasets`` as a trainer would.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli as iatc
from cli_support import ok
from test_import_collections import promptsource_apply, promptsource_templates

from instraug_dsl.dataset.writers import tsv_unescape

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

#: (original task, source template, record) -> the source's own (prompt, target)
Reference = Callable[[str, str, Mapping[str, Any]], tuple[str, str]]
#: original task -> its source templates (FLAN: "[index]"; promptsource: the name)
Templates = dict[str, list[str]]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ------------------------------------------------------------ the sources' own rendering

_FLAN_FIELD = re.compile(r"({\w*})")


def flan_reference(folder: Path) -> tuple[Reference, Templates]:
    """FLAN's ``format_options`` (the dash style) then ``format_from_feature_dictionary``
    (a regex split, not ``str.format``), over the example's PATTERNS."""
    namespace: dict[str, Any] = {}
    source = folder / "templates.py"
    code = compile(source.read_text(encoding="utf-8"), str(source), "exec")
    exec(code, namespace)  # test code, our own example file
    patterns: dict[str, list[tuple[str, str]]] = namespace["PATTERNS"]

    def render(template: str, example: Mapping[str, Any]) -> str:
        features = dict(example)
        if "options" in features:
            features["options_"] = "OPTIONS:\n- " + "\n- ".join(features["options"])
        parts = [p for p in _FLAN_FIELD.split(template) if p]
        return "".join(str(features[p[1:-1]]) if p[0] == "{" and p[-1] == "}" else p for p in parts)

    def reference(task: str, template: str, record: Mapping[str, Any]) -> tuple[str, str]:
        inputs, targets = patterns[task][int(template.strip("[]"))]
        return render(inputs, record), render(targets, record)

    return reference, {t: [f"[{i}]" for i in range(len(p))] for t, p in patterns.items()}


def promptsource_reference(folder: Path) -> tuple[Reference, Templates]:
    """promptsource's ``Template.apply(example)`` (truncate=True), transcribed."""
    found = promptsource_templates(folder / "templates")

    def reference(task: str, template: str, record: Mapping[str, Any]) -> tuple[str, str]:
        prompt, target = promptsource_apply(found[task][template], record)
        return prompt, target

    return reference, {t: list(names) for t, names in found.items()}


# ------------------------------------------------------------ placeholders

_SLOT = re.compile(r"(\{\w+\})")


def slot_values(template: str, rendered: str) -> dict[str, str]:
    """The value of each ``{slot}`` of an original instruction in the source's rendering
    of it (the template's literal text must match exactly)."""
    pattern, seen = "", set()
    for part in _SLOT.split(template):
        if _SLOT.fullmatch(part):
            name = part[1:-1]
            pattern += f"(?P={name})" if name in seen else f"(?P<{name}>.*?)"
            seen.add(name)
        else:
            pattern += re.escape(part)
    match = re.fullmatch(pattern, rendered, re.DOTALL)
    assert match, f"{rendered!r} is not an instance of {template!r}"
    return match.groupdict()


def fill(template: str, values: Mapping[str, str]) -> str:
    return "".join(values[p[1:-1]] if _SLOT.fullmatch(p) else p for p in _SLOT.split(template) if p)


# ------------------------------------------------------------ the flow


def rows_of(folder: Path, fmt: str, cache: Path) -> list[dict[str, str]]:
    """The trainer file loaded with HF ``datasets`` (through the dataset card), as
    (unique_id, prompt, target, instruction_id) rows."""
    import datasets

    train = datasets.load_dataset(str(folder), cache_dir=str(cache))["train"]
    out = []
    for row in train:
        if fmt == "messages":
            user, assistant = row["messages"]
            assert (user["role"], assistant["role"]) == ("user", "assistant")
            prompt, target, uid = user["content"], assistant["content"], row["unique_id"]
        elif fmt == "llava":
            human, gpt = row["conversations"]
            assert (human["from"], gpt["from"]) == ("human", "gpt") and row["id"] == row[
                "unique_id"
            ]
            prompt, target, uid = human["value"], gpt["value"], row["unique_id"]
        else:  # ofa-tsv: escaped fields
            prompt, target = tsv_unescape(row["prompt"]), tsv_unescape(row["target"])
            uid = row["uniq_id"]
        out.append(
            {"unique_id": uid, "prompt": prompt, "target": target, "id": row["instruction_id"]}
        )
    return out


def check_output(
    data: Path,
    fmt: str,
    home: Path,
    records: list[dict[str, Any]],
    reference: Reference,
    cache: Path,
    extra: list[dict[str, Any]],
    error_field: str,
) -> list[dict[str, str]]:
    """No silent loss, and every row equal to the source's own rendering."""
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    assert manifest["inputs"]["instances"]["lines"] == len(records)
    accounted = ("written", "errors", "unmatched", "held_out", "over_budget")
    assert sum(counts[key] for key in accounted) == len(records)
    bad, unmatched = extra[0]["unique_id"], extra[1]["task_name"]
    errors = read_jsonl(data / "errors.jsonl")
    assert [(e["unique_id"], e["field"]) for e in errors] == [(bad, error_field)]
    assert errors[0]["reason"] and counts["errors"] == 1
    assert counts["unmatched"] == 1 and manifest["unmatched"] == {unmatched: 1}

    rows = rows_of(data, fmt, cache)
    by_id = {str(r["unique_id"]): r for r in records}
    left_out = {r["unique_id"] for r in extra}
    expected = [str(r["unique_id"]) for r in records if r["unique_id"] not in left_out]
    assert [r["unique_id"] for r in rows] == expected  # every record, in input order, once
    assert len(rows) == counts["written"]

    report = json.loads((home / "tasks" / "import-report.json").read_text(encoding="utf-8"))
    origins = {t["task"]: (t["original"], t["instructions"]) for t in report["tasks"]}
    instructions = {i["id"]: i for i in read_jsonl(home / "run" / "instructions.jsonl")}
    for row in rows:
        drawn = instructions[row["id"]]
        task, name = drawn["root"].split("/")
        original, templates = origins[task]
        record = by_id[row["unique_id"]]
        assert record["task_name"] == original
        prompt, target = reference(original, templates[name], record)
        row["kind"] = drawn["kind"]
        assert row["target"] == target, row
        if drawn["kind"] == "original":
            assert row["prompt"] == prompt, row
        else:
            values = slot_values(instructions[drawn["root"]]["template"], prompt)
            assert row["prompt"] == fill(drawn["template"], values), row
            assert not {f"{{{s}}}" for s in values} & set(_SLOT.findall(row["prompt"]))
    return rows


@pytest.mark.parametrize(
    ("example", "importer", "source", "formats", "skipped", "extra", "error_field"),
    [
        (
            "flan",
            "flan",
            "templates.py",
            ("messages", "llava"),
            {("snli", "[2]"): "not a literal (input, target) pair of strings (not evaluated)"},
            [
                # no `hypothesis`: an error row naming the field
                {
                    "task_name": "snli",
                    "unique_id": "snli-bad",
                    "premise": "A dog sleeps.",
                    "options": ["yes", "it is not possible to tell", "no"],
                    "answer": "no",
                },
                # a FLAN task that was not imported: unmatched
                {"task_name": "anli", "unique_id": "anli-1", "premise": "x", "answer": "y"},
            ],
            "hypothesis",
        ),
        (
            "promptsource",
            "promptsource",
            "templates",
            ("messages", "ofa-tsv"),
            {
                ("super_glue/boolq", "labelled only"): "`{% if %}`: Jinja statements are not "
                "translated",
                ("imdb", "lower case review"): "the filter `lower` is not supported by the "
                "renderer",
            },
            [
                # label 2 of two answer choices: an error row naming the field
                {"task_name": "imdb", "unique_id": "imdb-bad", "text": "Fine.", "label": 2},
                # a dataset that was not imported: unmatched
                {"task_name": "super_glue/rte", "unique_id": "rte-1", "premise": "x", "label": 0},
            ],
            "label",
        ),
    ],
)
def test_from_collection_templates_to_trainer_data(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    example: str,
    importer: str,
    source: str,
    formats: tuple[str, str],
    skipped: dict[tuple[str, str], str],
    extra: list[dict[str, Any]],
    error_field: str,
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    home = tmp_path / "home" / example  # where the user works: no checkout above it
    assert REPO not in home.resolve().parents
    shutil.copytree(EXAMPLES / example, home, ignore=shutil.ignore_patterns("tasks"))

    # import: exit 0 with templates left out; each is on stderr and in the report
    result = iatc("import", importer, source, "-o", "tasks", cwd=home)
    out = ok(result)
    report = json.loads((home / "tasks" / "import-report.json").read_text(encoding="utf-8"))
    assert {(s["task"], s["template"]): s["reason"] for s in report["skipped"]} == skipped
    warnings = [line for line in result.stderr.splitlines() if "not imported: " in line]
    assert len(warnings) == len(skipped)
    for (task, template), reason in skipped.items():
        assert any(task in w and template in w and w.endswith(reason) for w in warnings)
    assert f"{len(skipped)} not imported" in out
    # every template of the source is imported or reported, never both, never neither
    reference, templates = (flan_reference if importer == "flan" else promptsource_reference)(home)
    imported = {(t["original"], o) for t in report["tasks"] for o in t["instructions"].values()}
    for task, names in templates.items():
        for name in names:
            assert ((task, name) in imported) != ((task, name) in skipped), (task, name)
    # the example's committed tasks/ is exactly what the import writes
    committed = sorted(p.name for p in (EXAMPLES / example / "tasks").iterdir())
    assert sorted(p.name for p in (home / "tasks").iterdir()) == committed
    for name in committed:
        fresh = (home / "tasks" / name).read_bytes()
        assert fresh == (EXAMPLES / example / "tasks" / name).read_bytes(), name

    assert "0 errors" in ok(iatc("check", "plan.iat", cwd=home))
    ok(iatc("augment", "plan.iat", "--model", "offline/rules", "-o", "run", "-q", cwd=home))

    # the example's records, then one that cannot be rendered and one no task reads
    with (home / "records.jsonl").open("a", encoding="utf-8") as file:
        for record in extra:
            file.write(json.dumps(record) + "\n")
    records = read_jsonl(home / "records.jsonl")

    kinds = []
    for fmt, raw_share in ((formats[0], "0.5"), (formats[1], "0")):
        args = ["--format", fmt, "--raw-share", raw_share]
        summary = ok(
            iatc("materialize", "run", "--instances", "records.jsonl", "-o", fmt, *args, cwd=home)
        )
        assert "1 errors, 1 unmatched" in summary
        rows = check_output(
            home / fmt, fmt, home, records, reference, tmp_path / "hf", extra, error_field
        )
        kinds.append([r["kind"] for r in rows])
    # raw share 0.5 draws both kinds; raw share 0 only rewrites (every task has some)
    assert set(kinds[0]) == {"original", "generated"}
    assert set(kinds[1]) == {"generated"}
