"""Row writers for MIns+ output: JSON Lines and Parquet, written atomically.

Every file is written under a ``.partial`` name and renamed into place by
:meth:`commit`, so an interrupted or failed run never leaves a truncated file that looks
finished.  Both formats load with ``datasets.load_dataset("json"|"parquet", ...)``: the
column set and order are fixed (:data:`COLUMNS`), scalar columns only, so Arrow's schema
inference never meets conflicting nested types across tasks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final, Protocol

from ..errors import ProviderError

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

    def write(self, row: dict[str, Any]) -> None:
        """Write (or buffer) one row."""

    def commit(self) -> None:
        """Finish the file and rename it into place."""

    def abort(self) -> None:
        """Discard the partial file."""


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class JsonlWriter:
    """One JSON object per line, UTF-8, keys in the order given (deterministic bytes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = _partial(path)
        self._fh = self._tmp.open("w", encoding="utf-8", newline="\n")

    def write(self, row: dict[str, Any]) -> None:
        """Append one row."""
        self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        """Close and rename into place."""
        self._fh.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._fh.close()
        self._tmp.unlink(missing_ok=True)


class ParquetWriter:
    """Parquet with the fixed :data:`COLUMNS` schema, flushed every few thousand rows."""

    def __init__(self, path: Path) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ProviderError(
                "--format parquet needs pyarrow: pip install 'instraug-dsl[parquet]'"
            ) from None
        self.path = path
        self._tmp = _partial(path)
        self._pa = pa
        self._schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in COLUMNS])
        self._writer = pq.ParquetWriter(str(self._tmp), self._schema)
        self._rows: list[dict[str, Any]] = []

    def _flush(self) -> None:
        if self._rows:
            table = self._pa.Table.from_pylist(self._rows, schema=self._schema)
            self._writer.write_table(table)
            self._rows = []

    def write(self, row: dict[str, Any]) -> None:
        """Buffer one row (flushes a row group when the batch is full)."""
        self._rows.append(row)
        if len(self._rows) >= _BATCH:
            self._flush()

    def commit(self) -> None:
        """Flush, close and rename into place."""
        self._flush()
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Close and delete the partial file."""
        self._rows = []
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def open_writer(path: Path, fmt: str) -> RowWriter:
    """A writer for ``fmt`` (``jsonl`` or ``parquet``) at ``path``."""
    if fmt == "jsonl":
        return JsonlWriter(path)
    if fmt == "parquet":
        return ParquetWriter(path)
    raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
