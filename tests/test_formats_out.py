"""Issue 11 item 5 and the carried columns of item 4: trainer formats out
(``messages``, ``llava``, ``ofa-tsv``) and ``--carry``.

Every test materializes the run the real runtime writes (fixture ``run_small``,
tests/run_small_support.py); each format is checked against the MIns+ JSONL rows of the
same seed, and loaded the way its trainer (or ``datasets``) loads it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from run_small_support import INSTANCES
from typer.testing import CliRunner

from instraug_dsl import api
from instraug_dsl.commands import exitcodes
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.contract.dataset import MaterializeManifest, MaterializeOptions, read_manifest
from instraug_dsl.dataset.writers import OFA_COLUMNS, tsv_escape, tsv_unescape
from instraug_dsl.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
_register_commands()
runner = CliRunner()

PROVENANCE = [
    "unique_id",
    "task",
    "task_name",
    "image_path",
    "instruction_id",
    "instruction_kind",
    "root",
    "metaprompt",
    "temperature",
    "model",
]


def iatc(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def rows(path: Path) -> list[dict[str, Any]]:
    # split on "\n" only: a row may hold U+2028, which str.splitlines would break on
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def build(run: Path, out: Path, instances: Path = INSTANCES, **options: Any) -> MaterializeManifest:
    return api.materialize(run, instances, out, options=MaterializeOptions(**options)).manifest


def load(folder: Path, tmp_path: Path) -> Any:
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))


@pytest.fixture(scope="module")
def mins(run_small: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The MIns+ JSONL rows of seed 4, the reference every format is checked against."""
    out = tmp_path_factory.mktemp("mins") / "out"
    build(run_small, out, seed=4)
    return {"train": out / "train.jsonl", "test": out / "test.jsonl"}


def without_image(tmp_path: Path, keep_images: frozenset[str] = frozenset()) -> Path:
    """The fixture's instances with ``image_path`` removed except for ``keep_images``."""
    lines = []
    for line in INSTANCES.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            lines.append(line)
            continue
        if isinstance(record, dict) and record.get("unique_id") not in keep_images:
            record.pop("image_path", None)
        lines.append(json.dumps(record))
    path = tmp_path / "instances.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------- messages


def test_messages_rows_follow_the_trl_vision_convention(
    run_small: Path, mins: dict[str, Path], tmp_path: Path
) -> None:
    """GIVEN records with images
    WHEN materialized with --format messages from the CLI
    THEN both splits are chat rows: user content [image part, text part], assistant content
    [text part], ``images`` = [the path], plus the provenance columns; ``datasets`` loads
    the folder with that structure, and the prompts/targets are the MIns+ ones."""
    out = tmp_path / "out"
    code, output = iatc(
        "materialize", run_small, "--instances", INSTANCES, "-o", out, "--format", "messages",
        "--seed", 4,
    )  # fmt: skip
    assert code == exitcodes.OK, output
    assert "train.messages.jsonl" in output
    names = sorted(p.name for p in out.iterdir())
    assert "train.messages.jsonl" in names and "test.messages.jsonl" in names
    assert "train.jsonl" not in names
    for split in ("train", "test"):
        reference = rows(mins[split])
        chat = rows(out / f"{split}.messages.jsonl")
        assert len(chat) == len(reference) > 0
        for row, ref in zip(chat, reference, strict=True):
            assert list(row) == ["messages", "images", *PROVENANCE]
            assert row["messages"] == [
                {
                    "role": "user",
                    "content": [{"type": "image"}, {"type": "text", "text": ref["prompt"]}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": ref["target"]}]},
            ]
            assert row["images"] == [ref["image_path"]]
            assert {k: row[k] for k in PROVENANCE} == {k: ref[k] for k in PROVENANCE}
    assert read_manifest(out).outputs.messages_content == "parts"

    loaded = load(out, tmp_path)
    assert sorted(loaded) == ["test", "train"]
    train = loaded["train"]
    assert train.column_names == ["messages", "images", *PROVENANCE]
    first = train[0]
    user, assistant = first["messages"]
    assert user["role"] == "user" and [p["type"] for p in user["content"]] == ["image", "text"]
    assert user["content"][1]["text"] == rows(mins["train"])[0]["prompt"]
    assert assistant["content"][0] == {"type": "text", "text": rows(mins["train"])[0]["target"]}
    assert first["images"] == ["img/1.jpg"]
    assert loaded["test"]["temperature"] == [None] * loaded["test"].num_rows


def test_messages_without_images_are_plain_text(
    run_small: Path, mins: dict[str, Path], tmp_path: Path
) -> None:
    """No row with an image: ``content`` is a plain string and there is no ``images``
    column (TRL's text convention), and a chat template renders a row."""
    jinja2 = pytest.importorskip("jinja2.sandbox")
    out = tmp_path / "out"
    manifest = build(run_small, out, without_image(tmp_path), format="messages", seed=4)
    assert manifest.outputs.messages_content == "text"
    reference = rows(mins["train"])
    chat = rows(out / "train.messages.jsonl")
    for row, ref in zip(chat, reference, strict=True):
        assert list(row) == ["messages", *PROVENANCE]
        assert row["messages"] == [
            {"role": "user", "content": ref["prompt"]},
            {"role": "assistant", "content": ref["target"]},
        ]
        assert row["image_path"] is None
    loaded = load(out, tmp_path)
    assert "images" not in loaded["train"].column_names
    assert loaded["train"][0]["messages"][0]["content"] == reference[0]["prompt"]

    # rendered the way `tokenizer.apply_chat_template` renders (a sandboxed jinja template
    # over `messages`; transformers compiles chat templates the same way)
    env = jinja2.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    )
    text = template.render(messages=loaded["train"][0]["messages"])
    assert text == f"<|user|>\n{reference[0]['prompt']}<|end|>\n<|assistant|>\n" + (
        f"{reference[0]['target']}<|end|>\n"
    )


def test_messages_with_some_images_use_parts_everywhere(run_small: Path, tmp_path: Path) -> None:
    """One column, one type: when any row of either split has an image, rows without one
    keep the parts form with ``"images": []`` (and no image part), so the files load."""
    jinja2 = pytest.importorskip("jinja2.sandbox")
    instances = without_image(tmp_path, keep_images=frozenset({"vcr-1"}))  # a test-split record
    out = tmp_path / "out"
    manifest = build(run_small, out, instances, format="messages")
    assert manifest.outputs.messages_content == "parts"
    train = rows(out / "train.messages.jsonl")
    assert all(r["images"] == [] for r in train)
    assert all([p["type"] for p in r["messages"][0]["content"]] == ["text"] for r in train)
    test = rows(out / "test.messages.jsonl")
    assert {tuple(r["images"]) for r in test} == {("img/14.jpg",), ()}
    loaded = load(out, tmp_path)
    assert loaded["train"].features == loaded["test"].features

    # a multimodal chat template (the HF convention: iterate the typed parts)
    env = jinja2.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(
        "{% for m in messages %}<|{{ m['role'] }}|>"
        "{% for part in m['content'] %}"
        "{% if part['type'] == 'image' %}<image>{% else %}{{ part['text'] }}{% endif %}"
        "{% endfor %}\n{% endfor %}"
    )
    with_image = next(r for r in loaded["test"] if r["images"])
    rendered = template.render(messages=with_image["messages"])
    prompt = with_image["messages"][0]["content"][1]["text"]
    assert rendered == f"<|user|><image>{prompt}<|assistant|>a"


# ----------------------------------------------------------------- llava


def test_llava_json_parses_and_matches_the_rows(
    run_small: Path, mins: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, output = iatc(
        "materialize", run_small, "--instances", INSTANCES, "-o", out, "--format", "llava",
        "--seed", 4,
    )  # fmt: skip
    assert code == exitcodes.OK, output
    for split in ("train", "test"):
        data = json.loads((out / f"{split}.llava.json").read_text(encoding="utf-8"))
        reference = rows(mins[split])
        assert isinstance(data, list) and len(data) == len(reference)
        for item, ref in zip(data, reference, strict=True):
            assert list(item)[:3] == ["id", "image", "conversations"]
            assert item["id"] == ref["unique_id"] and item["image"] == ref["image_path"]
            assert item["conversations"] == [
                {"from": "human", "value": "<image>\n" + ref["prompt"]},
                {"from": "gpt", "value": ref["target"]},
            ]
            assert {k: item[k] for k in PROVENANCE} == {k: ref[k] for k in PROVENANCE}
    loaded = load(out, tmp_path)
    assert loaded["train"].num_rows == len(rows(mins["train"]))
    assert loaded["train"][0]["conversations"][1]["from"] == "gpt"


def test_llava_rows_without_an_image_have_no_image_key(run_small: Path, tmp_path: Path) -> None:
    build(run_small, tmp_path / "out", without_image(tmp_path), format="llava")
    data = json.loads((tmp_path / "out" / "train.llava.json").read_text(encoding="utf-8"))
    assert data and all("image" not in item for item in data)
    assert not any(item["conversations"][0]["value"].startswith("<image>") for item in data)
    empty = build(run_small, tmp_path / "none", format="llava", test_instructions="none",
                  carry=(), per_task=0)  # fmt: skip
    assert empty.counts.written == 0
    assert json.loads((tmp_path / "none" / "train.llava.json").read_text()) == []


# ----------------------------------------------------------------- ofa-tsv

HOSTILE = [
    "tab\there, \"quotes\" and 'single'",
    "new\nline and\r\nwindows and \\n a literal backslash-n",
    "unicode\u2028line\u2029sep\x85nel\x0bvt\x0cff\x1cfs",
    "trailing backslash \\",
]


def _hostile_instances(tmp_path: Path) -> Path:
    records = [
        {
            "unique_id": f"h-{i}\tid",
            "task_name": "VQA_color",
            "image_path": f"img/{i}\t.jpg",
            "question": text,
            "options": [text, "plain"],
            "target": text,
        }
        for i, text in enumerate(HOSTILE)
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_ofa_tsv_splits_back_into_the_same_fields(run_small: Path, tmp_path: Path) -> None:
    """GIVEN prompts, targets, ids and paths with tabs, newlines, quotes, backslashes and
    every other line separator
    WHEN written as ofa-tsv
    THEN each row is one line of exactly the documented columns, and unescaping gives back
    the MIns+ row's values."""
    instances = _hostile_instances(tmp_path)
    build(run_small, tmp_path / "mins", instances, seed=1)
    code, output = iatc(
        "materialize", run_small, "--instances", instances, "-o", tmp_path / "out",
        "--format", "ofa-tsv", "--seed", 1,
    )  # fmt: skip
    assert code == exitcodes.OK, output
    data = (tmp_path / "out" / "train.ofa.tsv").read_text(encoding="utf-8")
    reference = rows(tmp_path / "mins" / "train.jsonl")
    assert len(reference) == len(HOSTILE)
    assert data.endswith("\n") and len(data.splitlines()) == len(reference)
    for line, ref in zip(data.split("\n")[:-1], reference, strict=True):
        fields = line.split("\t")
        assert len(fields) == len(OFA_COLUMNS)
        values = dict(zip(OFA_COLUMNS, (tsv_unescape(f) for f in fields), strict=True))
        assert values == {
            "uniq_id": ref["unique_id"],
            "image": ref["image_path"],
            "prompt": ref["prompt"],
            "target": ref["target"],
            "task": ref["task"],
            "instruction_id": ref["instruction_id"],
            "instruction_kind": ref["instruction_kind"],
        }
    # OFA's reader: readline() in text mode, rstrip the newline, split on the separator
    with (tmp_path / "out" / "train.ofa.tsv").open(encoding="utf-8") as fh:
        assert all(len(line.rstrip("\n").split("\t")) == 7 for line in fh)


def test_ofa_tsv_loads_with_datasets_through_the_card(run_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(run_small, out, seed=1, format="ofa-tsv")
    loaded = load(out, tmp_path)
    assert loaded["train"].column_names == list(OFA_COLUMNS)
    for split in ("train", "test"):
        lines = (out / f"{split}.ofa.tsv").read_text(encoding="utf-8").split("\n")[:-1]
        assert loaded[split]["prompt"] == [line.split("\t")[2] for line in lines]
        assert loaded[split]["uniq_id"] == [line.split("\t")[0] for line in lines]
    # the text comes back escaped, as in the file; tsv_unescape restores it
    assert any("\\n" in p for p in loaded["test"]["prompt"])


@given(st.text())
def test_tsv_escape_round_trips_and_leaves_no_separator(text: str) -> None:
    field = tsv_escape(text)
    assert tsv_unescape(field) == text
    assert "\t" not in field and len((field + "x").splitlines()) == 1


def test_documented_base64_conversion_gives_ofas_image_column(
    run_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snippet in docs/dataset.md turns the path column into urlsafe base64 of the file,
    what OFA's readers decode, and leaves the other columns alone."""
    import base64

    doc = (ROOT / "docs" / "dataset.md").read_text(encoding="utf-8")
    snippet = re.search(r"<!-- ofa-base64 -->\n```python\n(.*?)```", doc, re.S)
    assert snippet is not None
    monkeypatch.chdir(tmp_path)
    build(run_small, Path("out"), format="ofa-tsv", test_instructions="none", raw_share=1.0)
    lines = Path("out/train.ofa.tsv").read_text(encoding="utf-8").splitlines()
    for line in lines:
        image = Path("images") / tsv_unescape(line.split("\t")[1])
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"\x89PNG" + image.name.encode())
    exec(compile(snippet.group(1), "docs/dataset.md", "exec"), {})
    converted = Path("train.ofa.b64.tsv").read_text(encoding="utf-8").splitlines()
    assert len(converted) == len(lines)
    for before, after in zip(lines, converted, strict=True):
        old, new = before.split("\t"), after.split("\t")
        name = Path(tsv_unescape(old[1])).name
        assert base64.urlsafe_b64decode(new[1]) == b"\x89PNG" + name.encode()
        assert old[:1] + old[2:] == new[:1] + new[2:]


# ----------------------------------------------------------------- both splits, the card


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("messages", ".messages.jsonl"), ("llava", ".llava.json"), ("ofa-tsv", ".ofa.tsv")],
)
def test_card_and_manifest_describe_the_trainer_files(
    run_small: Path, tmp_path: Path, fmt: str, suffix: str
) -> None:
    out = tmp_path / "out"
    build(run_small, out, seed=7)  # an earlier dataset in the default format...
    manifest = build(run_small, out, format=fmt, seed=7)
    # ...whose files go when the folder is rewritten in another format
    assert not (out / "train.jsonl").exists() and not (out / "test.jsonl").exists()
    assert (manifest.outputs.data, manifest.outputs.test) == (f"train{suffix}", f"test{suffix}")
    assert manifest.options.format == fmt
    card = (out / "README.md").read_text(encoding="utf-8")
    front = card.split("---\n")[1]
    assert f"  - split: train\n    path: train{suffix}\n" in front
    assert f"  - split: test\n    path: test{suffix}\n" in front
    assert f"Files (`train{suffix}`, `test{suffix}`)" in card
    again = build(run_small, tmp_path / "again", format=fmt, seed=7)
    for name in (f"train{suffix}", f"test{suffix}", "README.md"):
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    assert again.outputs.data_sha256 == manifest.outputs.data_sha256


# ----------------------------------------------------------------- carried columns


def test_carry_chooses_orders_and_types_the_columns(
    run_small: Path, mins: dict[str, Path], tmp_path: Path
) -> None:
    """GIVEN --carry image_path,task_name,unique_id and typed, renamed and JSON fields
    THEN the columns come after ``task`` in that order (``unique_id`` is not repeated),
    the values are the records', a value of another type is null, and the card, Parquet
    and ``datasets`` type them."""
    pq = pytest.importorskip("pyarrow.parquet")
    carry = (
        "image_path,task_name,unique_id,method=meta_data.method,meta_data:json,"
        "x=region[1][0]:float64"
    )
    out = tmp_path / "out"
    code, output = iatc(
        "materialize", run_small, "--instances", INSTANCES, "-o", out, "--seed", 4,
        "--carry", carry, "--carry", "ok=meta_data.method:bool",
    )  # fmt: skip
    assert code == exitcodes.OK, output
    data = rows(out / "train.jsonl")
    assert list(data[0]) == [
        "unique_id", "task", "image_path", "task_name", "method", "meta_data", "x", "ok",
        "prompt", "target", "instruction_id", "instruction_kind", "root", "metaprompt",
        "temperature", "model",
    ]  # fmt: skip
    reference = rows(mins["train"])
    assert [r["prompt"] for r in data] == [r["prompt"] for r in reference]
    by_id = {r["unique_id"]: r for r in data}
    assert by_id["step-1"]["method"] == "Making a Kite"
    assert by_id["step-1"]["meta_data"] == '{"method": "Making a Kite"}'
    assert by_id["match-1"]["x"] == 0.0 and by_id["color-1"]["x"] is None
    assert by_id["step-1"]["ok"] is None  # a string is not a bool
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "  - name: x\n    dtype: float64\n" in card
    assert "  - name: ok\n    dtype: bool\n" in card
    assert "  - name: meta_data\n    dtype: string\n" in card
    assert read_manifest(out).options.carry == (
        "image_path", "task_name", "unique_id", "method=meta_data.method", "meta_data:json",
        "x=region[1][0]:float64", "ok=meta_data.method:bool",
    )  # fmt: skip

    build(run_small, tmp_path / "p", seed=4, format="parquet", carry=("x=region[1][0]:float64",
          "ok=meta_data.method:bool", 'q=meta["a b"]'))  # fmt: skip
    schema = pq.read_schema(tmp_path / "p" / "train.parquet")
    assert str(schema.field("x").type) == "double" and str(schema.field("ok").type) == "bool"
    assert schema.names[2:5] == ["x", "ok", "q"]
    loaded = load(tmp_path / "p", tmp_path)
    assert loaded["train"].features["x"].dtype == "float64"
    assert loaded["train"].features["ok"].dtype == "bool"


def test_default_carry_is_todays_columns_and_empty_carries_nothing(
    run_small: Path, mins: dict[str, Path], tmp_path: Path
) -> None:
    explicit = tmp_path / "explicit"
    code, output = iatc(
        "materialize", run_small, "--instances", INSTANCES, "-o", explicit, "--seed", 4,
        "--carry", "task_name,image_path",
    )  # fmt: skip
    assert code == exitcodes.OK, output
    assert (explicit / "train.jsonl").read_bytes() == mins["train"].read_bytes()
    assert (explicit / "README.md").read_bytes() == (
        mins["train"].parent / "README.md"
    ).read_bytes()
    code, output = iatc(
        "materialize", run_small, "--instances", INSTANCES, "-o", tmp_path / "none",
        "--seed", 4, "--carry", "",
    )  # fmt: skip
    assert code == exitcodes.OK, output
    assert list(rows(tmp_path / "none" / "train.jsonl")[0])[:3] == ["unique_id", "task", "prompt"]


@pytest.mark.parametrize(
    ("carry", "message"),
    [
        ("prompt", "`prompt` is a column iatc writes itself; name the carried one"),
        ("a=x,a=y", "the column `a` is carried twice"),
        ("x:text", "unknown type 'text'"),
        ("meta..x", "expected a field name after `.`"),
        ("1abc", "a field path starts with a field name"),
        ("unique_id:int64", "carry it under another name (`uid=unique_id:int64`)"),
        ('meta["a', "a quoted key must be a JSON string"),
    ],
)
def test_bad_carry_specs_are_usage_errors(
    run_small: Path, tmp_path: Path, carry: str, message: str
) -> None:
    code, output = iatc(
        "materialize", run_small, "--instances", INSTANCES, "-o", tmp_path / "o", "--carry", carry
    )
    assert code == exitcodes.USAGE, output
    assert message in output
    assert not (tmp_path / "o").exists()


def test_reserved_names_depend_on_the_format(run_small: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="`images` is a column iatc writes itself"):
        build(run_small, tmp_path / "o", format="messages", carry=("images=image_path",))
    with pytest.raises(UsageError, match="`conversations` is a column"):
        build(run_small, tmp_path / "o", format="llava", carry=("conversations=x",))
    # fine where the format does not write it
    build(run_small, tmp_path / "ok", carry=("images=image_path",), per_task=0)
    with pytest.raises(UsageError, match="a tuple of carry specs, not one string"):
        build(run_small, tmp_path / "o", carry="image_path")


def test_commas_in_quoted_keys_do_not_split() -> None:
    from instraug_dsl.dataset.carry import parse_carry, split_specs

    assert split_specs(['a,meta["x,y"]:json, b=c[0] ', ""]) == ("a", 'meta["x,y"]:json', "b=c[0]")
    column = parse_carry('k=meta["a:b"]:int64')
    assert (column.name, column.path, column.type) == ("k", ("meta", "a:b"), "int64")
    assert parse_carry("meta_data.dialog_hist[-1]").spec == "meta_data.dialog_hist[-1]"
