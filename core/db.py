"""Database access from the streaming path without holding a connection while the model talks.

A stream does its writes in short bursts (save the user turn; checkpoint; save the reply) and waits
on the model in between, for seconds. `run_db` runs one burst in the request's database thread and
then gives the connection back to the pool, so hundreds of open streams share a few connections."""

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection

P = ParamSpec("P")
R = TypeVar("R")


def _call_then_release(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return fn(*args, **kwargs)
    finally:
        # Inside an outer transaction (a test case's) closing would break it; otherwise return the
        # connection to the pool (or close it when there is no pool).
        if not connection.in_atomic_block:
            connection.close()


async def run_db(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run `fn` (sync ORM code) in the request's DB thread, then release the connection."""
    return await sync_to_async(_call_then_release, thread_sensitive=True)(fn, *args, **kwargs)
