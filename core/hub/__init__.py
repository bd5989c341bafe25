"""Frames of running generations, for listeners in this process and, with Redis, on other hosts.

A generation (a streamed reply) `open`s a `Channel` under a string key, `publish`es each encoded
frame to it and `close`s it after its last frame. Anyone may `listen(key)`: they get every frame
from the first, then the live ones, until the close. `stop(key)` asks the generation to stop
(it watches `channel.stopped`, or sets `channel.on_stop`), wherever it runs.

The rooms of this package:

* `local`: the in-process hub (`Hub`, `Channel`): frames in a list per channel, listeners woken
  on publish; what this process alone needs.
* `redis_stream`: with `REDIS_URL`, the mirror of a hub's channels to Redis Streams, written off
  the publishing path by one background flusher, for listeners on other hosts.
* `stop`: stop signalling between hubs over Redis pub/sub (and the requests to start mirroring).
* `config`: the settings, the Redis key names, the handling of a failing Redis.

Redis is never on the generation's path: when it is down or slow, publish and local listeners go
on, and remote listen/stop answer None/False.

`publish`, `close` and everything else must be called from the event loop the hub belongs to; one
hub per event loop: `get_hub()`."""

from __future__ import annotations

import asyncio
import threading
import weakref

from django.core.signals import setting_changed
from django.dispatch import receiver

from .config import HubConfig
from .local import Channel, Hub

__all__ = ["Channel", "Hub", "HubConfig", "aclose_hub", "get_hub"]

_lock = threading.Lock()
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()
_retired: set[asyncio.Task[None]] = set()


#: The hub settings, read once (each turn asks for its hub twice) and again after one of them
#: changes (`setting_changed`: override_settings, pytest-django's `settings` fixture).
_config: HubConfig | None = None


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs) -> None:
    global _config
    if setting == "REDIS_URL" or setting.startswith("GENERATION_"):
        _config = None


def get_hub() -> Hub:
    """The hub of the running event loop (built from settings on first use). Built again when the
    settings it came from change (pytest-django's `settings` fixture); the old one is closed."""
    global _config
    loop = asyncio.get_running_loop()
    config = _config
    if config is None:
        config = _config = HubConfig.from_settings()
    with _lock:
        hub = _by_loop.get(loop)
        if hub is not None and (hub.config is config or hub.config == config) and not hub._closing:
            return hub
        if hub is not None:
            task = loop.create_task(hub.aclose())
            _retired.add(task)
            task.add_done_callback(_retired.discard)
        hub = _by_loop[loop] = Hub(config)
        return hub


async def aclose_hub() -> None:
    """Close and forget the running loop's hub (a shutdown hook: `core.lifecycle.on_shutdown`)."""
    with _lock:
        hub = _by_loop.pop(asyncio.get_running_loop(), None)
    if hub is not None:
        await hub.aclose()
