"""Database access from async code without holding a connection while the model talks.

A stream does its writes in short bursts (save the user turn; checkpoint; save the reply) and waits
on the model in between, for seconds. `run_db` runs one burst in a thread and then gives the
connection back to the pool, so hundreds of open streams share a few connections.

Which thread: a small shared pool (`DB_THREADS`, default 8), not asgiref's thread-sensitive mode.
That mode gives each request a thread of its own, started on its first hop (about 0.3 ms of CPU,
a tenth of a chat turn), and sends work that outlives its request (a generation, a heartbeat) to
one process-wide thread, serialising every stream's bursts. Every burst releases its connection,
so nothing depends on which thread ran the previous one."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import connection

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None


def _shared_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=getattr(settings, "DB_THREADS", 8), thread_name_prefix="db"
        )
    return _executor


def _call_then_release(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return fn(*args, **kwargs)
    finally:
        # Inside an outer transaction (a test case's) closing would break it; otherwise return the
        # connection to the pool (or close it when there is no pool).
        if not connection.in_atomic_block:
            connection.close()


async def run_db(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn` (sync ORM code) in a database thread, then release the connection."""
    call = functools.partial(_call_then_release, fn, *args, **kwargs)
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_shared_executor(), context.run, call)
