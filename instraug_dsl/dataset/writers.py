"""Row writers for MIns+ output (JSON Lines and Parquet) and the dataset card.

Every file is written through :class:`~instraug_dsl.fsio.AtomicFile`: under a temporary
name, renamed into place by :meth:`commit`, so an interrupted or failed run never leaves a
truncated file that looks finished.  The column set and order are fixed (:data:`COLUMNS`),
and ``README.md`` next to the data declares the splits and the features (the dataset-card
convention HF ``datasets`` reads), so ``datasets.load_dataset(OUT)`` types every column
correctly even when the first tens of thousands of rows have ``null`` in a column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, Protocol

from ..errors import OutputError, UsageError
from ..fsio import AtomicFile, describe_os_error, json_line

#: The columns of a MIns+ row, in order, with their Arrow types.
COLUMNS: Final = (
    ("unique_id", "string"),
    ("task", "string"),
    ("task_name", "string"),
    ("image_path", "string"),
    ("prompt", "string"),
    ("target", "string"),
    ("instruction_id", "string"),
    ("instruction_kind", "string"),
    ("root", "string"),
    ("metaprompt", "string"),
    ("temperature", "float64"),
    ("model", "string"),
)
FORMATS: Final = ("jsonl", "parquet")
_BATCH: Final = 4096  # rows per Parquet row group flush: bounds memory, not the input size


class RowWriter(Protocol):
    """Where rows go; ``commit`` makes the file visible, ``abort`` removes the partial file."""

    path: Path
    rows: int

    def write(self, row: dict[str, Any]) -> None:
        """Write (or buffer) one row."""

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

    def write(self, row: dict[str, Any]) -> None:
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
    """Parquet with the fixed :data:`COLUMNS` schema, flushed every few thousand rows."""

    def __init__(self, path: Path) -> None:
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
        self._schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS])
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

    def write(self, row: dict[str, Any]) -> None:
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


def open_writer(path: Path, fmt: str) -> RowWriter:
    """A writer for ``fmt`` (``jsonl`` or ``parquet``) at ``path``."""
    if fmt == "jsonl":
        return JsonlWriter(path)
    if fmt == "parquet":
        return ParquetWriter(path)
    raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def dataset_card(splits: dict[str, str], title: str, summary: str) -> str:
    """``README.md`` for the dataset folder: YAML front matter with the data files per split
    and the features, then a short description (no timestamps: deterministic bytes)."""
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, filename in splits.items():
        lines += [f"  - split: {split}", f"    path: {filename}"]
    lines += ["dataset_info:", "  config_name: default", "  features:"]
    for name, kind in COLUMNS:
        lines += [f"  - name: {name}", f"    dtype: {kind}"]
    lines += ["---", "", f"# {title}", "", summary, ""]
    return "\n".join(lines)
