"""The run's call cache: one SQLite (WAL) row per completed model call.

Every call that returned a reply is committed the moment it finishes, keyed by everything that
determines the reply (request id, model, api_base, sampling parameters, attempt number, seed and
the exact messages). A re-run after a crash or ``kill -9`` therefore repeats no completed call,
and because the final files are rebuilt from these rows in request order, it writes the same
files as an uninterrupted run. Transport failures are never cached: they are retried next time.

WAL with ``synchronous=NORMAL`` survives a killed process (not a power cut), which is the
failure that matters here, and keeps each commit to a few tens of microseconds.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Bump when the key recipe or the row layout changes: old caches then simply miss.
CACHE_VERSION = 1

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
    api_base: str | None,
    temperature: float,
    top_p: float,
    max_tokens: int,
    seed: int | None,
    attempt: int,
    messages: Sequence[Mapping[str, str]],
) -> str:
    """The cache key of one call: a SHA-256 over every input that shapes the reply."""
    payload = {
        "v": CACHE_VERSION,
        "request": request,
        "model": model,
        "api_base": (api_base or "").rstrip("/"),
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "seed": seed,
        "attempt": attempt,
        "messages": [[m["role"], m["content"]] for m in messages],
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CallCache:
    """SQLite-backed store of completed calls; ``fresh=True`` ignores (but keeps updating) it.

    Use from one thread (the engine's event loop). Each `put` is its own committed
    transaction, so a killed run loses at most the calls that were still in flight.
    """

    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        self.path = path
        self.fresh = fresh
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedCall | None:
        """The stored call for ``key``, or None (always None when fresh)."""
        if self.fresh:
            self.misses += 1
            return None
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
        return self._db.execute("SELECT 1 FROM calls WHERE key = ?", (key,)).fetchone() is not None

    def put(self, key: str, *, request: str, attempt: int, model: str, call: CachedCall) -> None:
        """Store one completed call, committed before returning."""
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

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()

    def __enter__(self) -> CallCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
