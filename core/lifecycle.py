"""Work the process does when it starts and before it exits (the ASGI lifespan events).

Apps register async callables from their `AppConfig.ready()`; `chatbackend.shutdown` runs them on
the lifespan's `startup` and `shutdown` events: startup hooks in order of registration, shutdown
hooks in reverse. A failing hook is logged, never stops the others."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]
_startup: list[Hook] = []
_shutdown: list[Hook] = []


def on_startup(hook: Hook) -> Hook:
    if hook not in _startup:
        _startup.append(hook)
    return hook


def on_shutdown(hook: Hook) -> Hook:
    if hook not in _shutdown:
        _shutdown.append(hook)
    return hook


async def _run(hooks: list[Hook], event: str) -> None:
    for hook in hooks:
        try:
            await hook()
        except Exception:
            logger.exception("%s hook %s failed", event, getattr(hook, "__qualname__", hook))


async def startup() -> None:
    await _run(list(_startup), "startup")


async def shutdown() -> None:
    await _run(list(reversed(_shutdown)), "shutdown")
