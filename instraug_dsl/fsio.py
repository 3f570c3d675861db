"""Files on disk: the one atomic-write helper and the strict JSON reading/writing layer.

Every file ``iatc`` writes goes through :class:`AtomicFile` (directly, or through
:func:`write_text`, :func:`write_json` and :func:`write_jsonl`): the bytes go to a hidden
``.NAME.<pid>.<thread>.partial`` file beside the target, which is renamed over the target
only when complete.  A reader never sees half a file, a failure (a full disk, Ctrl-C)
removes the partial file, and the error names the file.

JSON is written strictly (no ``NaN``/``Infinity``), with sorted keys unless told otherwise
and UTF-8 kept readable; reading reports the file and line of anything malformed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import DataError, OutputError

#: JSON as Python sees it after ``json.loads``.
Json = Any


def json_kind(value: object) -> str:
    """The JSON name of a value's type (``null``, ``boolean``, ``number``, ``string``,
    ``list``, ``object``), for error messages about data."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe_os_error(exc: OSError) -> str:
    """A short, user-facing reason for an OS error (``no space left on device``)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return exc.strerror or str(exc)


class AtomicFile:
    """A file written under a temporary name and renamed into place by :meth:`commit`.

    Use as a context manager (commit on success, abort on any exception) or call
    :meth:`commit`/:meth:`abort` yourself for streams that outlive one block.  Writers
    that open the file themselves (pyarrow) write to :attr:`tmp`.
    """

    def __init__(self, path: Path, *, binary: bool = False, open_now: bool = True) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        self._handle: IO[Any] | None = None
        self._binary = binary
        if open_now:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = (
                    self.tmp.open("wb")
                    if binary
                    else self.tmp.open("w", encoding="utf-8", newline="\n")
                )
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from None

    @property
    def handle(self) -> IO[Any]:
        """The open temporary file."""
        if self._handle is None:
            raise RuntimeError("AtomicFile opened with open_now=False has no handle")
        return self._handle

    def write(self, data: Any) -> None:
        """Write text (or bytes for a binary file); a full disk aborts with a clear error."""
        try:
            self.handle.write(data)
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {describe_os_error(exc)}") from None

    def commit(self) -> None:
        """Close the temporary file and rename it over the target."""
        try:
            if self._handle is not None:
                self._handle.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {describe_os_error(exc)}") from None

    def abort(self) -> None:
        """Close and delete the temporary file (the target is left as it was)."""
        if self._handle is not None:
            try:
                self._handle.close()
            except OSError:
                pass  # a close that fails on a full disk: the file goes anyway
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) atomically."""
    with AtomicFile(path) as out:
        out.write(text)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` atomically."""
    with AtomicFile(path, binary=True) as out:
        out.write(data)


def dumps(data: Json, *, indent: int | None = 2, sort_keys: bool = True) -> str:
    """Strict JSON text (``NaN``/``Infinity`` refused), UTF-8 kept readable."""
    return json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False, allow_nan=False)


def json_line(data: Json, *, sort_keys: bool = True) -> str:
    """One JSON Lines record (no trailing newline)."""
    return dumps(data, indent=None, sort_keys=sort_keys)


def write_json(path: Path, data: Json, *, indent: int | None = 2) -> None:
    """Write one JSON document atomically (sorted keys, newline at the end)."""
    write_text(path, dumps(data, indent=indent) + "\n")


def write_jsonl(path: Path, rows: Iterable[Json], *, sort_keys: bool = True) -> int:
    """Write JSON Lines atomically; returns the number of rows."""
    count = 0
    with AtomicFile(path) as out:
        for row in rows:
            out.write(json_line(row, sort_keys=sort_keys) + "\n")
            count += 1
    return count


def read_json(path: Path) -> Json:
    """Read one JSON document; a :class:`DataError` names the file and line when it is bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = describe_os_error(exc) if isinstance(exc, OSError) else "not UTF-8 text"
        raise DataError(f"{path}: cannot read ({reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None


def iter_jsonl(path: Path) -> Iterator[tuple[str, Json]]:
    """Yield ``("file:line", value)`` for each non-blank line; bad JSON is a DataError."""
    try:
        handle = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: missing") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({describe_os_error(exc)})") from None
    with handle:
        number = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError:
                raise DataError(f"{path}:{number + 1}: not UTF-8 text") from None
            if not line:
                return
            number += 1
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise DataError(f"{where}: JSON nested too deeply") from None


def file_format(path: Path, *, max_bytes: int = 16 << 20) -> str | None:
    """The top-level ``"format"`` string of a JSON file, or None when the file is missing,
    larger than ``max_bytes``, not a JSON object or has no such string.

    iatc's own files (``summary.json``, the manifests) carry a ``format`` such as
    ``iatc-run/1``; this is how a command tells them from a user's file of the same name
    before writing over it.  Never raises.
    """
    try:
        if not path.is_file() or path.stat().st_size > max_bytes:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: bad JSON or not UTF-8
        return None
    value = data.get("format") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """Hex SHA-256 of a text's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


#: The environment variable that moves (or, set to "", disables) every cache of iatc.
CACHE_ENV = "IATC_CACHE_DIR"


def cache_dir(kind: str) -> Path | None:
    """The one rule for iatc's caches: ``$IATC_CACHE_DIR/<kind>``, else the user cache
    folder (``$XDG_CACHE_HOME`` or ``~/.cache``, ``%LOCALAPPDATA%`` on Windows)
    ``/instraug-dsl/<kind>``.  ``IATC_CACHE_DIR=""`` means no cache: ``None``."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return Path(configured).expanduser() / kind if configured else None
    if sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "instraug-dsl" / kind


def scratch_dir(kind: str) -> Path:
    """``cache_dir(kind)``, or a per-user temporary folder when caching is disabled (for
    files that must exist somewhere to be used at all, such as an assembled model)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return cache_dir(kind) or Path(tempfile.gettempdir()) / f"instraug-dsl-{uid}" / kind
