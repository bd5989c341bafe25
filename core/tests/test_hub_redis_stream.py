"""core.hub.redis_stream: through Redis, the frames of a generation reach listeners on other hubs
(other processes), in order and from the first; a lost Redis never touches the local path."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from tests.polling import eventually_async

from .hub_support import (
    REDIS_DB,
    WAIT_S,
    closed_port_url,
    frame,
    new_key,
    next_frames,
    read_all,
)


async def test_live_frames_reach_a_listener_on_another_hub_before_the_close(
    redis_settings, make_hub
):
    owner, other = make_hub(), make_hub()
    key = new_key()
    channel = owner.open(key)
    await owner.flush()
    remote = await other.listen(key)
    for i in range(3):
        waiting = asyncio.ensure_future(anext(remote))
        channel.publish(frame(i))
        assert await asyncio.wait_for(waiting, WAIT_S) == frame(i)
    channel.close()
    assert await asyncio.wait_for(read_all(remote), WAIT_S) == []


async def test_frames_cross_to_a_listener_on_another_hub_in_order(redis_settings, make_hub):
    owner, other = make_hub(), make_hub()
    key = new_key()
    channel = owner.open(key)
    channel.publish(frame(0))
    assert await owner.flush() is True
    remote = await other.listen(key)
    assert remote is not None
    reading = asyncio.ensure_future(read_all(remote))
    for i in range(1, 50):
        channel.publish(frame(i))
        if i % 7 == 0:
            await owner.flush()  # several entries, each a batch of frames
    channel.close()
    assert await asyncio.wait_for(reading, WAIT_S) == [frame(i) for i in range(50)]


async def test_a_listener_on_another_hub_joining_midway_gets_every_frame(redis_settings, make_hub):
    owner, other = make_hub(), make_hub()
    key = new_key()
    channel = owner.open(key)
    local = await owner.listen(key)
    for i in range(10):
        channel.publish(frame(i))
    assert await asyncio.wait_for(next_frames(local, 10), WAIT_S) == [frame(i) for i in range(10)]
    await owner.flush()

    remote = await other.listen(key)
    first_ten = await asyncio.wait_for(next_frames(remote, 10), WAIT_S)
    assert first_ten == [frame(i) for i in range(10)]
    for i in range(10, 15):
        channel.publish(frame(i))
    channel.close()
    assert await asyncio.wait_for(read_all(remote), WAIT_S) == [frame(i) for i in range(10, 15)]
    assert await asyncio.wait_for(read_all(local), WAIT_S) == [frame(i) for i in range(10, 15)]


async def test_a_listener_on_another_hub_after_the_close_gets_all_then_none_after_grace(
    redis_settings, make_hub
):
    redis_settings.GENERATION_GRACE_S = 1
    owner, other = make_hub(), make_hub()
    key = new_key()
    channel = owner.open(key)
    for i in range(4):
        channel.publish(frame(i))
    channel.close()
    await owner.flush()
    late = await other.listen(key)
    assert late is not None
    assert await asyncio.wait_for(read_all(late), WAIT_S) == [frame(i) for i in range(4)]

    async def not_running() -> bool:
        return await other.listen(key) is None

    assert await eventually_async(not_running, timeout_s=WAIT_S)


async def test_frames_reach_redis_only_once_a_listener_elsewhere_asks_then_one_entry_a_flush(
    redis_settings, make_hub, raw_redis
):
    redis_settings.GENERATION_STREAM_MAXLEN = 1000
    redis_settings.GENERATION_STREAM_TTL_S = 120
    owner, other = make_hub(), make_hub()
    key = new_key()
    channel = owner.open(key)
    for i in range(20):  # one loop turn
        channel.publish(frame(i))
    await owner.flush()
    stream, live = f"test:gen:{key}:frames", f"test:gen:{key}:live"
    # Nobody elsewhere listens: only the marker that says where it runs.
    assert await raw_redis.exists(stream) == 0
    assert await raw_redis.get(live) == owner.id.encode()

    remote = await other.listen(key)
    assert await asyncio.wait_for(next_frames(remote, 20), WAIT_S) == [frame(i) for i in range(20)]
    assert await raw_redis.xlen(stream) == 1  # what was there, in one entry, one round trip
    assert 0 < await raw_redis.ttl(stream) <= 120

    channel.close()
    await owner.flush()
    assert await asyncio.wait_for(read_all(remote), WAIT_S) == []
    assert await raw_redis.xlen(stream) == 2  # the end marker
    assert await raw_redis.get(live) == b"closed:" + owner.id.encode()


async def test_a_listener_on_another_hub_ends_when_the_owner_dies(redis_settings, make_hub):
    redis_settings.GENERATION_LIVE_TTL_S = 1
    owner, other = make_hub(), make_hub()
    key = new_key()
    channel = owner.open(key)
    channel.publish(frame(0))
    await owner.flush()
    remote = await other.listen(key)
    reading = asyncio.ensure_future(read_all(remote))
    await owner.aclose()  # its heartbeat stops; the generation never closes
    channel.publish(frame(1))  # still served locally, no longer mirrored
    assert await asyncio.wait_for(reading, WAIT_S) == [frame(0)]
    assert await other.listen(key) is None


async def test_a_lost_redis_leaves_the_local_path_working(hub_settings, make_hub, caplog):
    hub_settings.REDIS_URL = closed_port_url()
    hub = make_hub()
    other = make_hub()
    key = new_key()
    channel = hub.open(key)
    listener = await hub.listen(key)
    reading = asyncio.ensure_future(read_all(listener))
    for i in range(20):
        channel.publish(frame(i))
        await asyncio.sleep(0)
    assert await hub.stop(key) is True  # local: no Redis needed
    assert channel.stopped.is_set()
    channel.close()
    assert await asyncio.wait_for(reading, WAIT_S) == [frame(i) for i in range(20)]

    assert await hub.flush() is False
    assert await other.listen(key) is None  # cannot know: "not running", not an exception
    assert await other.stop(key) is False
    assert any("generation hub" in r.getMessage() for r in caplog.records)


class RedisLink:
    """A TCP relay to Redis that a test can cut and restore: a Redis that goes away and comes
    back, as the owning hub sees it (its address stays the same)."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: list[asyncio.WriteTransport] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{REDIS_DB}"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        self._server.close()
        for transport in self._transports:
            transport.abort()
        self._transports.clear()

    async def _relay(self, client_reader, client_writer) -> None:
        redis_reader, redis_writer = await asyncio.open_connection(*self.target)
        self._transports += [client_writer.transport, redis_writer.transport]

        async def pump(reader, writer) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pump(client_reader, redis_writer), pump(redis_reader, client_writer))


async def test_after_redis_comes_back_the_frames_written_meanwhile_reach_other_hubs(
    redis_settings, make_hub
):
    link = RedisLink(redis_settings.REDIS_URL)
    await link.up()
    other = make_hub()
    redis_settings.REDIS_URL = link.url
    owner = make_hub()
    key = new_key()
    channel = owner.open(key)
    local = await owner.listen(key)
    for i in range(5):
        channel.publish(frame(i))
    assert await owner.flush() is True
    remote = await other.listen(key)
    assert await asyncio.wait_for(next_frames(remote, 5), WAIT_S) == [frame(i) for i in range(5)]

    await link.cut()
    for i in range(5, 10):
        channel.publish(frame(i))
    assert await asyncio.wait_for(next_frames(local, 10), WAIT_S) == [frame(i) for i in range(10)]
    assert await owner.flush() is False

    await link.up()
    assert await eventually_async(owner.flush, timeout_s=10)
    assert await asyncio.wait_for(next_frames(remote, 5), WAIT_S) == [
        frame(i) for i in range(5, 10)
    ]

    async def stopped_from_the_other_hub() -> bool:
        return await other.stop(key)  # needs the owner's stop subscription back

    assert await eventually_async(stopped_from_the_other_hub, timeout_s=10)
    await asyncio.wait_for(channel.stopped.wait(), WAIT_S)
    channel.close()
    assert await asyncio.wait_for(read_all(remote), WAIT_S) == []
    await link.cut()
