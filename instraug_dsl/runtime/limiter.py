"""An AIMD concurrency limiter: how many model calls may be in flight right now.

Providers answer overload with HTTP 429 long before they fail outright, so the engine treats a
rate limit as a congestion signal, the way TCP does: the allowed concurrency is cut
multiplicatively (halved) on a 429 and grows back additively (about +1 per window of
successful calls). Cuts are rate-limited to one per window so a burst of 429s from calls that
were already in flight when the first one arrived counts as a single signal.

>>> import asyncio
>>> async def demo() -> tuple[int, int]:
...     lim = AIMDLimiter(8)
...     async with lim.slot() as slot:
...         slot.rate_limited()
...     return lim.limit, lim.ceiling
>>> asyncio.run(demo())
(4, 8)
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Slot:
    """One permit; the holder reports how its call went (success unless told otherwise)."""

    generation: int
    outcome: str = "success"

    def rate_limited(self) -> None:
        """The call was answered with a rate limit (429)."""
        self.outcome = "rate_limit"

    def neutral(self) -> None:
        """The call failed for another reason: neither grow nor shrink the window."""
        self.outcome = "neutral"


@dataclass
class AIMDLimiter:
    """Bounded, adaptive concurrency.

    ``ceiling`` is the user's ``--concurrency``; ``limit`` moves between ``floor`` and
    ``ceiling``: ``limit *= decrease`` on a rate limit, ``+1/limit`` per success (so a whole
    window of successes adds one). Only calls started after the last cut can cut again.
    """

    ceiling: int
    floor: int = 1
    decrease: float = 0.5
    _limit: float = field(init=False)
    _in_flight: int = field(default=0, init=False)
    _generation: int = field(default=0, init=False)
    _waiters: deque[asyncio.Future[None]] = field(default_factory=deque, init=False)
    cuts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.ceiling < 1:
            raise ValueError("concurrency must be at least 1")
        self.floor = max(1, min(self.floor, self.ceiling))
        self._limit = float(self.ceiling)

    @property
    def limit(self) -> int:
        """The number of calls currently allowed in flight."""
        return max(self.floor, min(self.ceiling, math.floor(self._limit)))

    @property
    def in_flight(self) -> int:
        """Calls holding a permit now."""
        return self._in_flight

    async def acquire(self) -> Slot:
        """Wait for a free permit; waiters are served first come, first served."""
        if self._in_flight < self.limit and not self._waiters:
            self._in_flight += 1
            return Slot(self._generation)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # `_wake` counts the permit in `_in_flight` before waking us
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._in_flight -= 1  # woken and cancelled at once: hand the permit on
                self._wake()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise
        return Slot(self._generation)

    def release(self, slot: Slot) -> None:
        """Return a permit and adapt the window to the call's outcome (never blocks)."""
        self._in_flight -= 1
        self.record(slot)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def record(self, slot: Slot) -> None:
        """Apply the AIMD rule for one finished call (no locking; used by `release`)."""
        if slot.outcome == "rate_limit":
            if slot.generation == self._generation:  # first signal of this window
                self._limit = max(float(self.floor), self._limit * self.decrease)
                self._generation += 1
                self.cuts += 1
        elif slot.outcome == "success":
            self._limit = min(float(self.ceiling), self._limit + 1.0 / max(self._limit, 1.0))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """``async with limiter.slot() as s:`` -- acquire, run, release (even on errors)."""
        permit = await self.acquire()
        try:
            yield permit
        except BaseException:
            if permit.outcome == "success":
                permit.neutral()
            raise
        finally:
            self.release(permit)
