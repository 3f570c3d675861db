"""Live progress for a run: a rich display on a terminal, plain periodic lines elsewhere.

The engine only calls `Progress.call_done` and `Progress.request_done`; what is shown (and
whether anything is) is decided here, so logs and CI output never fill with control codes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from .outcome import Outcome


@dataclass
class Counters:
    """Running totals of a run (shown live and copied into the summary)."""

    total: int = 0
    done: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def line(self) -> str:
        """One plain status line."""
        rate = self.done / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"{self.done}/{self.total} requests  accepted {self.accepted}  "
            f"rejected {self.rejected}  failed {self.failed}  {rate:.1f} req/s  "
            f"calls {self.calls} (cached {self.cached_calls})  "
            f"tokens {self.prompt_tokens + self.completion_tokens}  ${self.cost_usd:.4f}"
        )


class Progress:
    """Silent progress: counts only. Subclasses decide how to show them."""

    def __init__(self) -> None:
        self.counters = Counters()

    def start(self, total: int, label: str = "") -> None:
        """Begin a phase of ``total`` requests (counters keep accumulating across rounds)."""
        self.counters.total += total

    def call_done(
        self, prompt_tokens: int, completion_tokens: int, cost: float, cached: bool
    ) -> None:
        """A model call finished (or was served from the cache)."""
        c = self.counters
        c.calls += 1
        c.cached_calls += int(cached)
        c.prompt_tokens += prompt_tokens
        c.completion_tokens += completion_tokens
        if not cached:
            c.cost_usd += cost
        self.refresh()

    def request_done(self, outcome: Outcome) -> None:
        """A request reached its final status."""
        c = self.counters
        c.done += 1
        setattr(c, outcome.status, getattr(c, outcome.status) + 1)
        self.refresh()

    def refresh(self) -> None:
        """Redraw if it is time (no-op here)."""

    def stop(self) -> None:
        """End the display."""


class PlainProgress(Progress):
    """One status line every ``interval`` seconds (for logs and pipes)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 10.0) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.interval = interval
        self._last = time.monotonic()

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            print(f"iatc: {self.counters.line()}", file=self.stream, flush=True)

    def stop(self) -> None:
        print(f"iatc: {self.counters.line()}", file=self.stream, flush=True)


class RichProgress(Progress):
    """A rich live bar with the counters, redrawn a few times per second."""

    def __init__(self, model: str) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichBar

        self._bar: Any = RichBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[stats]}"),
            console=Console(stderr=True),
            refresh_per_second=4,
            transient=False,
        )
        self._task = self._bar.add_task(model, total=0, stats="")
        self._bar.start()

    def start(self, total: int, label: str = "") -> None:
        super().start(total, label)
        self._bar.update(self._task, total=self.counters.total)

    def refresh(self) -> None:
        c = self.counters
        rate = c.done / c.elapsed if c.elapsed > 0 else 0.0
        stats = (
            f"[green]{c.accepted} accepted[/] [yellow]{c.rejected} rejected[/] "
            f"[red]{c.failed} failed[/]  {rate:.1f} req/s  "
            f"{c.prompt_tokens + c.completion_tokens} tokens  ${c.cost_usd:.4f}"
        )
        self._bar.update(self._task, completed=c.done, stats=stats)

    def stop(self) -> None:
        self.refresh()
        self._bar.stop()


def make_progress(model: str, *, quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """The right display for where stderr goes: rich on a TTY, plain lines otherwise."""
    if quiet:
        return Progress()
    target = stream or sys.stderr
    if target.isatty():
        return RichProgress(model)
    return PlainProgress(target)
