"""Stop signalling between hubs, over Redis pub/sub.

Each hub subscribes, on one connection, to its own channel `{prefix}:stop:{hub id}`. A message on
it is either a generation's key (stop it: `stopped` is set on the local channel) or
`mirror:{key}` (a listener on another hub wants that generation's frames: the Redis Stream
transport starts writing them). `request_stop` and `request_mirror` send those messages to the
hub that owns a generation, found through its live marker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .config import REDIS_ERRORS, HubConfig, RateLimitedLog, reraise_cancellation

if TYPE_CHECKING:
    from .local import Channel

CLOSED = b"closed"  # the live marker after the end: b"closed:" + the owner's id
MIRROR = "mirror:"  # on an owner's channel: a listener elsewhere wants this key's frames


def owner_of(state: bytes) -> bytes:
    """The owning hub's id in a live marker (running, or closed)."""
    return state.split(b":", 1)[1] if state.startswith(CLOSED) else state


async def request_mirror(redis: Any, config: HubConfig, owner: bytes, key: str) -> int:
    """Ask the hub `owner` to write generation `key`'s frames to Redis; how many hubs heard."""
    return await redis.publish(config.stop_channel(owner.decode()), MIRROR + key)


async def request_stop(redis: Any, config: HubConfig, key: str, log_error: RateLimitedLog) -> bool:
    """Ask the hub running generation `key` to stop it; True if a running owner heard."""
    try:
        owner = await redis.get(config.live_key(key))
        if owner is None or owner.startswith(CLOSED):
            return False
        receivers = await redis.publish(config.stop_channel(owner.decode()), key)
    except REDIS_ERRORS as exc:
        log_error("stop", exc)
        return False
    return receivers > 0


class StopSubscriber:
    """The hub's subscription to its stop channel: sets `stopped` on the channels named there,
    hands mirror requests to `on_mirror`, and reconnects (and resubscribes) with backoff when
    Redis goes away. `ready` is set once subscribed, or when the first attempt failed."""

    def __init__(
        self,
        redis: Any,
        config: HubConfig,
        hub_id: str,
        channels: dict[str, Channel],
        on_mirror: Callable[[Channel], None],
        log_error: RateLimitedLog,
    ) -> None:
        self._redis = redis
        self._config = config
        self._name = config.stop_channel(hub_id)
        self._channels = channels
        self._on_mirror = on_mirror
        self._log_error = log_error
        self.ready = asyncio.Event()

    async def run(self) -> None:
        pubsub = self._redis.pubsub()
        failures = 0
        try:
            while True:
                try:
                    if not pubsub.subscribed:
                        await pubsub.subscribe(self._name)
                    # Not forever: waking every few seconds lets redis-py's health check (a PING
                    # after 30 s idle) find a connection that died without closing.
                    message = await pubsub.get_message(timeout=self._config.block_ms / 1000)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the subscriber must outlive any failure
                    reraise_cancellation()
                    self._log_error("listening for stop requests", exc)
                    self.ready.set()
                    failures += 1
                    await asyncio.sleep(min(5.0, 0.05 * 2**failures))
                    continue
                failures = 0
                if message is None:
                    reraise_cancellation()  # redis-py may have turned it into a timeout
                    continue
                if message["type"] == "subscribe":
                    self.ready.set()
                elif message["type"] == "message":
                    self._received(message["data"].decode())
        finally:
            try:
                await pubsub.aclose()
            except REDIS_ERRORS as exc:
                self._log_error("closing the stop subscription", exc)

    def _received(self, data: str) -> None:
        if data.startswith(MIRROR):
            channel = self._channels.get(data[len(MIRROR) :])
            if channel is not None:
                self._on_mirror(channel)
            return
        channel = self._channels.get(data)
        if channel is not None and not channel.closed:
            channel.request_stop()
