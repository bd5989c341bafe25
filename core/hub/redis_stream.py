"""The Redis Stream transport: a hub's channels mirrored to Redis for listeners on other hosts.

Redis is never on the generation's path: `publish` only marks a channel dirty, and one background
flusher per hub writes the new frames of all dirty channels in one pipeline (one XADD per channel
per round, its frames as the fields of one stream entry). Per generation key, in Redis:

- `{prefix}:{key}:frames`: a stream of entries, each a batch of frames in fields "0", "1", ...; the
  close adds a field "end" to the last entry. Bounded by `GENERATION_STREAM_MAXLEN` entries
  (approximate trimming) and expiring `GENERATION_STREAM_TTL_S` after the last refresh (refreshed
  while the generation runs, set again at its close).
- `{prefix}:{key}:live`: the owning hub's id while the generation runs (expiring after
  `GENERATION_LIVE_TTL_S` unless the flusher's heartbeat refreshes it, so a dead process's
  generations stop counting as running), then "closed:{owner}" for `GENERATION_GRACE_S`. No key:
  nothing runs.

A channel's frames go to Redis only once a listener elsewhere asks for them (`listen` here sends a
mirror request to the owner, `core.hub.stop`): a reply nobody resumes costs two marker writes, not
one per flush. When Redis is down or slow, the flusher retries with backoff, errors are logged at
most every 30 s, and remote listen answers None."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .config import REDIS_ERRORS, HubConfig, RateLimitedLog, reraise_cancellation
from .stop import CLOSED, StopSubscriber, owner_of, request_mirror, request_stop

if TYPE_CHECKING:
    from .local import Channel

logger = logging.getLogger("core.hub")

_END = b"end"


class RedisMirror:
    """One hub's Redis side: its client, its flusher, its stop subscriber, remote listen and
    stop. `channels` is the hub's own dict of channels (read, never changed here)."""

    def __init__(
        self,
        config: HubConfig,
        hub_id: str,
        channels: dict[str, Channel],
        log_error: RateLimitedLog,
    ) -> None:
        # redis-py's own retries (10, up to 1 s apart by default) would make a remote listen
        # or stop hang on a lost Redis; one quick retry covers a pooled connection that went
        # stale, and the flusher backs off by itself.
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff

        assert config.redis_url
        self.config = config
        self.hub_id = hub_id
        self._channels = channels
        self._log_error = log_error
        self.redis: Any = Redis.from_url(
            config.redis_url,
            socket_connect_timeout=2,
            socket_timeout=max(10.0, config.block_ms / 1000 + 5),
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 1),
            health_check_interval=30,
        )
        self.stops = StopSubscriber(
            self.redis, config, hub_id, channels, self.start_mirroring, log_error
        )
        self.closing = False
        self._dirty: list[Channel] = []
        self._wake: asyncio.Future[None] | None = None
        self._flush_waiters: list[asyncio.Future[bool]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._subscriber: asyncio.Task[None] | None = None
        self._next_heartbeat = 0.0

    # --- the owner's side -----------------------------------------------------------------------

    def mark_dirty(self, channel: Channel) -> None:
        channel._dirty = True
        self._dirty.append(channel)
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    def start_mirroring(self, channel: Channel) -> None:
        """A listener elsewhere asked for `channel`'s frames: write them from now on."""
        if channel._remote and not channel._mirrored:
            channel._mirrored = True
            if not channel._dirty:
                self.mark_dirty(channel)

    def start(self) -> None:
        """Start the stop subscriber and the flusher (once)."""
        loop = asyncio.get_running_loop()
        if self._subscriber is None:
            self._subscriber = loop.create_task(self.stops.run(), name="hub-stops")
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush_forever(), name="hub-flusher")

    async def flush(self) -> bool:
        """Wait until the frames published so far were written to Redis (True) or the attempt
        failed (False)."""
        if self._flusher is None or self._flusher.done():
            return False
        done = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(done)
        if self._wake is not None:
            wake, self._wake = self._wake, None
            if not wake.done():
                wake.set_result(None)
        return await done

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        heartbeat_s = self.config.live_ttl_s / 3
        failures = 0
        # Live markers are written once stops can reach this hub, so that a stop that finds a
        # marker finds a subscriber (a hung Redis: give up waiting, frames matter more than stop).
        # asyncio.wait, not asyncio.timeout: on Python 3.11 a cancellation that meets an expiring
        # timeout becomes a TimeoutError, which would swallow the loop's final cancel (a hang).
        ready = loop.create_task(self.stops.ready.wait())
        try:
            await asyncio.wait({ready}, timeout=2)
        finally:
            ready.cancel()
        while True:
            if not self._dirty and not self._flush_waiters:
                if self.closing:
                    return
                self._wake = loop.create_future()
                await asyncio.wait(
                    {self._wake}, timeout=max(0.0, self._next_heartbeat - time.monotonic())
                )
                if self.config.flush_interval_s and self._dirty:
                    await asyncio.sleep(self.config.flush_interval_s)  # let more frames gather
            heartbeat = time.monotonic() >= self._next_heartbeat
            if heartbeat:
                self._next_heartbeat = time.monotonic() + heartbeat_s
            waiters, self._flush_waiters = self._flush_waiters, []
            ok = await self._write(heartbeat=heartbeat)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(ok)
            if ok:
                failures = 0
            else:
                failures += 1
                self._next_heartbeat = 0.0  # after an outage, refresh every marker at once
                if self.closing:
                    return
                await asyncio.sleep(min(5.0, 0.05 * 2**failures))  # back off while Redis is down

    async def _write(self, *, heartbeat: bool) -> bool:
        """One pipeline with the new frames of every dirty channel (and, on a heartbeat, the
        refreshed markers of every running one)."""
        batch, self._dirty = self._dirty, []
        config = self.config
        pipe = self.redis.pipeline(transaction=False)
        written: list[tuple[Channel, int, bool]] = []
        for channel in batch:
            channel._dirty = False
            stream, live = config.stream_key(channel.key), config.live_key(channel.key)
            end, closed = len(channel.frames), channel.closed
            if not channel._live_sent and not closed:
                pipe.set(live, self.hub_id, ex=math.ceil(config.live_ttl_s))
            mirrored = channel._mirrored
            if mirrored and (end > channel._sent or (closed and not channel._end_sent)):
                fields: dict[str, bytes] = {
                    str(i): frame for i, frame in enumerate(channel.frames[channel._sent : end])
                }
                if closed:
                    fields["end"] = b"1"
                pipe.xadd(stream, fields, maxlen=config.stream_maxlen, approximate=True)
                if channel._sent == 0 or closed:  # its first entry, or its last
                    pipe.expire(stream, config.stream_ttl_s)
            if closed:
                pipe.set(
                    live,
                    CLOSED + b":" + self.hub_id.encode(),
                    px=max(1, int(config.grace_s * 1000)),
                )
            written.append((channel, end if mirrored else channel._sent, closed and mirrored))
        if heartbeat:
            for channel in self._channels.values():
                if channel._remote and channel._live_sent and not channel.closed:
                    pipe.set(
                        config.live_key(channel.key), self.hub_id, ex=math.ceil(config.live_ttl_s)
                    )
                    if channel._mirrored:
                        pipe.expire(config.stream_key(channel.key), config.stream_ttl_s)
        if not len(pipe):
            return True
        try:
            await pipe.execute()
        # Anything at all: the flusher must outlive every failure, or mirroring stops for good.
        except Exception as exc:  # noqa: BLE001 - keep the frames, retry later
            reraise_cancellation()
            self._log_error("writing generation frames to Redis", exc)
            now = time.monotonic()
            for channel, _, _ in written:
                if channel.closed and now > channel.forget_at:
                    channel._remote = False  # its frames are dropped from memory: give up
                elif not channel._dirty:
                    channel._dirty = True
                    self._dirty.append(channel)
            return False
        for channel, end, end_sent in written:
            channel._sent = end
            channel._live_sent = True
            channel._end_sent = end_sent
        return True

    # --- listeners and stops on other hubs --------------------------------------------------------

    async def listen(self, key: str) -> AsyncIterator[bytes] | None:
        """The frames of generation `key` running on another hub, from the first; None when it
        runs nowhere (or Redis cannot tell)."""
        try:
            state = await self.redis.get(self.config.live_key(key))
        except REDIS_ERRORS as exc:  # say "not running" rather than fail
            self._log_error("listen", exc)
            return None
        if state is None:
            return None
        try:
            reached = await request_mirror(self.redis, self.config, owner_of(state), key)
            if not reached and not await self.redis.exists(self.config.stream_key(key)):
                return None  # its owner is gone and nothing was mirrored
        except REDIS_ERRORS as exc:
            self._log_error("listen", exc)
            return None
        return self._frames_from_redis(key)

    async def _frames_from_redis(self, key: str) -> AsyncIterator[bytes]:
        stream, live = self.config.stream_key(key), self.config.live_key(key)
        last_id: bytes | str = "0-0"
        while True:
            try:
                reply = await self.redis.xread(
                    {stream: last_id}, count=100, block=self.config.block_ms
                )
                if not reply:
                    # Nothing new for a while: go on only while the owner's heartbeat says it runs
                    # (an end marker we have not seen with "closed" means the stream expired).
                    state = await self.redis.get(live)
                    if state is None or state.startswith(CLOSED):
                        return
                    continue
            except REDIS_ERRORS as exc:  # a lost Redis ends the listener, never the generation
                self._log_error("reading a generation's stream", exc)
                return
            for entry_id, fields in reply[0][1]:
                last_id = entry_id
                for name, frame in fields.items():
                    if name == _END:
                        return
                    yield frame

    async def stop(self, key: str) -> bool:
        return await request_stop(self.redis, self.config, key, self._log_error)

    # --- shutdown -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Write what is pending (up to 2 s), then drop the Redis connections. The channels stop
        being mirrored; their live markers expire on their own."""
        self.closing = True
        if self._flusher is not None:
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
            try:
                async with asyncio.timeout(2):
                    await asyncio.shield(self._flusher)
            except TimeoutError:
                logger.warning("generation hub: pending frames not written to Redis at shutdown")
            self._flusher.cancel()
        if self._subscriber is not None:
            self._subscriber.cancel()
            await asyncio.gather(self._subscriber, return_exceptions=True)
        for channel in self._channels.values():
            channel._remote = False
        try:
            await self.redis.aclose()
        except REDIS_ERRORS as exc:
            self._log_error("closing the Redis client", exc)
