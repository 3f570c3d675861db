"""Issue 11 item 4: instances in more formats (compressed JSONL, Parquet, Arrow, a
``Dataset.save_to_disk`` folder), every one with the hardened error-row semantics.

Every test materializes the run the real runtime writes (fixture ``run_small``,
tests/run_small_support.py).  The columnar inputs are built here from the records of
tests/fixtures/run_small/instances.jsonl and must give byte-identical datasets to the
JSON Lines they came from.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from run_small_support import INSTANCES
from typer.testing import CliRunner

from instraug_dsl import api
from instraug_dsl.commands import exitcodes
from instraug_dsl.commands.app import app
from instraug_dsl.commands.app import register_commands as _register_commands
from instraug_dsl.contract.dataset import MaterializeManifest, MaterializeOptions
from instraug_dsl.dataset.sources import BATCH_ROWS, InstanceReader, detect
from instraug_dsl.errors import DataError, UsageError
from instraug_dsl.fsio import sha256_file

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

_register_commands()
runner = CliRunner()

#: The files of a dataset folder that must not depend on the input format.
DATA_FILES = ("train.jsonl", "test.jsonl", "errors.jsonl", "dropped.jsonl", "README.md")
GOOD_LINES = 17  # lines 18 and 19 of the fixture are not JSON objects


def iatc(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def rows(path: Path) -> list[dict[str, Any]]:
    # split on "\n" only: a row may hold U+2028, which str.splitlines would break on
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def build(run: Path, instances: Path, out: Path, **options: Any) -> MaterializeManifest:
    return api.materialize(run, instances, out, options=MaterializeOptions(**options)).manifest


def good_records() -> list[dict[str, Any]]:
    lines = INSTANCES.read_text(encoding="utf-8").splitlines()[:GOOD_LINES]
    return [json.loads(line) for line in lines]


def assert_strict_json(folder: Path) -> None:
    """Every JSON file of ``folder`` is strict JSON (no NaN) and UTF-8 without surrogates."""

    def refuse(name: str) -> Any:
        raise ValueError(name)

    for path in folder.glob("*.json*"):
        text = path.read_bytes().decode("utf-8")
        chunks = [c for c in text.split("\n") if c] if path.suffix == ".jsonl" else [text]
        for chunk in chunks:
            json.loads(chunk, parse_constant=refuse)


def _json_column(values: list[Any]) -> Any:
    """Values of mixed shapes as an ``arrow.json`` column (what ``datasets`` writes)."""
    if not hasattr(pa, "json_"):
        pytest.skip("this pyarrow has no JSON extension type")
    texts = [None if v is None else json.dumps(v) for v in values]
    return pa.ExtensionArray.from_storage(pa.json_(), pa.array(texts, pa.string()))


def to_table(records: list[dict[str, Any]]) -> Any:
    """An Arrow table holding exactly ``records``: text and lists of text as native columns,
    anything else (numbers, objects, mixed shapes) as JSON text columns."""
    names = list(dict.fromkeys(k for r in records for k in r))
    columns = {}
    for name in names:
        values = [r.get(name) for r in records]
        present = [v for v in values if v is not None]
        if all(isinstance(v, str) for v in present):
            columns[name] = pa.array(values, pa.string())
        elif all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in present):
            columns[name] = pa.array(values, pa.list_(pa.string()))
        else:
            columns[name] = _json_column(values)
    return pa.table(columns)


def listing_sha(files: dict[str, Path]) -> str:
    """The folder hash: SHA-256 of the ``sha256sum`` listing of the files, sorted by name."""
    text = "".join(f"{sha256_file(p)}  {name}\n" for name, p in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def reference(run_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset of the fixture's good lines, read as JSON Lines."""
    base = tmp_path_factory.mktemp("reference")
    source = base / "good.jsonl"
    lines = INSTANCES.read_text(encoding="utf-8").splitlines()[:GOOD_LINES]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    build(run_small, source, base / "out", seed=5)
    return base / "out"


def assert_same_dataset(out: Path, reference: Path) -> None:
    for name in DATA_FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


# ----------------------------------------------------------------- compressed JSON Lines


def _compress(kind: str, data: bytes) -> bytes:
    if kind == "gz":
        return gzip.compress(data, mtime=0)
    zstd = pytest.importorskip("zstandard")
    half = len(data) // 2
    # two frames, as `zstd` writes for concatenated or parallel-compressed input
    return zstd.ZstdCompressor().compress(data[:half]) + zstd.ZstdCompressor().compress(data[half:])


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_compressed_jsonl_gives_the_jsonl_dataset(
    run_small: Path, tmp_path: Path, kind: str
) -> None:
    """GIVEN the fixture (bad lines included) gzip- or zstd-compressed
    WHEN it is materialized through the CLI
    THEN every file equals the dataset of the plain file, errors keep their line numbers,
    and the manifest records the format and the hash of the compressed bytes."""
    packed = tmp_path / f"instances.jsonl.{kind}"
    packed.write_bytes(_compress(kind, INSTANCES.read_bytes()))
    plain = build(run_small, INSTANCES, tmp_path / "plain", seed=2)
    code, output = iatc(
        "materialize", run_small, "--instances", packed, "-o", tmp_path / "out", "--seed", 2
    )
    assert code == exitcodes.OK, output
    for name in DATA_FILES:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    assert [e["line"] for e in rows(tmp_path / "out" / "errors.jsonl")][-2:] == [18, 19]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    ref = manifest["inputs"]["instances"]
    assert ref["format"] == f"jsonl.{kind}" and ref["lines"] == plain.inputs.instances.lines
    assert ref["sha256"] == sha256_file(packed) and ref["files"] is None
    assert plain.inputs.instances.format == "jsonl"


@pytest.mark.parametrize(
    ("cut", "reason"),
    [("truncated", "damaged"), ("flipped", "damaged")],
)
@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_damaged_compressed_input_is_a_clear_error(
    run_small: Path, tmp_path: Path, kind: str, cut: str, reason: str
) -> None:
    """A compressed stream that cannot be decoded to its end is an error naming the file
    (exit 2), never a silently shorter dataset, and leaves no partial files."""
    data = b"".join(
        json.dumps({"unique_id": f"c{i}", "x": "y" * 50}).encode() + b"\n" for i in range(3000)
    )
    blob = bytearray(_compress(kind, data))
    if cut == "truncated":
        blob = blob[: len(blob) * 2 // 3]
    else:
        middle = len(blob) // 3
        blob[middle : middle + 8] = bytes(b ^ 0x5A for b in blob[middle : middle + 8])
    packed = tmp_path / f"bad.jsonl.{kind}"
    packed.write_bytes(bytes(blob))
    out = tmp_path / "out"
    code, output = iatc("materialize", run_small, "--instances", packed, "-o", out)
    assert code == exitcodes.USAGE, output
    assert str(packed) in output and reason in output
    assert not (out / "train.jsonl").exists() and not (out / "manifest.json").exists()
    assert [p for p in out.rglob("*") if p.name.endswith(".partial")] == []


def test_zstd_without_the_extra_names_it(
    run_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packed = tmp_path / "instances.jsonl.zst"
    packed.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
    monkeypatch.setitem(sys.modules, "zstandard", None)  # `import zstandard` fails
    with pytest.raises(UsageError, match=r"zstandard package: pip install 'instraug-dsl\[zstd\]'"):
        build(run_small, packed, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_parquet_without_pyarrow_names_the_extra(
    run_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data.parquet"
    pq.write_table(to_table(good_records()), data)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(UsageError, match=r"needs pyarrow: pip install 'instraug-dsl\[parquet\]'"):
        build(run_small, data, tmp_path / "out")


# ----------------------------------------------------------------- Parquet and Arrow


def _write(kind: str, table: Any, target: Path) -> tuple[Path, dict[str, Path]]:
    """Write ``table`` as ``kind``; the path to pass and the data files (for the hash)."""
    if kind == "parquet":
        path = target / "data.parquet"
        pq.write_table(table, path, row_group_size=4)  # several row groups
        return path, {}
    if kind == "parquet-shards":
        folder = target / "shards"
        folder.mkdir()
        files = {}
        for i, start in enumerate(range(0, table.num_rows, 6)):
            files[f"part-{i:05d}.parquet"] = folder / f"part-{i:05d}.parquet"
            pq.write_table(table.slice(start, 6), files[f"part-{i:05d}.parquet"])
        (folder / "README.md").write_text("not data")  # other files are not read
        return folder, files
    if kind in ("arrow-file", "arrow-stream"):
        path = target / "data.arrow"
        opener = pa.ipc.new_file if kind == "arrow-file" else pa.ipc.new_stream
        with pa.OSFile(str(path), "wb") as sink, opener(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=5):
                writer.write_batch(batch)
        return path, {}
    assert kind == "save_to_disk"
    datasets = pytest.importorskip("datasets")
    folder = target / "saved"
    try:
        dataset = datasets.Dataset(table)
    except (TypeError, ValueError) as exc:  # a `datasets` without the JSON feature
        pytest.skip(f"this datasets cannot hold JSON columns: {exc}")
    dataset.save_to_disk(str(folder), num_shards=3)
    return folder, {p.name: p for p in folder.glob("*.arrow")}


@pytest.mark.parametrize(
    ("kind", "fmt"),
    [
        ("parquet", "parquet"),
        ("parquet-shards", "parquet"),
        ("arrow-file", "arrow"),
        ("arrow-stream", "arrow"),
        ("save_to_disk", "save_to_disk"),
    ],
)
def test_columnar_inputs_give_the_jsonl_dataset(
    run_small: Path, reference: Path, tmp_path: Path, kind: str, fmt: str
) -> None:
    """GIVEN the fixture's records as Parquet (a file, a folder of shards), Arrow (file or
    stream) or a save_to_disk folder
    WHEN materialized with the same seed
    THEN the dataset is byte-identical to the JSON Lines one and the manifest records the
    format, the row count and the hash (of the file, or of the folder's data files)."""
    path, files = _write(kind, to_table(good_records()), tmp_path)
    assert detect(path).format == fmt
    manifest = build(run_small, path, tmp_path / "out", seed=5)
    assert_same_dataset(tmp_path / "out", reference)
    ref = manifest.inputs.instances
    assert (ref.format, ref.lines, ref.path) == (fmt, GOOD_LINES, str(path))
    if files:
        assert ref.files == {name: sha256_file(p) for name, p in sorted(files.items())}
        assert ref.sha256 == listing_sha(files)
    else:
        assert ref.files is None and ref.sha256 == sha256_file(path)


def test_cli_reads_parquet(run_small: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.parquet"
    pq.write_table(to_table(good_records()), data)
    code, output = iatc("materialize", run_small, "--instances", data, "-o", tmp_path / "out")
    assert code == exitcodes.OK, output
    assert "wrote 11 rows" in output and "3 errors" in output


def test_native_arrow_types_are_records(run_small: Path, tmp_path: Path) -> None:
    """Structs are objects, lists are lists, numbers stay numbers: a bbox list of doubles,
    a struct path in a slot, timestamps and decimals in a carried column as text."""
    import datetime
    import decimal

    table = pa.table(
        {
            "unique_id": ["m-1", "s-1"],
            "task_name": ["object_match", "wikihow_next_step"],
            "region": pa.array(
                [[[1.5, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0]], None],
                pa.list_(pa.list_(pa.float64())),
            ),
            "options": [["same", "different"], None],
            "meta_data": pa.array(
                [None, {"method": "Kites"}], pa.struct([("method", pa.string())])
            ),
            "text": [None, "Fold it."],
            "target": ["same", "Glue it."],
            "when": pa.array([datetime.datetime(2024, 5, 1, 12, 30), None], pa.timestamp("s")),
            "price": pa.array([decimal.Decimal("1.25"), None], pa.decimal128(5, 2)),
        }
    )
    data = tmp_path / "native.parquet"
    pq.write_table(table, data)
    options = {"carry": ("when:json", "price:json"), "raw_share": 1.0, "shuffle_options": False}
    manifest = build(run_small, data, tmp_path / "out", **options)
    assert manifest.counts.errors == 0 and manifest.counts.written == 2
    match, step = rows(tmp_path / "out" / "train.jsonl")
    region = "1.5 2.0 3.0 4.0"
    assert region in match["prompt"] or "1.5 2.0 3.0 4.0||||0.0 1.0 2.0 3.0" in match["prompt"]
    assert "Kites" in step["prompt"]
    assert (match["when"], match["price"]) == ('"2024-05-01T12:30:00"', '"1.25"')


# ----------------------------------------------------------------- hostile rows


def _hostile_table() -> tuple[Any, dict[int, tuple[str, str | None]]]:
    """Rows between good ones that must each be an error row: (row) -> (reason, field)."""
    good = {
        "unique_id": "ok",
        "task_name": "object_match",
        "region": [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]],
        "options": ["same", "different"],
        "meta_data": None,
        "question": None,
        "target": "same",
        "score": float("nan"),  # read by nothing: never an error
    }
    rows_: list[dict[str, Any]] = []
    expected: dict[int, tuple[str, str | None]] = {}

    def add(row: dict[str, Any], reason: str | None = None, field: str | None = None) -> None:
        rows_.append({**good, "unique_id": f"r{len(rows_) + 1}", **row})
        if reason is not None:
            expected[len(rows_)] = (reason, field)

    add({})
    add({"region": [[float("nan"), 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]}, "NaN", "region[0][0]")
    add(
        {"region": [[1.0, float("inf"), 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]},
        "Infinity",
        "region[0][1]",
    )
    add(
        {"region": [[1.0, 2.0, 3.0, -float("inf")], [5.0, 6.0, 7.0, 8.0]]},
        "-Infinity",
        "region[0][3]",
    )
    add({"task_name": "VQA_color", "question": "BAD-UTF8"}, "lone surrogate", "question")
    add({"meta_data": "NaN"}, "NaN", "meta_data")
    add({"meta_data": '{"a": 1e999}'}, "too large", "meta_data")
    add({"meta_data": '{"a": "\\ud800"}'}, "lone surrogate", "meta_data")
    add({"meta_data": "{not json"}, "not valid JSON", "meta_data")
    add({})
    table = pa.table(
        {
            "unique_id": [r["unique_id"] for r in rows_],
            "task_name": [r["task_name"] for r in rows_],
            "region": pa.array([r["region"] for r in rows_], pa.list_(pa.list_(pa.float64()))),
            "options": [r["options"] for r in rows_],
            # a lone surrogate cannot be a Python str: write its UTF-8-style bytes unchecked
            "question": pa.array(
                [
                    None
                    if r["question"] is None
                    else (
                        b"\xed\xa0\x80" if r["question"] == "BAD-UTF8" else r["question"].encode()
                    )
                    for r in rows_
                ],
                pa.binary(),
            ).view(pa.string()),
            "meta_data": _json_column_raw([r["meta_data"] for r in rows_]),
            "target": [r["target"] for r in rows_],
            "score": pa.array([r["score"] for r in rows_], pa.float64()),
        }
    )
    return table, expected


def _json_column_raw(texts: list[str | None]) -> Any:
    """An ``arrow.json`` column of the given texts, valid JSON or not."""
    if not hasattr(pa, "json_"):
        pytest.skip("this pyarrow has no JSON extension type")
    return pa.ExtensionArray.from_storage(pa.json_(), pa.array(texts, pa.string()))


@pytest.mark.parametrize("kind", ["parquet", "arrow-stream", "save_to_disk"])
def test_hostile_rows_are_error_rows_with_their_row_number(
    run_small: Path, tmp_path: Path, kind: str
) -> None:
    """GIVEN Parquet/Arrow rows holding NaN, Infinity, a string that is not UTF-8 (a lone
    surrogate), JSON text with NaN, 1e999 or a lone surrogate, between good rows
    WHEN materialized through the CLI (non-strict)
    THEN exit 0, each is an error row with its row number, field and reason, the good
    rows are written, a NaN in a column no task reads is not an error, and every output
    file is strict JSON."""
    table, expected = _hostile_table()
    if kind == "save_to_disk":
        datasets = pytest.importorskip("datasets")
        path = tmp_path / "saved"
        try:
            datasets.Dataset(table).save_to_disk(str(path))
        except Exception as exc:  # the bad UTF-8 may be refused by `datasets` itself
            pytest.skip(f"datasets refuses the table: {exc}")
    else:
        path, _ = _write(kind, table, tmp_path)
    out = tmp_path / "out"
    code, output = iatc("materialize", run_small, "--instances", path, "-o", out)
    assert code == exitcodes.OK, output
    errors = rows(out / "errors.jsonl")
    assert [e["line"] for e in errors] == sorted(expected), errors
    for error in errors:
        reason, field = expected[error["line"]]
        assert reason.lower() in error["reason"].lower(), error
        assert error["field"] == field, error
        assert error["unique_id"] is None and error["task"] is None
    assert [r["unique_id"] for r in rows(out / "train.jsonl")] == ["r1", f"r{table.num_rows}"]
    assert_strict_json(out)


def test_strict_names_the_hostile_row(run_small: Path, tmp_path: Path) -> None:
    table, expected = _hostile_table()
    data = tmp_path / "data.parquet"
    pq.write_table(table, data)
    code, output = iatc(
        "materialize", run_small, "--instances", data, "-o", tmp_path / "o", "--strict"
    )
    assert code == exitcodes.DIAGNOSTICS, output
    first = min(expected)
    assert f"{data}:{first}: a record: region[0][0]: NaN is not a JSON number" in output
    assert not (tmp_path / "o" / "train.jsonl").exists()


def test_binary_values_are_never_rendered(run_small: Path, tmp_path: Path) -> None:
    """A binary column a slot reads makes that row an error ("got bytes"); a carried one is
    null; a binary column nothing reads (image bytes) is never decoded."""
    table = pa.table(
        {
            "unique_id": ["c-1", "cap-1"],
            "task_name": ["VQA_color", "image_caption"],
            "question": pa.array([b"What colour?", b"x"], pa.binary()),
            "options": [["red", "blue"], None],
            "target": ["red", "A cat."],
            "blob": pa.array([b"\x89PNG", b"\xff\xd8"], pa.binary()),
            "image": pa.array(
                [{"bytes": None, "path": "a.png"}, {"bytes": b"\xff\xd8", "path": "b.png"}],
                pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
            ),
        }
    )
    data = tmp_path / "data.parquet"
    pq.write_table(table, data)
    carry = ("blob:json", "image.path", "img=image:json")
    manifest = build(run_small, data, tmp_path / "out", carry=carry)
    errors = rows(tmp_path / "out" / "errors.jsonl")
    assert [(e["line"], e["field"], e["reason"]) for e in errors] == [
        (1, "question", "expected text, got bytes")
    ]
    (caption,) = rows(tmp_path / "out" / "train.jsonl")
    assert (caption["blob"], caption["image.path"], caption["img"]) == (None, "b.png", None)
    assert manifest.counts.written == 1


def test_columnar_reading_is_streamed_and_projected(tmp_path: Path) -> None:
    """Parquet is read a batch at a time (the first record arrives before the file is read)
    and only the columns asked for are decoded."""
    n = BATCH_ROWS * 5
    table = pa.table(
        {
            "task_name": ["t"] * n,
            "unique_id": [f"u{i}" for i in range(n)],
            "big": pa.array([b"x" * 100] * n, pa.binary()),
        }
    )
    data = tmp_path / "many.parquet"
    pq.write_table(table, data, row_group_size=BATCH_ROWS)
    reader = InstanceReader(detect(data), columns={"task_name", "unique_id"})
    stream = iter(reader)
    number, first = next(stream)
    assert number == 1 and first == {"task_name": "t", "unique_id": "u0"}
    assert reader.rows <= BATCH_ROWS
    assert sum(1 for _ in stream) == n - 1 and reader.rows == n


# ----------------------------------------------------------------- telling formats apart


def test_a_name_that_lies_about_the_content_is_refused(run_small: Path, tmp_path: Path) -> None:
    fake = tmp_path / "data.parquet"
    fake.write_bytes(INSTANCES.read_bytes())
    with pytest.raises(DataError, match="file name says Parquet, but its first bytes"):
        build(run_small, fake, tmp_path / "o")
    fake_gz = tmp_path / "data.jsonl.gz"
    pq.write_table(to_table(good_records()), fake_gz)
    with pytest.raises(DataError, match=r"says gzip.*looks like Parquet"):
        build(run_small, fake_gz, tmp_path / "o")
    # content decides when the name says nothing...
    quiet = tmp_path / "instances.data"
    quiet.write_bytes(gzip.compress(INSTANCES.read_bytes()))
    assert detect(quiet).format == "jsonl.gz"
    pq.write_table(to_table(good_records()), tmp_path / "instances")
    assert detect(tmp_path / "instances").format == "parquet"
    # ...but a .jsonl name is JSON Lines whatever the bytes: each bad line is an error row
    for head in (b"PAR1", b"ARROW1", b"\x1f\x8b", b"\x28\xb5\x2f\xfd"):
        lying = tmp_path / "lying.jsonl"
        lying.write_bytes(head + b"\n" + INSTANCES.read_bytes())
        manifest = build(run_small, lying, tmp_path / "lying")
        assert manifest.inputs.instances.format == "jsonl"
        assert manifest.counts.written == 11 and manifest.counts.errors == 6


def test_folders_that_are_not_one_dataset_are_refused(run_small: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="must hold Parquet or Arrow shards"):
        detect(empty)
    nested = tmp_path / "hub"
    (nested / "data").mkdir(parents=True)
    pq.write_table(to_table(good_records()), nested / "data" / "train-0.parquet")
    with pytest.raises(UsageError, match=r"shards found in data: pass one of them"):
        detect(nested)
    simple = datasets.Dataset.from_dict({"task_name": ["image_caption"], "target": ["x"]})
    datasets.DatasetDict({"train": simple, "validation": simple}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(UsageError, match=r"DatasetDict .*splits: train, validation.*dd/train"):
        build(run_small, tmp_path / "dd", tmp_path / "o")
    manifest = build(run_small, tmp_path / "dd" / "train", tmp_path / "o")
    assert manifest.counts.written == 1
    assert manifest.inputs.instances.format == "save_to_disk"


@pytest.mark.parametrize("name", ["../secret.arrow", "/etc/passwd", "", "missing.arrow"])
def test_save_to_disk_state_cannot_point_outside(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": name}]}))
    with pytest.raises(DataError, match=r"state.json: _data_files\[0\]"):
        detect(folder)


def test_every_non_finite_float_spelling_is_named() -> None:
    """The reasons name the value the way JSON Lines errors do."""
    from instraug_dsl.dataset.sources import batch_records

    batch = pa.record_batch({"x": pa.array([math.nan, math.inf, -math.inf, 1.0])})
    found = [r.reason if hasattr(r, "reason") else r for _, r in batch_records(batch, 1)]
    assert found == [
        "NaN is not a JSON number",
        "Infinity is not a JSON number",
        "-Infinity is not a JSON number",
        {"x": 1.0},
    ]


# ----------------------------------------------------------------- any columnar row

_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
_BYTES = st.one_of(
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=20),
)
_JSON_TEXT = st.one_of(
    st.sampled_from(["NaN", "1e999", '"\\ud800"', "[1, 2", '{"a": -Infinity}', "{}", "null"]),
    st.text(max_size=20),
)


@st.composite
def _columnar_row(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "unique_id": draw(st.one_of(st.none(), st.text(max_size=8))),
        "task_name": draw(st.sampled_from(["object_match", "VQA_color", "nope", None])),
        "region": draw(st.one_of(st.none(), st.lists(st.lists(_FLOATS, max_size=4), max_size=3))),
        "question": draw(st.one_of(st.none(), _BYTES)),
        "options": draw(st.one_of(st.none(), st.lists(st.text(max_size=5), max_size=3))),
        "meta_data": draw(st.one_of(st.none(), _JSON_TEXT)),
        "target": draw(st.one_of(st.none(), st.text(max_size=5))),
    }


def _bad(row: dict[str, Any]) -> bool:
    """The oracle: a row that must be an error row whatever its task."""
    floats = [x for box in row["region"] or [] for x in box]
    if any(not math.isfinite(x) for x in floats):
        return True
    if row["question"] is not None:
        try:
            row["question"].decode("utf-8")
        except UnicodeDecodeError:
            return True
    if row["meta_data"] is not None:

        def refuse(name: str) -> Any:
            raise ValueError(name)

        try:
            value = json.loads(row["meta_data"], parse_constant=refuse)
            json.dumps(value).encode("utf-8")
            if "\\ud8" in row["meta_data"] or "\\udc" in row["meta_data"]:
                json.dumps(value, ensure_ascii=False).encode("utf-8")
            if any(isinstance(x, float) and not math.isfinite(x) for x in _walk(value)):
                return True
        except (ValueError, UnicodeEncodeError, RecursionError):
            return True
    return False


def _walk(value: Any) -> list[Any]:
    out, stack = [], [value]
    while stack:
        item = stack.pop()
        out.append(item)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


@settings(
    max_examples=min(100, settings.default.max_examples),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table_rows=st.lists(_columnar_row(), min_size=1, max_size=6))
def test_property_any_parquet_row_never_crashes_materialize(
    run_small: Path, table_rows: list[dict[str, Any]]
) -> None:
    """Any values in a Parquet file's columns: materialize never crashes, every output line
    is strict JSON, and every row holding a non-finite float, non-UTF-8 text or bad JSON
    text in a column the tasks read is an error row with its row number."""
    table = pa.table(
        {
            "unique_id": pa.array([r["unique_id"] for r in table_rows], pa.string()),
            "task_name": pa.array([r["task_name"] for r in table_rows], pa.string()),
            "region": pa.array([r["region"] for r in table_rows], pa.list_(pa.list_(pa.float64()))),
            "question": pa.array([r["question"] for r in table_rows], pa.binary()).view(
                pa.string()
            ),
            "options": pa.array([r["options"] for r in table_rows], pa.list_(pa.string())),
            "meta_data": _json_column_raw([r["meta_data"] for r in table_rows]),
            "target": pa.array([r["target"] for r in table_rows], pa.string()),
        }
    )
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data.parquet"
        pq.write_table(table, data)
        out = Path(scratch) / "out"
        manifest = build(run_small, data, out)
        assert_strict_json(out)
        reported = {e["line"] for e in rows(out / "errors.jsonl")}
        for number, row in enumerate(table_rows, start=1):
            if _bad(row):
                assert number in reported, (number, row)
        assert manifest.inputs.instances.lines == len(table_rows)
