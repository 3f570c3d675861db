"""Choosing the instruction of each training instance (MIns+ sampling).

``mixed`` (the paper's intent, docs/dataset.md): with probability ``raw_share`` one of
the task's originals uniformly, otherwise one of its kept rewrites uniformly; a task
without kept rewrites always gets an original (reported as a fallback).  ``uniform`` (what
the reference code does through an operator-precedence bug): uniformly over originals and
rewrites together.

Each task draws from its own ``random.Random`` seeded with ``"<seed>/<task>"`` (string
seeds are hashed with SHA-512 by ``random``, so this does not depend on
``PYTHONHASHSEED``).  The same stream shuffles the options of that task's instances, so a
task's output depends only on the seed and that task's records, in file order.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

from .filters import Candidate, TaskPool

MODES = ("mixed", "uniform")


@dataclass(frozen=True, slots=True)
class Choice:
    """The instruction drawn for one instance and whether it was a forced fallback."""

    candidate: Candidate
    fallback: bool


class Sampler:
    """Draws instructions per task from seeded, per-task random streams."""

    def __init__(
        self,
        pools: Mapping[str, TaskPool],
        *,
        raw_share: float = 0.5,
        mode: str = "mixed",
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not 0.0 <= raw_share <= 1.0:
            raise ValueError(f"raw_share must be within [0, 1], not {raw_share}")
        self.pools = pools
        self.raw_share = raw_share
        self.mode = mode
        self.seed = seed
        self._rngs: dict[str, random.Random] = {}
        self._uniform: dict[str, list[Candidate]] = {}

    def rng(self, task: str) -> random.Random:
        """The task's random stream (created on first use)."""
        rng = self._rngs.get(task)
        if rng is None:
            rng = self._rngs[task] = random.Random(f"{self.seed}/{task}")
        return rng

    def choose(self, task: str) -> Choice:
        """Draw one instruction for an instance of ``task`` (which must have originals)."""
        pool = self.pools[task]
        rng = self.rng(task)
        if not pool.kept:
            # Only a fallback when a rewrite could have been drawn (raw_share 1 never draws one).
            forced = self.mode == "uniform" or self.raw_share < 1.0
            return Choice(_pick(pool.originals, rng), forced)
        if self.mode == "uniform":
            every = self._uniform.get(task)
            if every is None:
                every = self._uniform[task] = pool.originals + pool.kept
            return Choice(_pick(every, rng), False)
        if rng.random() < self.raw_share:
            return Choice(_pick(pool.originals, rng), False)
        return Choice(_pick(pool.kept, rng), False)


def _pick(items: list[Candidate], rng: random.Random) -> Candidate:
    # int(random() * n) is uniform up to 2**-53 and far cheaper than randrange's rejection loop
    return items[int(rng.random() * len(items))]
