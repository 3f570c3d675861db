"""Ray for ``--executor ray`` (the ``[ray]`` extra): one session per command.

``ray_session(address)`` connects to the Ray cluster at ``address`` (``--ray-address``:
``HOST:PORT`` of its head node, ``auto``, or ``ray://HOST:10001`` for Ray Client), or, with
no address, starts a local Ray instance (no dashboard) and shuts it down when the command
ends.  A Ray session the caller already has (a notebook's or a test's ``ray.init``) is used
as it is and left running.  Ray is imported here and only here, when a command asks for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from .errors import IatRuntimeError, UsageError
from .fsio import describe_os_error

_INSTALL = "pip install 'instraug-dsl[ray]'"


def import_ray() -> Any:
    """The ``ray`` module; a :class:`UsageError` naming the extra when it is missing."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray: {_INSTALL}") from None
    return ray


@contextlib.contextmanager
def ray_session(
    address: str | None, *, cpus: int | None = None, object_store_mb: int | None = None
) -> Iterator[Any]:
    """Yield the ``ray`` module with a session open: the cluster at ``address``, or a local
    instance of ``cpus`` CPUs (default: this machine's) started for the length of the block.

    ``object_store_mb`` bounds a local instance's object store (default: Ray's, 30 % of
    the memory); Ray spills to disk beyond it.
    """
    ray = import_ray()
    if address:
        _reachable(address)
    if ray.is_initialized():
        yield ray
        return
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(
                num_cpus=cpus or os.cpu_count() or 2,
                include_dashboard=False,
                object_store_memory=object_store_mb * 2**20 if object_store_mb else None,
                **quiet,
            )
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise IatRuntimeError(f"cannot connect to {where}: {first}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _reachable(address: str) -> None:
    """Fail at once for a ``HOST:PORT`` nothing answers on (Ray itself waits for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # `auto`, or a form Ray reports on itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise IatRuntimeError(
            f"cannot connect to the Ray cluster at {address}: {describe_os_error(exc)}"
        ) from None


def cluster_cpus(ray: Any, default: int = 2) -> int:
    """The CPUs of the connected cluster (``default`` when it reports none)."""
    return max(1, int(ray.cluster_resources().get("CPU", default)))


def task_error(ray: Any, exc: BaseException) -> BaseException:
    """What to raise for an exception that came out of Ray (a task, a Ray Data pipeline):
    our own error as the task raised it (its message, its exit code), a lost task or node
    as an :class:`IatRuntimeError`, anything else (a bug) unchanged."""
    from .errors import IatError

    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:  # the exception, Ray's wrappers and what they wrap
        item = todo.pop()
        if any(item is seen for seen in chain):
            continue
        chain.append(item)
        for inner in (getattr(item, "cause", None), item.__cause__, item.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)
    for item in chain:
        # Ray re-raises a task's error as a class derived from both RayTaskError and the
        # error's own class: the error itself is the wrapper's `cause`.
        if isinstance(item, IatError) and not isinstance(item, ray.exceptions.RayError):
            return item
    lost = (ray.exceptions.RayError,)
    for item in chain:
        if isinstance(item, lost) and not isinstance(item, ray.exceptions.RayTaskError):
            first = (str(item).strip().splitlines() or [type(item).__name__])[0][:300]
            return IatRuntimeError(f"a Ray task was lost ({type(item).__name__}): {first}")
    return exc
