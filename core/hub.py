"""Frames of running generations, for listeners in this process and, with Redis, on other hosts.

A generation (a streamed reply) `open`s a `Channel` under a string key, `publish`es each encoded
frame to it and `close`s it after its last frame. Anyone may `listen(key)`: they get every frame
from the first, then the live ones, until the close. `stop(key)` asks the generation to stop
(it watches `channel.stopped`), wherever it runs.

In this process the frames live in a list on the channel: `publish` is an append, and wakes only
the listeners that are waiting (no task, future or Redis call per frame). The list is kept while
the channel is open and for `GENERATION_GRACE_S` after its close, so a listener arriving just after
the end still gets the whole stream.

With `REDIS_URL` the hub also mirrors every channel to Redis, off the publishing path: `publish`
only marks the channel dirty, and one background flusher per hub writes the new frames of all dirty
channels in one pipeline (one XADD per channel per round, its frames as the fields of one stream
entry). Per key, in Redis:

- `{prefix}:{key}:frames`: a stream of entries, each a batch of frames in fields "0", "1", ...; the
  close adds a field "end" to the last entry. Bounded by `GENERATION_STREAM_MAXLEN` entries
  (approximate trimming) and expiring `GENERATION_STREAM_TTL_S` after the last refresh (refreshed
  while the generation runs, set again at its close).
- `{prefix}:{key}:live`: the owning hub's id while the generation runs (expiring after
  `GENERATION_LIVE_TTL_S` unless the flusher's heartbeat refreshes it, so a dead process's
  generations stop counting as running), then "closed" for `GENERATION_GRACE_S`. No key: nothing
  runs.
- Stop requests go over pub/sub to `{prefix}:stop:{owner id}`: each hub subscribes to its own
  channel on one connection, and sets `stopped` on its local channel when a key arrives.

Redis is never on the generation's path: when it is down or slow, publish and local listeners go
on, the flusher retries with backoff, errors are logged at most every 30 s, and remote listen/stop
answer None/False.

`publish`, `close` and everything else must be called from the event loop the hub belongs to; one
hub per event loop: `get_hub()`."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# What a lost, slow or failing Redis raises through redis-py's asyncio client.
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)
_END = b"end"
_CLOSED = b"closed"  # the live marker after the end: b"closed:" + the owner's id
_MIRROR = "mirror:"  # on an owner's channel: a listener elsewhere wants this key's frames


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
        # Redis mirroring: how many frames are written, whether the channel waits in the
        # flusher's list, whether its live marker and end marker are written.
        self._remote = remote
        self._sent = 0
        self._dirty = False
        self._live_sent = False
        self._end_sent = False
        # Frames go to Redis only once a listener elsewhere asks for them (`Hub.listen` on
        # another hub): a reply nobody resumes costs two marker writes, not one per flush.
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


def _reraise_cancellation() -> None:
    """On Python 3.11, a cancellation that meets a timeout expiring inside redis-py comes out as
    a TimeoutError: a background task that retries on errors would then never end (the event
    loop's final cancel is lost). Raise it as what it is."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class _RateLimitedLog:
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


class Hub:
    """The running generations of one event loop (a worker process), and their Redis mirror."""

    def __init__(self, config: HubConfig | None = None) -> None:
        self.config = config or HubConfig.from_settings()
        self.id = uuid.uuid4().hex
        self._channels: dict[str, Channel] = {}
        self._log_error = _RateLimitedLog()
        self._closing = False
        self._redis: Any = None
        if self.config.redis_url:
            # redis-py's own retries (10, up to 1 s apart by default) would make a remote listen
            # or stop hang on a lost Redis; one quick retry covers a pooled connection that went
            # stale, and the flusher backs off by itself.
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialWithJitterBackoff

            self._redis = Redis.from_url(
                self.config.redis_url,
                socket_connect_timeout=2,
                socket_timeout=max(10.0, self._block_ms / 1000 + 5),
                retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 1),
                health_check_interval=30,
            )
        self._dirty: list[Channel] = []
        self._wake: asyncio.Future[None] | None = None
        self._flush_waiters: list[asyncio.Future[bool]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._subscriber: asyncio.Task[None] | None = None
        self._stops_ready = asyncio.Event()  # subscribed, or the first attempt failed
        self._next_heartbeat = 0.0

    # --- the generation's side ----------------------------------------------------------------

    def open(self, key: str) -> Channel:
        """A generation starts in this process under `key` (unique: e.g. the reply's uuid)."""
        if self._closing:
            raise RuntimeError("the generation hub is closed")
        existing = self._channels.get(key)
        if existing is not None and not existing.closed:
            raise ValueError(f"a generation with key {key!r} is already running here")
        channel = Channel(self, key, remote=self._redis is not None)
        self._channels[key] = channel
        if channel._remote:
            self._start_background_tasks()
            self._mark_dirty(channel)
        return channel

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
        if self._redis is None or self._closing:
            return None
        try:
            state = await self._redis.get(self._live_key(key))
        except _REDIS_ERRORS as exc:  # say "not running" rather than fail
            self._log_error("listen", exc)
            return None
        if state is None:
            return None
        owner = state.split(b":", 1)[1] if state.startswith(_CLOSED) else state
        try:
            reached = await self._redis.publish(self._stop_channel(owner.decode()), _MIRROR + key)
            if not reached and not await self._redis.exists(self._stream_key(key)):
                return None  # its owner is gone and nothing was mirrored
        except _REDIS_ERRORS as exc:
            self._log_error("listen", exc)
            return None
        return self._frames_from_redis(key)

    async def _frames_from_redis(self, key: str) -> AsyncIterator[bytes]:
        stream, live = self._stream_key(key), self._live_key(key)
        last_id: bytes | str = "0-0"
        while True:
            try:
                reply = await self._redis.xread({stream: last_id}, count=100, block=self._block_ms)
                if not reply:
                    # Nothing new for a while: go on only while the owner's heartbeat says it runs
                    # (an end marker we have not seen with "closed" means the stream expired).
                    state = await self._redis.get(live)
                    if state is None or state.startswith(_CLOSED):
                        return
                    continue
            except _REDIS_ERRORS as exc:  # a lost Redis ends the listener, never the generation
                self._log_error("reading a generation's stream", exc)
                return
            for entry_id, fields in reply[0][1]:
                last_id = entry_id
                for name, frame in fields.items():
                    if name == _END:
                        return
                    yield frame

    async def stop(self, key: str) -> bool:
        """Ask the generation `key` to stop wherever it runs; True if it was found running."""
        channel = self._channels.get(key)
        if channel is not None:
            if channel.closed:
                return False
            channel.request_stop()
            return True
        if self._redis is None or self._closing:
            return False
        try:
            owner = await self._redis.get(self._live_key(key))
            if owner is None or owner.startswith(_CLOSED):
                return False
            receivers = await self._redis.publish(self._stop_channel(owner.decode()), key)
        except _REDIS_ERRORS as exc:
            self._log_error("stop", exc)
            return False
        return receivers > 0

    # --- Redis mirror ---------------------------------------------------------------------------

    def _live_key(self, key: str) -> str:
        return f"{self.config.key_prefix}:{key}:live"

    def _stream_key(self, key: str) -> str:
        return f"{self.config.key_prefix}:{key}:frames"

    def _stop_channel(self, hub_id: str) -> str:
        return f"{self.config.key_prefix}:stop:{hub_id}"

    @property
    def _block_ms(self) -> int:
        """How long a remote listener's XREAD waits before it checks the owner still runs."""
        return int(min(5000, max(100, self.config.live_ttl_s * 1000 / 3)))

    def _mark_dirty(self, channel: Channel) -> None:
        channel._dirty = True
        self._dirty.append(channel)
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    def _start_background_tasks(self) -> None:
        loop = asyncio.get_running_loop()
        if self._subscriber is None:
            self._subscriber = loop.create_task(self._receive_stops(), name="hub-stops")
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush_forever(), name="hub-flusher")

    async def flush(self) -> bool:
        """Wait until the frames published so far were written to Redis (True) or the attempt
        failed (False). Immediate True without Redis. For tests and shutdown."""
        if self._redis is None or self._flusher is None or self._flusher.done():
            return self._redis is None
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
        ready = loop.create_task(self._stops_ready.wait())
        try:
            await asyncio.wait({ready}, timeout=2)
        finally:
            ready.cancel()
        while True:
            if not self._dirty and not self._flush_waiters:
                if self._closing:
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
                if self._closing:
                    return
                await asyncio.sleep(min(5.0, 0.05 * 2**failures))  # back off while Redis is down

    async def _write(self, *, heartbeat: bool) -> bool:
        """One pipeline with the new frames of every dirty channel (and, on a heartbeat, the
        refreshed markers of every running one)."""
        batch, self._dirty = self._dirty, []
        config = self.config
        pipe = self._redis.pipeline(transaction=False)
        written: list[tuple[Channel, int, bool]] = []
        for channel in batch:
            channel._dirty = False
            stream, live = self._stream_key(channel.key), self._live_key(channel.key)
            end, closed = len(channel.frames), channel.closed
            if not channel._live_sent and not closed:
                pipe.set(live, self.id, ex=math.ceil(config.live_ttl_s))
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
                    live, _CLOSED + b":" + self.id.encode(), px=max(1, int(config.grace_s * 1000))
                )
            written.append((channel, end if mirrored else channel._sent, closed and mirrored))
        if heartbeat:
            for channel in self._channels.values():
                if channel._remote and channel._live_sent and not channel.closed:
                    pipe.set(self._live_key(channel.key), self.id, ex=math.ceil(config.live_ttl_s))
                    if channel._mirrored:
                        pipe.expire(self._stream_key(channel.key), config.stream_ttl_s)
        if not len(pipe):
            return True
        try:
            await pipe.execute()
        # Anything at all: the flusher must outlive every failure, or mirroring stops for good.
        except Exception as exc:  # noqa: BLE001 - keep the frames, retry later
            _reraise_cancellation()
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

    async def _receive_stops(self) -> None:
        """Sets `stopped` on this hub's channels named on its pub/sub channel; reconnects (and
        resubscribes) with backoff when Redis goes away."""
        pubsub = self._redis.pubsub()
        name = self._stop_channel(self.id)
        failures = 0
        try:
            while True:
                try:
                    if not pubsub.subscribed:
                        await pubsub.subscribe(name)
                    # Not forever: waking every few seconds lets redis-py's health check (a PING
                    # after 30 s idle) find a connection that died without closing.
                    message = await pubsub.get_message(timeout=self._block_ms / 1000)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the subscriber must outlive any failure
                    _reraise_cancellation()
                    self._log_error("listening for stop requests", exc)
                    self._stops_ready.set()
                    failures += 1
                    await asyncio.sleep(min(5.0, 0.05 * 2**failures))
                    continue
                failures = 0
                if message is None:
                    _reraise_cancellation()  # redis-py may have turned it into a timeout
                    continue
                if message["type"] == "subscribe":
                    self._stops_ready.set()
                elif message["type"] == "message":
                    data = message["data"].decode()
                    if data.startswith(_MIRROR):
                        channel = self._channels.get(data[len(_MIRROR) :])
                        if channel is not None and channel._remote and not channel._mirrored:
                            channel._mirrored = True
                            if not channel._dirty:
                                self._mark_dirty(channel)
                        continue
                    channel = self._channels.get(data)
                    if channel is not None and not channel.closed:
                        channel.request_stop()
        finally:
            try:
                await pubsub.aclose()
            except _REDIS_ERRORS as exc:
                self._log_error("closing the stop subscription", exc)

    # --- shutdown -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Write what is pending (up to 2 s), then drop the Redis connections. Channels still
        open keep working for their local listeners; their live markers expire on their own."""
        if self._closing:
            return
        self._closing = True
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
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except _REDIS_ERRORS as exc:
                self._log_error("closing the Redis client", exc)


_lock = threading.Lock()
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()
_retired: set[asyncio.Task[None]] = set()


def get_hub() -> Hub:
    """The hub of the running event loop (built from settings on first use). Built again when the
    settings it came from change (pytest-django's `settings` fixture); the old one is closed."""
    loop = asyncio.get_running_loop()
    config = HubConfig.from_settings()
    with _lock:
        hub = _by_loop.get(loop)
        if hub is not None and hub.config == config and not hub._closing:
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
