"""One writer per run directory: an advisory lock on ``RUN_DIR/lock``.

``flock`` locks belong to the open file, so the operating system releases them when the
holder exits, however it exits (``kill -9`` included): a stale lock cannot outlive a
crashed run.  The file records the holder's pid and host so the error names them.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from ..errors import OutputError, RunLocked
from ..fsio import describe_os_error


class RunLock:
    """Hold ``path`` exclusively for the life of the ``with`` block (never blocks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create {self.path}: {describe_os_error(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunLocked(
                f"{self.path.parent} is being written by {holder}: wait for that run to "
                "finish (or stop it), then run again; completed calls are kept"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock; the file stays (harmless, reused)
            self._fd = None
