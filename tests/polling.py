"""Bounded waiting for conditions the test cannot be notified of (a row another process writes, a
process's state). Prefer an event (e.g. the Gemini stand-in's `wait_until`) where there is one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable


def eventually(
    predicate: Callable[[], bool], *, timeout_s: float = 10, interval_s: float = 0.02
) -> bool:
    """Re-check `predicate` every `interval_s` until it holds (True) or `timeout_s` ran out."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        pause.wait(interval_s)
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
