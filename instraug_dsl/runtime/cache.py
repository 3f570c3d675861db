"""The run's call cache: one SQLite (WAL) row per completed model call.

Every call that returned a reply is committed the moment it finishes, keyed by everything that
determines the reply (request id, model, sampling parameters, attempt number, seed, the decoding
constraint and the exact messages), and by nothing that does not: not the server's address, so
the same model moved to another address, or served by a pool of them, answers from the cache
(``--fresh`` ignores it). A re-run after a crash or ``kill -9`` therefore repeats no completed call,
and because the final files are rebuilt from these rows in request order, it writes the same
files as an uninterrupted run. Transport failures are never cached: they are retried next time.

WAL with ``synchronous=NORMAL`` survives a killed process (not a power cut), which is the
failure that matters here, and keeps each commit to a few tens of microseconds.

Trouble with the file is an :class:`~instraug_dsl.errors.IatError` naming it, never a bare
``sqlite3`` exception: a damaged cache (found by ``PRAGMA quick_check`` when it is opened,
or by any later read) is a :class:`~instraug_dsl.errors.DataError` that says how to get out
(``--fresh``, which sets the damaged file aside as ``cache.sqlite.damaged-N`` and starts a
new one), and a full disk is an :class:`~instraug_dsl.errors.OutputError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ..errors import DataError, OutputError
from ..fsio import describe_os_error

#: Free bytes below which an I/O error of SQLite is taken for a full disk.
_NEARLY_FULL = 1 << 20

#: Bump when the key recipe or the row layout changes: old caches then simply miss.
CACHE_VERSION = 2  # 2: the server's address left the key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    latency_s REAL NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class CachedCall:
    """A completed call as stored: the raw reply text and its usage."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float


def call_key(
    *,
    request: str,
    model: str,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int | None,
    attempt: int,
    messages: Sequence[Mapping[str, str]],
    constraint: str | None = None,
) -> str:
    """The cache key of one call: a SHA-256 over every input that shapes the reply.

    ``constraint`` names the decoding constraint the call was sent with (``Capability.tag``:
    the form and a digest of what was sent); an unconstrained call has none, and its key is
    the same as before constraints existed.
    """
    payload: dict[str, object] = {
        "v": CACHE_VERSION,
        "request": request,
        "model": model,
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "seed": seed,
        "attempt": attempt,
        "messages": [[m["role"], m["content"]] for m in messages],
    }
    if constraint is not None:
        payload["constraint"] = constraint
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class _Damaged(Exception):
    """Internal: the file is not a sound SQLite database (``reason`` says what is wrong)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_damage(exc: sqlite3.Error) -> bool:
    """True for SQLite's "this file is broken" errors (not for a full disk or a lock)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _is_full(exc: sqlite3.Error, path: Path) -> bool:
    """SQLITE_FULL, or an I/O error on a disk with (almost) no room left: SQLite reports a
    failed write of its WAL index or journal as a plain "disk I/O error"."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL" or "disk is full" in str(exc).lower():
        return True
    if not (name.startswith("SQLITE_IOERR") or "disk i/o error" in str(exc).lower()):
        return False
    try:
        return shutil.disk_usage(path.parent).free < _NEARLY_FULL
    except OSError:
        return False


def damaged_name(path: Path) -> Path:
    """Where a damaged cache is set aside: ``cache.sqlite.damaged-N``, the first free N."""
    n = 1
    while path.with_name(f"{path.name}.damaged-{n}").exists():
        n += 1
    return path.with_name(f"{path.name}.damaged-{n}")


class CallCache:
    """SQLite-backed store of completed calls; ``fresh=True`` ignores (but keeps updating) it.

    ``fresh=True`` also recovers from a damaged file: it is renamed to
    ``cache.sqlite.damaged-N`` (:attr:`set_aside`) and a new, empty cache takes its place.

    Use from one thread (the engine's event loop). Each `put` is its own committed
    transaction, so a killed run loses at most the calls that were still in flight.
    """

    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        self.path = path
        self.fresh = fresh
        self.set_aside: Path | None = None
        self.hits = 0
        self.misses = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {path}: {describe_os_error(exc)}") from None
        try:
            self._db = self._open()
        except _Damaged as exc:
            if not fresh:
                raise DataError(
                    f"{path}: the call cache is damaged ({exc.reason}); run again with --fresh "
                    f"to set it aside as {damaged_name(path).name} and start a new cache "
                    "(the calls it held are then made again)"
                ) from None
            self.set_aside = self._set_aside()
            try:
                self._db = self._open()
            except _Damaged as again:  # pragma: no cover  (a new file cannot be damaged)
                raise DataError(f"{path}: cannot start a new call cache ({again.reason})") from None

    def _open(self) -> sqlite3.Connection:
        """Connect, check the file is sound, and make sure the table exists."""
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            verdict = db.execute("PRAGMA quick_check(1)").fetchone()
            if verdict is None or verdict[0] != "ok":
                text = str(verdict[0]) if verdict else "no answer from the integrity check"
                lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("***")]
                raise _Damaged(("; ".join(lines) or "integrity check failed")[:200])
            db.execute(_SCHEMA)
            columns = [row[1] for row in db.execute("PRAGMA table_info(calls)")]
            if columns[:5] != ["key", "request", "attempt", "model", "text"]:
                raise _Damaged("its `calls` table is not the one iatc writes")
            return db
        except _Damaged:
            if db is not None:
                db.close()
            raise
        except sqlite3.Error as exc:
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            if _is_damage(exc):
                raise _Damaged(str(exc)) from None
            self._fail(exc)

    def _set_aside(self) -> Path:
        """Rename the damaged file (and its WAL) out of the way; returns the new name."""
        target = damaged_name(self.path)
        try:
            self.path.replace(target)
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists():
                wal.replace(target.with_name(target.name + "-wal"))
            self.path.with_name(self.path.name + "-shm").unlink(missing_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot set the damaged call cache {self.path} aside: {describe_os_error(exc)}"
            ) from None
        return target

    def _fail(self, exc: sqlite3.Error) -> NoReturn:
        """Raise the IatError for a sqlite3 error on this file (always names it)."""
        if _is_damage(exc):
            raise DataError(
                f"{self.path}: the call cache is damaged ({exc}); run again with --fresh to set "
                f"it aside as {damaged_name(self.path).name} and start a new cache"
            ) from None
        if _is_full(exc, self.path):
            raise OutputError(f"cannot write {self.path}: no space left on device") from None
        raise OutputError(f"cannot use the call cache {self.path}: {exc}") from None

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            self._fail(exc)

    def get(self, key: str) -> CachedCall | None:
        """The stored call for ``key``, or None (always None when fresh)."""
        if self.fresh:
            self.misses += 1
            return None
        with self._guard():
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, cost_usd, latency_s "
                "FROM calls WHERE key = ?",
                (key,),
            ).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return CachedCall(str(row[0]), int(row[1]), int(row[2]), float(row[3]), float(row[4]))

    def contains(self, key: str) -> bool:
        """True if ``key`` is stored and would be used (no hit/miss accounting)."""
        if self.fresh:
            return False
        with self._guard():
            found = self._db.execute("SELECT 1 FROM calls WHERE key = ?", (key,)).fetchone()
        return found is not None

    def put(self, key: str, *, request: str, attempt: int, model: str, call: CachedCall) -> None:
        """Store one completed call, committed before returning."""
        with self._guard():
            self._db.execute(
                "INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    request,
                    attempt,
                    model,
                    call.text,
                    call.prompt_tokens,
                    call.completion_tokens,
                    call.cost_usd,
                    call.latency_s,
                    time.time(),
                ),
            )

    def absorb(self, other: Path) -> int:
        """Copy every call of the cache at ``other`` that this one lacks (a call of the same
        key is the same call); returns how many were added.  ``other`` is only read, and
        checked like any cache: a damaged one is a :class:`DataError` naming it."""
        CallCache(other).close()  # checks it, and folds its WAL into the file
        before = len(self)
        with self._guard():
            self._db.execute("ATTACH DATABASE ? AS other", (str(other),))
            try:
                self._db.execute("INSERT OR IGNORE INTO calls SELECT * FROM other.calls")
            finally:
                self._db.execute("DETACH DATABASE other")
        return len(self) - before

    def last_row(self) -> int:
        """A mark of what the cache holds now: :meth:`copy_to` with ``after=`` this mark
        copies only the calls stored since (a call stored again gets a new row)."""
        with self._guard():
            return int(self._db.execute("SELECT COALESCE(MAX(rowid), 0) FROM calls").fetchone()[0])

    def copy_to(self, path: Path, *, after: int = 0) -> int:
        """Write the calls stored after the mark ``after`` (all by default) into the cache at
        ``path`` (created when missing; a call it holds already is kept); returns how many.
        The copy is a complete file once this returns (its WAL folded in)."""
        CallCache(path).close()
        with self._guard():
            self._db.execute("ATTACH DATABASE ? AS other", (str(path),))
            try:
                copied = self._db.execute(
                    "INSERT OR IGNORE INTO other.calls SELECT * FROM calls WHERE rowid > ?",
                    (after,),
                ).rowcount
            finally:
                self._db.execute("DETACH DATABASE other")
        CallCache(path).close()
        return int(copied)

    def __len__(self) -> int:
        with self._guard():
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close.

        Never raises: the checkpoint is a tidy-up (every committed call is already safe in
        the WAL), and an error here must not hide the one that ended the run.
        """
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def __enter__(self) -> CallCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
