"""The in-process hub: each running generation's frames, as the listeners in this process read
them.

A generation `open`s a `Channel` under a string key, `publish`es each encoded frame to it and
`close`s it after its last frame. The frames live in a list on the channel: `publish` is an
append, and wakes only the listeners that are waiting (no task, future or Redis call per frame).
The list is kept while the channel is open and for `GENERATION_GRACE_S` after its close, so a
listener arriving just after the end still gets the whole stream.

With `REDIS_URL` the hub hands what concerns other processes to its `RedisMirror`
(`core.hub.redis_stream`): listening to, and stopping, a generation that runs elsewhere."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable

from .config import HubConfig, RateLimitedLog
from .redis_stream import RedisMirror


class Channel:
    """One running generation's frames, as its listeners in this process read them."""

    __slots__ = (
        "_dirty",
        "_end_sent",
        "_hub",
        "_live_sent",
        "_mirrored",
        "_remote",
        "_sent",
        "_waiters",
        "closed",
        "forget_at",
        "frames",
        "key",
        "on_stop",
        "stopped",
    )

    def __init__(self, hub: Hub, key: str, *, remote: bool) -> None:
        self.key = key
        self.frames: list[bytes] = []
        self.closed = False
        self.forget_at = math.inf  # monotonic time after which the frames are dropped
        self.stopped = asyncio.Event()
        #: Called (on the event loop) when a stop is requested: the owner's way to act at once
        #: without a task waiting on `stopped`.
        self.on_stop: Callable[[], None] | None = None
        self._hub = hub
        self._waiters: list[asyncio.Future[None]] = []
        # Redis mirroring (`RedisMirror`): how many frames are written, whether the channel waits
        # in the flusher's list, whether its live marker and end marker are written.
        self._remote = remote
        self._sent = 0
        self._dirty = False
        self._live_sent = False
        self._end_sent = False
        # Frames go to Redis only once a listener elsewhere asks for them.
        self._mirrored = False

    def publish(self, frame: bytes) -> None:
        if self.closed:
            return
        self.frames.append(frame)
        if self._waiters:
            self._wake_listeners()
        if self._mirrored and not self._dirty:
            self._hub._mark_dirty(self)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._waiters:
            self._wake_listeners()
        if self._remote and not self._dirty:
            self._hub._mark_dirty(self)
        self._hub._closed(self)

    def _wake_listeners(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def _changed(self) -> None:
        """Return after the next publish or the close."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def request_stop(self) -> None:
        self.stopped.set()
        if self.on_stop is not None:
            self.on_stop()

    async def frames_from_start(self) -> AsyncIterator[bytes]:
        """Every frame from the first, then live ones. The frames published since the listener
        last ran come as one chunk: one socket write for them, not one each."""
        frames = self.frames
        index = 0
        while True:
            end = len(frames)
            if index < end:
                yield frames[index] if end - index == 1 else b"".join(frames[index:end])
                index = end
                continue
            if self.closed:
                return
            await self._changed()


class Hub:
    """The running generations of one event loop (a worker process), and their Redis mirror."""

    def __init__(self, config: HubConfig | None = None) -> None:
        self.config = config or HubConfig.from_settings()
        self.id = uuid.uuid4().hex
        self._channels: dict[str, Channel] = {}
        self._closing = False
        self._mirror: RedisMirror | None = None
        if self.config.redis_url:
            self._mirror = RedisMirror(self.config, self.id, self._channels, RateLimitedLog())

    # --- the generation's side ----------------------------------------------------------------

    def open(self, key: str) -> Channel:
        """A generation starts in this process under `key` (unique: e.g. the reply's uuid)."""
        if self._closing:
            raise RuntimeError("the generation hub is closed")
        existing = self._channels.get(key)
        if existing is not None and not existing.closed:
            raise ValueError(f"a generation with key {key!r} is already running here")
        channel = Channel(self, key, remote=self._mirror is not None)
        self._channels[key] = channel
        if self._mirror is not None:
            self._mirror.start()
            self._mirror.mark_dirty(channel)
        return channel

    def _mark_dirty(self, channel: Channel) -> None:
        if self._mirror is not None:
            self._mirror.mark_dirty(channel)

    def _closed(self, channel: Channel) -> None:
        channel.forget_at = time.monotonic() + self.config.grace_s
        asyncio.get_running_loop().call_later(self.config.grace_s, self._forget, channel)

    def _forget(self, channel: Channel) -> None:
        if self._channels.get(channel.key) is channel:
            del self._channels[channel.key]

    # --- listeners and stop -------------------------------------------------------------------

    async def listen(self, key: str) -> AsyncIterator[bytes] | None:
        """All frames of the generation `key` from the first, then live ones, ending after its
        close; None when it runs neither here nor (with Redis) anywhere else."""
        channel = self._channels.get(key)
        if channel is not None:
            return channel.frames_from_start()
        if self._mirror is None or self._closing:
            return None
        return await self._mirror.listen(key)

    async def stop(self, key: str) -> bool:
        """Ask the generation `key` to stop wherever it runs; True if it was found running."""
        channel = self._channels.get(key)
        if channel is not None:
            if channel.closed:
                return False
            channel.request_stop()
            return True
        if self._mirror is None or self._closing:
            return False
        return await self._mirror.stop(key)

    async def flush(self) -> bool:
        """Wait until the frames published so far were written to Redis (True) or the attempt
        failed (False). Immediate True without Redis. For tests and shutdown."""
        if self._mirror is None:
            return True
        return await self._mirror.flush()

    # --- shutdown -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Write what is pending to Redis (up to 2 s), then drop the Redis connections. Channels
        still open keep working for their local listeners; their live markers expire on their
        own."""
        if self._closing:
            return
        self._closing = True
        if self._mirror is not None:
            await self._mirror.aclose()
