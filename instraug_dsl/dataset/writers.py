"""Row writers for MIns+ output (JSON Lines, Parquet, trainer formats) and the dataset card.

Every file is written through :class:`~instraug_dsl.fsio.AtomicFile`: under a temporary
name, renamed into place by :meth:`commit`, so an interrupted or failed run never leaves a
truncated file that looks finished.  A MIns+ row has a fixed column order
(:func:`row_columns`: the fixed columns around the carried ones), and ``README.md`` next
to the data declares the splits and the features (the dataset-card convention HF
``datasets`` reads), so ``datasets.load_dataset(OUT)`` types every column correctly even
when the first tens of thousands of rows have ``null`` in a column.

Formats (``--format``), one file per split, ``{split}{suffix}``:

* ``jsonl`` / ``parquet``: the MIns+ rows as they are.
* ``messages`` (``.messages.jsonl``): chat rows in the TRL / HF chat-template convention.
* ``llava`` (``.llava.json``): LLaVA's conversation JSON (one JSON array, what LLaVA's
  ``LazySupervisedDataset`` reads with ``json.load``).
* ``ofa-tsv`` (``.ofa.tsv``): OFA's tab-separated rows, text escaped (:func:`tsv_escape`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from ..errors import OutputError, UsageError
from ..fsio import AtomicFile, describe_os_error, json_line

#: ``(name, dtype)`` of one output column.
Column = tuple[str, str]

#: The columns before the carried ones, and after them (prompt, target, provenance).
HEAD: Final = (("unique_id", "string"), ("task", "string"))
TAIL: Final = (
    ("prompt", "string"),
    ("target", "string"),
    ("instruction_id", "string"),
    ("instruction_kind", "string"),
    ("root", "string"),
    ("metaprompt", "string"),
    ("temperature", "float64"),
    ("model", "string"),
)
#: The columns of a MIns+ row with the default carry (``task_name``, ``image_path``).
COLUMNS: Final = (*HEAD, ("task_name", "string"), ("image_path", "string"), *TAIL)
FORMATS: Final = ("jsonl", "parquet", "messages", "llava", "ofa-tsv")
#: The file of a split is ``{split}{SUFFIXES[format]}``.
SUFFIXES: Final = {
    "jsonl": ".jsonl",
    "parquet": ".parquet",
    "messages": ".messages.jsonl",
    "llava": ".llava.json",
    "ofa-tsv": ".ofa.tsv",
}
#: Names a carried column cannot take in each format (written by the format itself).
RESERVED: Final = {
    "jsonl": (),
    "parquet": (),
    "messages": ("messages", "images"),
    "llava": ("id", "image", "conversations"),
    "ofa-tsv": (),
}
#: The columns of ``ofa-tsv``, in order (no header line: OFA selects columns by position).
OFA_COLUMNS: Final = (
    "uniq_id",
    "image",
    "prompt",
    "target",
    "task",
    "instruction_id",
    "instruction_kind",
)
_BATCH: Final = 4096  # rows per Parquet row group flush: bounds memory, not the input size


def row_columns(carried: Sequence[Column] = COLUMNS[2:4]) -> tuple[Column, ...]:
    """The columns of a MIns+ row carrying ``carried`` (default: today's two)."""
    return (*HEAD, *carried, *TAIL)


def reserved_names(fmt: str) -> tuple[str, ...]:
    """The column names a carried field cannot use with ``fmt``."""
    return tuple(name for name, _ in HEAD + TAIL) + RESERVED.get(fmt, ())


class RowWriter(Protocol):
    """Where rows go; ``commit`` makes the file visible, ``abort`` removes the partial file."""

    path: Path
    rows: int

    def write(self, row: dict[str, Any], image: str | None, key: str) -> None:
        """Write (or buffer) one MIns+ row; ``image`` is its image path, ``key`` its record
        id (``unique_id`` or ``line N``)."""

    def commit(self) -> None:
        """Finish the file and rename it into place."""

    def abort(self) -> None:
        """Discard the partial file."""


class JsonlWriter:
    """One JSON object per line, UTF-8, keys in the order given (deterministic bytes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._file = AtomicFile(path)

    def write(self, row: dict[str, Any], image: str | None = None, key: str = "") -> None:
        """Append one row (strict JSON: a non-finite number is a bug, never written)."""
        self._file.write(json_line(row, sort_keys=False) + "\n")
        self.rows += 1

    def commit(self) -> None:
        """Close and rename into place."""
        self._file.commit()

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._file.abort()


class ParquetWriter:
    """Parquet with a fixed schema (``columns``), flushed every few thousand rows."""

    def __init__(self, path: Path, columns: Sequence[Column] = COLUMNS) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise UsageError(
                "--format parquet needs pyarrow: pip install 'instraug-dsl[parquet]'"
            ) from None
        self.path = path
        self.rows = 0
        self._file = AtomicFile(path, open_now=False)
        self._pa = pa
        self._schema = arrow_schema(columns)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(str(self._file.tmp), self._schema)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from None
        self._rows: list[dict[str, Any]] = []

    def _flush(self) -> None:
        if self._rows:
            table = self._pa.Table.from_pylist(self._rows, schema=self._schema)
            try:
                self._writer.write_table(table)
            except OSError as exc:
                self.abort()
                raise OutputError(f"cannot write {self.path}: {describe_os_error(exc)}") from None
            self._rows = []

    def write(self, row: dict[str, Any], image: str | None = None, key: str = "") -> None:
        """Buffer one row (flushes a row group when the batch is full)."""
        self._rows.append(row)
        self.rows += 1
        if len(self._rows) >= _BATCH:
            self._flush()

    def commit(self) -> None:
        """Flush, close and rename into place."""
        self._flush()
        try:
            self._writer.close()
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {describe_os_error(exc)}") from None
        self._file.commit()

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._rows = []
        try:
            self._writer.close()
        except OSError:
            pass  # the partial file goes anyway
        self._file.abort()


def _arrow_type(pa: Any, kind: str) -> Any:
    return pa.bool_() if kind == "bool" else getattr(pa, kind)()


def arrow_schema(columns: Sequence[Column]) -> Any:
    """The Arrow schema of rows with ``columns`` (what the Parquet files are written with)."""
    import pyarrow as pa

    return pa.schema([(name, _arrow_type(pa, kind)) for name, kind in columns])


def _provenance(row: dict[str, Any]) -> dict[str, Any]:
    """The row's columns except the prompt and target (they are in the conversation)."""
    return {k: v for k, v in row.items() if k not in ("prompt", "target")}


class MessagesWriter:
    """Chat rows in the TRL / HF chat-template convention, plus provenance columns.

    TRL's dataset formats (https://huggingface.co/docs/trl/dataset_formats, "Vision
    datasets"): a conversational *vision* dataset has an ``images`` column and every
    message's ``content`` is a list of typed parts (``{"type": "image"}``,
    ``{"type": "text", "text": ...}``), while a *text* dataset's ``content`` is a plain
    string.  A column has one type (``datasets`` cannot load a file whose ``content`` is
    sometimes a string and sometimes a list), so the choice is made for the whole dataset:
    if any row of any split has an image, every row uses the parts form (a row without an
    image gets ``"images": []`` and no image part); otherwise every row is plain text and
    there is no ``images`` column.  Rows are written in the parts form and rewritten once
    (streaming, line by line) at :meth:`commit` when the dataset turned out to be text only.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self.images = 0  # rows with an image
        self.vision: bool | None = None  # set for all splits before commit
        self._file = AtomicFile(path)

    def write(self, row: dict[str, Any], image: str | None, key: str) -> None:
        """Append one chat row (parts form)."""
        user: list[dict[str, str]] = [{"type": "image"}] if image is not None else []
        user.append({"type": "text", "text": row["prompt"]})
        record = {
            "messages": [
                {"role": "user", "content": user},
                {"role": "assistant", "content": [{"type": "text", "text": row["target"]}]},
            ],
            "images": [image] if image is not None else [],
            **_provenance(row),
        }
        self._file.write(json_line(record, sort_keys=False) + "\n")
        self.rows += 1
        self.images += image is not None

    def commit(self) -> None:
        """Rewrite as plain text when no split had an image, then rename into place."""
        vision = self.vision if self.vision is not None else self.images > 0
        if not vision:
            try:
                self._file.handle.close()
                self._to_text()
            except OSError as exc:
                self.abort()
                raise OutputError(f"cannot write {self.path}: {describe_os_error(exc)}") from None
        self._file.commit()

    def _to_text(self) -> None:
        source = self._file.tmp
        text = source.with_name(source.name + ".text")
        try:
            with source.open("rb") as fh, text.open("w", encoding="utf-8", newline="\n") as out:
                for line in fh:
                    record = json.loads(line)
                    record.pop("images")
                    for message in record["messages"]:
                        message["content"] = message["content"][-1]["text"]
                    out.write(json_line(record, sort_keys=False) + "\n")
            os.replace(text, source)
        finally:
            text.unlink(missing_ok=True)

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._file.abort()


class LlavaWriter:
    """LLaVA's conversation format: one JSON array of
    ``{"id", "image", "conversations": [{"from": "human", "value": "<image>\\nPROMPT"},
    {"from": "gpt", "value": TARGET}]}`` objects (LLaVA's ``LazySupervisedDataset`` reads the
    file with ``json.load``).  A row without an image has no ``image`` key and no
    ``<image>`` line, as in LLaVA's own text-only data.  Written a row at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._file = AtomicFile(path)
        self._file.write("[")

    def write(self, row: dict[str, Any], image: str | None, key: str) -> None:
        """Append one conversation."""
        human = row["prompt"] if image is None else "<image>\n" + row["prompt"]
        record: dict[str, Any] = {"id": row["unique_id"] or key}
        if image is not None:
            record["image"] = image
        record["conversations"] = [
            {"from": "human", "value": human},
            {"from": "gpt", "value": row["target"]},
        ]
        record.update(_provenance(row))
        self._file.write(("\n" if self.rows == 0 else ",\n") + json_line(record, sort_keys=False))
        self.rows += 1

    def commit(self) -> None:
        """Close the array and rename into place."""
        self._file.write("\n]\n")
        self._file.commit()

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._file.abort()


# Characters a line-based reader could take for a line end or a field separator.
_TSV_SPECIAL = re.compile("[\\\\\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_TSV_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_TSV_ESCAPE = re.compile(r"\\(\\|t|n|r|u[0-9a-fA-F]{4})")
_TSV_UNNAMED = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def tsv_escape(text: str) -> str:
    """``text`` as one TSV field: ``\\`` → ``\\\\``, tab → ``\\t``, newline → ``\\n``, CR →
    ``\\r``, any other character ``str.splitlines`` breaks on → ``\\uXXXX``.  Quotes stay
    as they are (OFA's reader splits on tabs and knows no quoting)."""
    return _TSV_SPECIAL.sub(lambda m: _TSV_NAMED.get(m[0]) or f"\\u{ord(m[0]):04x}", text)


def tsv_unescape(field: str) -> str:
    """The inverse of :func:`tsv_escape`."""

    def one(match: re.Match[str]) -> str:
        code = match[1]
        return _TSV_UNNAMED[code] if len(code) == 1 else chr(int(code[1:], 16))

    return _TSV_ESCAPE.sub(one, field)


class OfaTsvWriter:
    """OFA's TSV: one line per row, :data:`OFA_COLUMNS` in order, no header, every field
    escaped by :func:`tsv_escape`; ``null`` is an empty field.  The ``image`` column holds
    the image *path* as the record gives it (OFA's stock readers expect base64 there; see
    docs/dataset.md for the conversion)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._file = AtomicFile(path)

    def write(self, row: dict[str, Any], image: str | None, key: str) -> None:
        """Append one line."""
        fields = (
            row["unique_id"] or key,
            image or "",
            row["prompt"],
            row["target"],
            row["task"],
            row["instruction_id"],
            row["instruction_kind"],
        )
        self._file.write("\t".join(tsv_escape(f) for f in fields) + "\n")
        self.rows += 1

    def commit(self) -> None:
        """Close and rename into place."""
        self._file.commit()

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._file.abort()


def open_writer(path: Path, fmt: str, columns: Sequence[Column] = COLUMNS) -> RowWriter:
    """A writer for ``fmt`` at ``path`` (``columns``: the MIns+ row's, for Parquet)."""
    if fmt == "jsonl":
        return JsonlWriter(path)
    if fmt == "parquet":
        return ParquetWriter(path, columns)
    if fmt == "messages":
        return MessagesWriter(path)
    if fmt == "llava":
        return LlavaWriter(path)
    if fmt == "ofa-tsv":
        return OfaTsvWriter(path)
    raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")


# ------------------------------------------------------------------ dataset card


@dataclass(frozen=True, slots=True)
class ListOf:
    """A list feature of ``item`` (a dtype, or a struct given as a tuple of features)."""

    item: str | tuple[tuple[str, Any], ...]


#: A feature of the card: ``(name, dtype | ListOf | struct)``, struct = tuple of features.
Feature = tuple[str, Any]

_MESSAGE_PARTS: Final = ListOf((("type", "string"), ("text", "string")))


def output_features(fmt: str, columns: Sequence[Column], *, vision: bool) -> tuple[Feature, ...]:
    """The features of one row of ``fmt`` (``columns``: the MIns+ row's)."""
    provenance = tuple(c for c in columns if c[0] not in ("prompt", "target"))
    if fmt == "messages":
        content = _MESSAGE_PARTS if vision else "string"
        chat: tuple[Feature, ...] = (
            ("messages", ListOf((("role", "string"), ("content", content)))),
        )
        images: tuple[Feature, ...] = (("images", ListOf("string")),) if vision else ()
        return chat + images + provenance
    if fmt == "llava":
        turns = ListOf((("from", "string"), ("value", "string")))
        return (("id", "string"), ("image", "string"), ("conversations", turns), *provenance)
    if fmt == "ofa-tsv":
        return tuple((name, "string") for name in OFA_COLUMNS)
    return tuple(columns)


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


def _yaml_name(name: str) -> str:
    return name if _PLAIN_NAME.match(name) else json.dumps(name, ensure_ascii=False)


def _feature_lines(features: Sequence[Feature], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for name, kind in features:
        lines.append(f"{pad}- name: {_yaml_name(name)}")
        lines += _type_lines(kind, indent + 2)
    return lines


def _type_lines(kind: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(kind, str):
        return [f"{pad}dtype: {kind}"]
    if isinstance(kind, ListOf):
        if isinstance(kind.item, str):
            return [f"{pad}list: {kind.item}"]
        return [f"{pad}list:", *_feature_lines(kind.item, indent)]
    return [f"{pad}struct:", *_feature_lines(kind, indent)]


def dataset_card(
    splits: dict[str, str],
    title: str,
    summary: str,
    features: Sequence[Feature] = COLUMNS,
    config: Sequence[str] = (),
) -> str:
    """``README.md`` for the dataset folder: YAML front matter with the data files per split,
    builder options (``config``: YAML lines of the default config) and the features, then
    a short description (no timestamps: deterministic bytes)."""
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, filename in splits.items():
        lines += [f"  - split: {split}", f"    path: {filename}"]
    lines += [f"  {line}" for line in config]
    lines += ["dataset_info:", "  config_name: default", "  features:"]
    lines += _feature_lines(features, 2)
    lines += ["---", "", f"# {title}", "", summary, ""]
    return "\n".join(lines)
