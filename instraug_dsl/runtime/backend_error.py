"""How a model call failed, classified for the engine's retry policy.

Its own module so that the providers implemented here (:mod:`.embedded`, :mod:`.offline`),
which :mod:`.llm` loads, raise it without importing :mod:`.llm` back.
"""

from __future__ import annotations

from typing import Any, Literal

Kind = Literal["rate_limit", "transient", "timeout", "fatal", "oversize"]


class BackendError(Exception):
    """A failed call, classified for the engine's retry policy.

    ``kind`` is ``rate_limit`` (back off, honour ``retry_after`` seconds when known),
    ``transient`` (retry), ``timeout`` (retry, maybe with a longer deadline), ``fatal``
    (do not retry: configuration or request error) or ``oversize`` (the reply was larger
    than ``max_tokens`` allows, see :mod:`.replycap`: that call fails, the run goes on).
    ``message`` is fit to show to a user.
    """

    def __init__(self, kind: Kind, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.message = message
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.message, self.retry_after))

    def __repr__(self) -> str:
        return f"BackendError({self.kind!r}, {self.message!r})"
