"""Bounded polling for conditions nothing can notify the test of (a row another process writes, a
process's state). Prefer a real signal where there is one: an event the code under test sets, the
Gemini stand-in's `wait_until`/`wait_for`, uvicorn's start-up (tests/live_server.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def eventually(
    predicate: Callable[[], bool], *, timeout_s: float = 10, interval_s: float = 0.02
) -> bool:
    """Re-check `predicate` every `interval_s` until it holds (True) or `timeout_s` ran out
    (False). The pause only spaces the checks: the deadline, not the pause, bounds the wait."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


async def eventually_async(
    predicate: Callable[[], Awaitable[bool]], *, timeout_s: float = 10, interval_s: float = 0.02
) -> bool:
    """`eventually` for an async predicate, without blocking the event loop."""
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval_s)
    return True
