"""What every room of the hub shares: its settings, the names of its Redis keys, and how it
survives a Redis that fails (which errors, how they are logged, how a cancellation is told from
a timeout)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger("core.hub")

# What a lost, slow or failing Redis raises through redis-py's asyncio client.
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class HubConfig:
    redis_url: str | None = None
    key_prefix: str = "chatbackend:gen"
    stream_maxlen: int = 10_000
    stream_ttl_s: int = 3600
    live_ttl_s: float = 15.0
    grace_s: float = 10.0
    flush_interval_s: float = 0.0

    @classmethod
    def from_settings(cls) -> HubConfig:
        return cls(
            redis_url=getattr(settings, "REDIS_URL", None) or None,
            key_prefix=getattr(settings, "GENERATION_KEY_PREFIX", cls.key_prefix),
            stream_maxlen=int(getattr(settings, "GENERATION_STREAM_MAXLEN", cls.stream_maxlen)),
            stream_ttl_s=int(getattr(settings, "GENERATION_STREAM_TTL_S", cls.stream_ttl_s)),
            live_ttl_s=float(getattr(settings, "GENERATION_LIVE_TTL_S", cls.live_ttl_s)),
            grace_s=float(getattr(settings, "GENERATION_GRACE_S", cls.grace_s)),
            flush_interval_s=float(getattr(settings, "GENERATION_FLUSH_INTERVAL_MS", 0)) / 1000,
        )

    # The Redis names of a generation `key`, and of a hub's stop channel.
    def live_key(self, key: str) -> str:
        return f"{self.key_prefix}:{key}:live"

    def stream_key(self, key: str) -> str:
        return f"{self.key_prefix}:{key}:frames"

    def stop_channel(self, hub_id: str) -> str:
        return f"{self.key_prefix}:stop:{hub_id}"

    @property
    def block_ms(self) -> int:
        """How long a remote listener's XREAD (or the stop subscriber's read) waits before it
        checks the owner still runs."""
        return int(min(5000, max(100, self.live_ttl_s * 1000 / 3)))


def reraise_cancellation() -> None:
    """On Python 3.11, a cancellation that meets a timeout expiring inside redis-py comes out as
    a TimeoutError: a background task that retries on errors would then never end (the event
    loop's final cancel is lost). Raise it as what it is."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RateLimitedLog:
    """Logs a failing Redis call at most once per `every_s`, counting the ones it held back, so a
    lost Redis does not flood the log with one line per flush."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = every_s
        self._next = 0.0
        self._held_back = 0

    def __call__(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held_back += 1
            return
        logger.warning(
            "generation hub: %s failed (%s: %s); %d similar errors held back before this one",
            what,
            type(exc).__name__,
            exc,
            self._held_back,
        )
        self._next = now + self.every_s
        self._held_back = 0
