"""Instance files in every supported format, read as a stream of records.

``iatc materialize --instances PATH`` accepts:

=================  ==========================================================================
``jsonl``          MultiInstruct JSON Lines (one JSON object per line)
``jsonl.gz``       the same, gzip-compressed (standard library)
``jsonl.zst``      the same, zstd-compressed (the ``zstandard`` package: the ``[zstd]`` extra)
``parquet``        a Parquet file, or a folder of Parquet shards (``pyarrow``: ``[parquet]``)
``arrow``          an Arrow IPC file or stream (``.arrow``), or a folder of them
``save_to_disk``   a folder written by HF ``Dataset.save_to_disk`` (``state.json`` + shards)
=================  ==========================================================================

A file named ``.jsonl`` (``.ndjson``, ``.json``) is JSON Lines whatever its bytes hold (a
line that is not a JSON object is an error row, as always).  Otherwise the format is told
by the content (magic bytes: ``PAR1``, ``ARROW1``, the Arrow stream marker, gzip's
``1f 8b``, zstd's ``28 b5 2f fd``; JSON Lines when none matches) and, for folders, by the
files they hold; a file whose extension promises a format its bytes do not have is refused.

Every format yields the same thing: ``(row number, record or LineError)``, with the
hardened semantics of :func:`~instraug_dsl.dataset.records.iter_records`.  A JSON line
that is not a strict JSON object, a Parquet/Arrow row holding ``NaN``/``Infinity``, a
string that is not UTF-8 (a lone surrogate) or a value with no JSON form is a
:class:`LineError` with its row number, field and reason, never a crash or a bad output row.
Row numbers count from 1 over the whole input (shards in reading order).

Memory stays bounded: JSON Lines (compressed or not) are read a line at a time; Parquet
and Arrow a record batch (at most :data:`BATCH_ROWS` rows) at a time, and only the
columns the tasks can read (``columns=``) are decoded, so an image-bytes column is
never touched.  Binary values of the columns read stay ``bytes`` in the record: a slot
that reads one is an error row ("expected text, got bytes"), a carried one is ``null``.

The manifest's hash is the SHA-256 of the file as stored (compressed bytes included); for
a folder it is the SHA-256 of the ``sha256sum``-style listing of its data files,
``"<sha256>  <relative path>\\n"`` in sorted path order.
"""

from __future__ import annotations

import datetime
import decimal
import gzip
import hashlib
import io
import math
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from ..errors import DataError, UsageError
from ..fsio import describe_os_error, read_json, sha256_file
from ..lang.model import PathKey
from .records import LineError, dotted, iter_lines, iter_records, parse_line, strict_loads

INPUT_FORMATS: Final = ("jsonl", "jsonl.gz", "jsonl.zst", "parquet", "arrow", "save_to_disk")
#: Rows per record batch read from Parquet (Arrow files keep the batches they were written in).
BATCH_ROWS: Final = 1024
_CHUNK: Final = 1 << 16  # compressed bytes read at a time
_ZSTD_CHUNK: Final = 1 << 10  # zstd input per decompress call: bounds one call's output
_MAGIC: Final = (
    (b"PAR1", "parquet"),
    (b"ARROW1", "arrow"),
    (b"\xff\xff\xff\xff", "arrow"),  # an Arrow IPC stream (what `datasets` writes)
    (b"\x1f\x8b", "jsonl.gz"),
    (b"\x28\xb5\x2f\xfd", "jsonl.zst"),
)
_SUFFIXES: Final = (
    (".parquet", "parquet"),
    (".arrow", "arrow"),
    (".feather", "arrow"),
    (".gz", "jsonl.gz"),
    (".zst", "jsonl.zst"),
    (".zstd", "jsonl.zst"),
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".json", "jsonl"),
)
_PYARROW = "pip install 'instraug-dsl[parquet]'"
_LABELS: Final = {"parquet": "Parquet", "arrow": "Arrow", "jsonl.gz": "gzip", "jsonl.zst": "zstd"}


@dataclass(frozen=True, slots=True)
class InstanceSource:
    """What ``--instances`` names: its format and the data files, in reading order."""

    path: Path
    format: str
    files: tuple[Path, ...]

    @property
    def folder(self) -> bool:
        """True when ``path`` is a folder (of shards, or a ``save_to_disk`` dataset)."""
        return self.path.is_dir()


def _magic(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {describe_os_error(exc)}") from None
    return next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)


def _by_suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((fmt for suffix, fmt in _SUFFIXES if name.endswith(suffix)), None)


def detect(path: Path) -> InstanceSource:
    """The format of ``path`` (a file or folder); :class:`UsageError` when it has none we read."""
    if path.is_dir():
        return _detect_folder(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such instance file")
    claimed = _by_suffix(path)
    if claimed == "jsonl":  # read line by line whatever the bytes: a bad line is an error row
        return InstanceSource(path, "jsonl", (path,))
    found = _magic(path)
    if found is None and claimed == "arrow":
        found = "arrow"  # an Arrow stream of the old format (no continuation marker)
    if claimed is not None and found != claimed:
        looks = f" (it looks like {_LABELS[found]})" if found else ""
        raise DataError(
            f"{path}: the file name says {_LABELS[claimed]}, but its first bytes are not "
            f"{_LABELS[claimed]}'s{looks}"
        )
    return InstanceSource(path, found or "jsonl", (path,))


def _visible(folder: Path, suffix: str) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.name.endswith(suffix) and not p.name.startswith(".") and p.is_file()
    )


def _detect_folder(folder: Path) -> InstanceSource:
    if (folder / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in folder.iterdir() if (p / "state.json").is_file())
        example = folder / (splits[0] if splits else "train")
        raise UsageError(
            f"{folder} is a DatasetDict saved with save_to_disk (splits: "
            f"{', '.join(splits) or 'none'}); pass one split's folder, e.g. {example}"
        )
    if (folder / "state.json").is_file():
        return InstanceSource(folder, "save_to_disk", _state_files(folder))
    for suffix, fmt in ((".parquet", "parquet"), (".arrow", "arrow")):
        files = _visible(folder, suffix)
        if files:
            return InstanceSource(folder, fmt, tuple(files))
    nested = sorted(
        str(p.parent.relative_to(folder))
        for p in folder.rglob("*")
        if p.suffix in (".parquet", ".arrow") and p.parent != folder
    )
    hint = (
        f" (shards found in {', '.join(dict.fromkeys(nested))}: pass one of them)" if nested else ""
    )
    raise UsageError(
        f"{folder}: a folder of instances must hold Parquet or Arrow shards, or be a "
        f"Dataset.save_to_disk folder (state.json){hint}"
    )


def _state_files(folder: Path) -> tuple[Path, ...]:
    """The data files a ``save_to_disk`` folder's ``state.json`` lists, in dataset order."""
    state_path = folder / "state.json"
    try:
        state = read_json(state_path)
    except ValueError as exc:  # an integer beyond Python's digit limit
        raise DataError(f"{state_path}: not valid JSON ({_oneline(exc)})") from None
    entries = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{state_path}: `_data_files` must be a non-empty list")
    files = []
    for i, entry in enumerate(entries):
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise DataError(f"{state_path}: _data_files[{i}]: expected a file name in the folder")
        if not (folder / name).is_file():
            raise DataError(f"{state_path}: _data_files[{i}]: {name} does not exist")
        files.append(folder / name)
    return tuple(files)


def require(source: InstanceSource) -> None:
    """Import what reading ``source`` needs now, so a missing extra is a
    :class:`UsageError` before any output is opened."""
    if source.format == "jsonl.zst":
        _zstandard()
    elif source.format in ("parquet", "arrow", "save_to_disk"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError(
                f"{source.path}: reading {source.format} instances needs pyarrow: {_PYARROW}"
            ) from None


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError:
        raise UsageError(
            "reading zstd-compressed instances (.jsonl.zst) needs the zstandard package: "
            "pip install 'instraug-dsl[zstd]'"
        ) from None
    return zstandard


# ------------------------------------------------------------------ reading


class InstanceReader:
    """Iterate ``(row number, record or LineError)`` over a source; then the hashes.

    ``columns`` (top-level field names) limits what Parquet and Arrow inputs decode; JSON
    Lines are always parsed whole (a line is valid JSON or not).
    """

    def __init__(self, source: InstanceSource, columns: Collection[str] | None = None) -> None:
        self.source = source
        self.columns = None if columns is None else frozenset(columns)
        self.rows = 0
        self._digest = hashlib.sha256()
        self._hashes: dict[str, str] = {}

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
        fmt = self.source.format
        if fmt == "jsonl":
            for number, rec in iter_records(self.source.path, self._digest):
                self.rows = number
                yield number, rec
            return
        if fmt in ("jsonl.gz", "jsonl.zst"):
            for number, rec in iter_lines(self._compressed_lines()):
                self.rows = number
                yield number, rec
            return
        for file in self.source.files:
            self._hashes[self._name(file)] = sha256_file(file)
            yield from self._columnar(file)

    @property
    def sha256(self) -> str:
        """The input's SHA-256 (complete once iteration has finished)."""
        if not self.source.folder:
            if self._hashes:
                return next(iter(self._hashes.values()))
            return self._digest.hexdigest()
        listing = "".join(f"{sha}  {name}\n" for name, sha in sorted(self._hashes.items()))
        return hashlib.sha256(listing.encode("utf-8")).hexdigest()

    @property
    def file_hashes(self) -> dict[str, str]:
        """For a folder: each data file read (path relative to the folder) and its SHA-256."""
        return dict(sorted(self._hashes.items())) if self.source.folder else {}

    def _name(self, file: Path) -> str:
        return file.relative_to(self.source.path).as_posix() if self.source.folder else file.name

    def read_part(self, part: Part) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
        """The rows of one part of the input (:func:`split_input`), numbered as the whole
        input numbers them, with the same records and errors."""
        fmt = self.source.format
        if fmt == "jsonl":
            yield from _line_range(part)
        elif fmt in ("jsonl.gz", "jsonl.zst"):
            yield from self  # a compressed stream is one part
        else:
            self.rows = part.first - 1
            yield from self._columnar(part.file)

    # -- compressed JSON Lines

    def _compressed_lines(self) -> Iterator[bytes]:
        path = self.source.path
        lines = 0
        try:
            with path.open("rb") as raw:
                if self.source.format == "jsonl.gz":
                    stream: Iterator[bytes] = gzip.GzipFile(
                        fileobj=_Hashing(raw, self._digest), mode="rb"
                    )
                else:
                    stream = _zstd_lines(raw, self._digest)
                for line in stream:
                    lines += 1
                    yield line
        except (OSError, EOFError, zlib.error) as exc:
            kind = _LABELS[self.source.format]
            raise DataError(
                f"{path}: the {kind} stream is damaged after line {lines}: {_oneline(exc)}"
            ) from None

    # -- Parquet and Arrow

    def _columnar(self, file: Path) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
        require(self.source)
        import pyarrow as pa

        start = self.rows
        try:
            for batch in self._batches(file):
                first = self.rows + 1
                self.rows += batch.num_rows
                yield from batch_records(batch, first)
        except (pa.ArrowException, OSError, ValueError) as exc:
            if isinstance(exc, UnicodeDecodeError):  # a column name that is not UTF-8
                exc = ValueError("a column name is not UTF-8 text")
            raise DataError(
                f"{file}: cannot read it as {self.source.format} data after row "
                f"{self.rows - start} of the file: {_oneline(exc)}"
            ) from None

    def _batches(self, file: Path) -> Iterator[Any]:
        import pyarrow as pa

        if self.source.format == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(str(file)) as reader:
                names = reader.schema_arrow.names
                wanted = self._wanted(names)
                yield from reader.iter_batches(batch_size=BATCH_ROWS, columns=wanted)
            return
        with pa.memory_map(str(file)) as source:
            if source.read(6) == b"ARROW1":
                source.seek(0)
                reader = pa.ipc.open_file(source)
                batches: Iterator[Any] = (
                    reader.get_batch(i) for i in range(reader.num_record_batches)
                )
            else:
                source.seek(0)
                batches = iter(pa.ipc.open_stream(source))
            for batch in batches:
                wanted = self._wanted(batch.schema.names)
                yield batch if wanted is None else batch.select(wanted)

    def _wanted(self, names: list[str]) -> list[str] | None:
        if self.columns is None:
            return None
        return [n for n in dict.fromkeys(names) if n in self.columns]


# ------------------------------------------------------------------ parts


@dataclass(frozen=True, slots=True)
class Part:
    """A piece of the input that one reader takes (``--executor ray``): a whole file, or
    the lines of a JSON Lines file from byte ``start`` (a line's start) to byte ``end``;
    ``first`` is the number of its first row or line in the whole input."""

    file: Path
    first: int
    start: int = 0
    end: int | None = None


@dataclass(frozen=True, slots=True)
class SplitInput:
    """The parts of an input, and its hashes as the manifest records them."""

    parts: tuple[Part, ...]
    sha256: str
    file_hashes: dict[str, str]


def split_input(source: InstanceSource, part_bytes: int = 64 << 20) -> SplitInput:
    """Cut ``source`` into parts to read in parallel: a JSON Lines file into ranges of about
    ``part_bytes`` that start at a line, a folder into its files (a compressed stream stays
    one part).  One pass over the data here: the hashes, and the line or row numbers each
    part starts at."""
    fmt = source.format
    path = source.path.resolve()
    if fmt == "jsonl":
        lines, digest = _line_parts(path, max(1, part_bytes))
        return SplitInput(lines, digest, {})
    if fmt in ("jsonl.gz", "jsonl.zst"):
        return SplitInput((Part(path, 1),), sha256_file(path), {})
    require(source)
    parts: list[Part] = []
    hashes: dict[str, str] = {}
    first = 1
    for file in source.files:
        file = file.resolve()
        parts.append(Part(file, first))
        first += _row_count(file, fmt)
        name = file.relative_to(path).as_posix() if source.folder else file.name
        hashes[name] = sha256_file(file)
    if not source.folder:
        return SplitInput(tuple(parts), next(iter(hashes.values())), {})
    listing = "".join(f"{sha}  {name}\n" for name, sha in sorted(hashes.items()))
    digest = hashlib.sha256(listing.encode("utf-8")).hexdigest()
    return SplitInput(tuple(parts), digest, dict(sorted(hashes.items())))


def _line_parts(path: Path, part_bytes: int) -> tuple[tuple[Part, ...], str]:
    try:
        size = path.stat().st_size
        cuts: list[int] = []
        with path.open("rb") as fh:
            pos = part_bytes
            while pos < size:
                fh.seek(pos - 1)
                fh.readline()  # to the end of the line holding byte pos - 1
                cut = fh.tell()
                if cut >= size:
                    break
                cuts.append(cut)
                pos = cut + part_bytes
        digest = hashlib.sha256()
        lines_before: list[int] = []
        seen = offset = 0
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK * 16):
                digest.update(chunk)
                end = offset + len(chunk)
                while len(lines_before) < len(cuts) and cuts[len(lines_before)] <= end:
                    cut = cuts[len(lines_before)]
                    lines_before.append(seen + chunk.count(b"\n", 0, cut - offset))
                seen += chunk.count(b"\n")
                offset = end
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {describe_os_error(exc)}") from None
    starts, ends = [0, *cuts], [*cuts, None]
    firsts = [1, *(n + 1 for n in lines_before)]
    parts = tuple(Part(path, f, a, b) for f, a, b in zip(firsts, starts, ends, strict=True))
    return parts, digest.hexdigest()


def _line_range(part: Part) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    """The records of a part of a JSON Lines file (as :func:`iter_records` reads them)."""
    number = part.first
    with part.file.open("rb") as fh:
        fh.seek(part.start)
        while part.end is None or fh.tell() < part.end:
            raw = fh.readline()
            if not raw:
                break
            if raw.strip():
                yield number, parse_line(number, raw)
            number += 1


def _row_count(file: Path, fmt: str) -> int:
    """Rows of a Parquet or Arrow file (metadata, or the batches' lengths: nothing decoded)."""
    import pyarrow as pa

    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(str(file)) as reader:
                return int(reader.metadata.num_rows)
        with pa.memory_map(str(file)) as source:
            if source.read(6) == b"ARROW1":
                source.seek(0)
                opened = pa.ipc.open_file(source)
                return sum(opened.get_batch(i).num_rows for i in range(opened.num_record_batches))
            source.seek(0)
            return sum(batch.num_rows for batch in pa.ipc.open_stream(source))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{file}: cannot read it as {fmt} data: {_oneline(exc)}") from None


class _Hashing(io.RawIOBase):
    """A read-only file wrapper that feeds every byte read to a digest."""

    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        self._digest.update(data)
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


def _zstd_lines(raw: IO[bytes], digest: Any) -> Iterator[bytes]:
    """Decompressed lines of a zstd stream (frames one after another), checking that the
    last frame is complete: ``stream_reader`` ends silently on a truncated file."""
    zstandard = _zstandard()
    decompressor = zstandard.ZstdDecompressor()
    frame = decompressor.decompressobj()
    in_frame = False
    pending: list[bytes] = []
    try:
        while chunk := raw.read(_CHUNK):
            digest.update(chunk)
            for pos in range(0, len(chunk), _ZSTD_CHUNK):
                piece = chunk[pos : pos + _ZSTD_CHUNK]
                while piece:
                    in_frame = True
                    out = frame.decompress(piece)
                    piece = b""
                    if frame.eof:
                        piece = frame.unused_data
                        frame = decompressor.decompressobj()
                        in_frame = False
                    if out:
                        parts = out.split(b"\n")
                        if len(parts) > 1:  # complete lines keep their b"\n", as a file's do
                            pending += (parts[0], b"\n")
                            yield b"".join(pending)
                            for part in parts[1:-1]:
                                yield part + b"\n"
                            pending = [parts[-1]]
                        else:
                            pending.append(out)
    except zstandard.ZstdError as exc:
        raise OSError(str(exc)) from None
    if in_frame:
        raise EOFError("the file ends inside a zstd frame (truncated)")
    tail = b"".join(pending)
    if tail:
        yield tail


def _oneline(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# ------------------------------------------------------------------ Arrow rows


class _BadValue(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


def _needs_check(kind: Any) -> bool:
    """True when values of Arrow type ``kind`` may be non-finite or have no JSON form."""
    import pyarrow.types as t

    if t.is_string(kind) or t.is_large_string(kind) or t.is_integer(kind):
        return False
    if t.is_boolean(kind) or t.is_null(kind):
        return False
    if t.is_list(kind) or t.is_large_list(kind) or t.is_fixed_size_list(kind):
        return _needs_check(kind.value_type)
    if t.is_struct(kind):
        return any(_needs_check(kind.field(i).type) for i in range(kind.num_fields))
    if t.is_dictionary(kind):
        return _needs_check(kind.value_type)
    return True  # floats, decimals, dates and times, binary, maps, anything else


def _bad_text(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return (
            "a string is not valid UTF-8 (a lone surrogate such as \\ud800, or bytes that "
            "are not text)"
        )
    return f"cannot read the value: {_oneline(exc)}"


def _json_value(value: Any, path: tuple[PathKey, ...]) -> Any:
    """``value`` as a JSON value (raises :class:`_BadValue` naming the field)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            raise _BadValue(dotted(path), f"{name} is not a JSON number")
        return value
    if isinstance(value, dict):
        return {str(k): _json_value(v, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, bytes):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise _BadValue(dotted(path), f"the decimal {value} is not a JSON number")
        return str(value)
    raise _BadValue(dotted(path), f"a value of type {type(value).__name__} has no JSON form")


def batch_records(batch: Any, first: int) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    """The rows of an Arrow record batch as records, numbered from ``first``.

    A column of the canonical ``arrow.json`` extension type (what ``datasets`` writes for
    its ``Json`` feature, fields whose shape varies between rows) holds JSON text: each
    value is parsed strictly, like a JSON line.  Columns convert to Python at once; a
    column that fails (a string that is not UTF-8) is converted row by row, so only the
    rows at fault become errors.
    """
    names = list(batch.schema.names)
    n = batch.num_rows
    bad: dict[int, LineError] = {}
    columns: list[list[Any]] = []
    checked: list[int] = []  # 0: as is, 1: check the value, 2: JSON text to parse
    for i, name in enumerate(names):
        column = batch.column(i)
        json_text = getattr(column.type, "extension_name", None) == "arrow.json"
        checked.append(2 if json_text else int(_needs_check(column.type)))
        try:
            columns.append(column.to_pylist())
            continue
        except Exception:  # the row-by-row pass below names the rows at fault
            pass
        values: list[Any] = []
        for row in range(n):
            try:
                values.append(column.slice(row, 1).to_pylist()[0])
            except Exception as exc:  # any failure to convert is that row's error
                values.append(None)
                bad.setdefault(row, LineError(first + row, _bad_text(exc), name))
        columns.append(values)
    for row in range(n):
        number = first + row
        if row in bad:
            yield number, bad[row]
            continue
        record: dict[str, Any] = {}
        try:
            for name, values, check in zip(names, columns, checked, strict=True):
                value = values[row]
                if check == 2 and isinstance(value, str):
                    try:
                        value = strict_loads(value)
                    except ValueError as exc:
                        raise _BadValue(name, str(exc)) from None
                elif check:
                    value = _json_value(value, (name,))
                record[name] = value
        except _BadValue as exc:
            yield number, LineError(number, exc.reason, exc.field)
            continue
        yield number, record
