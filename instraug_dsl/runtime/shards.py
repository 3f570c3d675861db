"""Splitting a run across processes and machines, and putting it back together.

A shard is a deterministic part of a run's requests: request ``r`` belongs to shard
``1 + (first 8 bytes of SHA-256(r.id)) mod N`` of ``N``.  Every file of a run directory is
rebuilt from the compiled requests and the cached replies in request order, so the whole
run is the *replay* of its requests against the union of the shards' call caches: a
cache-only engine (nothing is sent) reads every call back, derives the later rounds of
MIns+_Iter, asks the judge's cached verdicts, and writes the same bytes an unsharded run
writes.  ``iatc merge`` does that for shard run directories made anywhere; ``--workers N``
does it for N local processes that share one cache.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..errors import UsageError

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``I/N`` with 1 <= I <= N; a :class:`UsageError` otherwise."""
        found = _SHARD.fullmatch(text)
        if found is None:
            raise UsageError(f"--shard {text!r}: expected I/N, e.g. --shard 2/8")
        index, count = int(found.group(1)), int(found.group(2))
        if count < 1 or not 1 <= index <= count:
            raise UsageError(f"--shard {text!r}: I must be between 1 and N (N at least 1)")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, request_id: str) -> bool:
        """True when the request of this id belongs to this shard."""
        return shard_of(request_id, self.count) == self.index


def shard_of(request_id: str, count: int) -> int:
    """The shard (1-based) of ``count`` a request id belongs to."""
    digest = hashlib.sha256(request_id.encode("utf-8")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % count
