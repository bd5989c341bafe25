"""core.hub: the frames of a running generation reach its listeners, here and through Redis.

Every behaviour a listener can see runs on both backends (memory only; REDIS_URL on db 7); what
only Redis gives (another process's listener or stop, a lost Redis) runs on Redis. Two Hub
objects with their own Redis connections stand for two worker processes."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
import weakref
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from core.hub import Hub, HubConfig, aclose_hub, get_hub
from tests.polling import eventually_async

REDIS_DB = 7  # this test module's own Redis database (see the hub brief)
WAIT_S = 5


def redis_url() -> str:
    """REDIS_URL (or a local Redis) on this module's own database."""
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


def redis_url_or_skip() -> str:
    url = redis_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            raise  # CI always has Redis: a missing one is a failure, not a skip
        pytest.skip(
            f"Redis at {url} is unreachable ({type(exc).__name__}): Redis hub tests skipped"
        )
    return url


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/{REDIS_DB}"


def frame(i: int) -> bytes:
    return f'data: {{"type":"text-delta","id":"t","delta":"word {i} "}}\n\n'.encode()


def new_key() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def hub_settings(settings):
    settings.GENERATION_GRACE_S = 10.0
    settings.GENERATION_LIVE_TTL_S = 15.0
    settings.GENERATION_STREAM_TTL_S = 120
    settings.GENERATION_STREAM_MAXLEN = 1000
    settings.GENERATION_FLUSH_INTERVAL_MS = 0
    settings.GENERATION_KEY_PREFIX = "test:gen"
    return settings


@pytest.fixture
def memory_settings(hub_settings):
    hub_settings.REDIS_URL = None
    return hub_settings


@pytest.fixture
def redis_settings(hub_settings):
    hub_settings.REDIS_URL = redis_url_or_skip()
    return hub_settings


@pytest.fixture(params=["memory", "redis"])
def backend_settings(request, hub_settings):
    hub_settings.REDIS_URL = redis_url_or_skip() if request.param == "redis" else None
    return hub_settings


@pytest.fixture
async def make_hub():
    """Builds Hubs from the settings as they are (one per simulated process); closes them all."""
    hubs: list[Hub] = []

    def make() -> Hub:
        hub = Hub()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.aclose()


@pytest.fixture
async def raw_redis(redis_settings):
    client = redis.asyncio.Redis.from_url(redis_settings.REDIS_URL)
    yield client
    await client.aclose()


# A listener may get several frames in one chunk (one socket write for them): the helpers split
# chunks back into frames, keeping what a partial read did not use for the next read.
_leftover: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _split(chunk: bytes) -> list[bytes]:
    return [part + b"\n\n" for part in chunk.split(b"\n\n")[:-1]]


async def read_all(frames) -> list[bytes]:
    got = _leftover.pop(frames, [])
    async for chunk in frames:
        got += _split(chunk)
    return got


async def next_frames(frames, n: int) -> list[bytes]:
    got = _leftover.pop(frames, [])
    while len(got) < n:
        got += _split(await anext(frames))
    _leftover[frames] = got[n:]
    return got[:n]


# --- both backends -------------------------------------------------------------------------


async def test_listener_from_the_start_gets_every_frame_then_ends_at_close(
    backend_settings, make_hub
):
    hub = make_hub()
    key = new_key()
    channel = hub.open(key)
    listener = await hub.listen(key)
    assert listener is not None
    reading = asyncio.ensure_future(read_all(listener))
    for i in range(20):
        channel.publish(frame(i))
        await asyncio.sleep(0)  # another chunk arrives in a later turn of the loop
    channel.close()
    assert await asyncio.wait_for(reading, WAIT_S) == [frame(i) for i in range(20)]


async def test_a_waiting_listener_gets_each_frame_when_published_not_at_the_close(
    backend_settings, make_hub
):
    hub = make_hub()
    key = new_key()
    channel = hub.open(key)
    listener = await hub.listen(key)
    for i in range(3):
        waiting = asyncio.ensure_future(anext(listener))
        await asyncio.sleep(0)  # the listener is now waiting for a frame
        assert not waiting.done()
        channel.publish(frame(i))
        assert await asyncio.wait_for(waiting, WAIT_S) == frame(i)
    assert not channel.closed
    channel.close()
    assert await asyncio.wait_for(read_all(listener), WAIT_S) == []


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


async def test_listener_joining_midway_gets_every_frame_from_the_first(backend_settings, make_hub):
    hub = make_hub()
    key = new_key()
    channel = hub.open(key)
    first = await hub.listen(key)
    for i in range(5):
        channel.publish(frame(i))
    assert await asyncio.wait_for(next_frames(first, 5), WAIT_S) == [frame(i) for i in range(5)]

    second = await hub.listen(key)
    both = asyncio.gather(read_all(first), read_all(second))
    for i in range(5, 10):
        channel.publish(frame(i))
        await asyncio.sleep(0)
    channel.close()
    rest_of_first, all_of_second = await asyncio.wait_for(both, WAIT_S)
    assert rest_of_first == [frame(i) for i in range(5, 10)]
    assert all_of_second == [frame(i) for i in range(10)]


async def test_nothing_running_under_a_key_means_no_listener_and_no_stop(
    backend_settings, make_hub
):
    hub = make_hub()
    assert await hub.listen(new_key()) is None
    assert await hub.stop(new_key()) is False


async def test_listener_arriving_just_after_the_close_gets_all_until_the_grace_ends(
    backend_settings, make_hub
):
    backend_settings.GENERATION_GRACE_S = 0.3
    hub = make_hub()
    key = new_key()
    channel = hub.open(key)
    for i in range(3):
        channel.publish(frame(i))
    channel.close()
    channel.publish(frame(99))  # after the close: dropped

    late = await hub.listen(key)
    assert late is not None
    assert await asyncio.wait_for(read_all(late), WAIT_S) == [frame(i) for i in range(3)]

    async def forgotten() -> bool:
        return await hub.listen(key) is None

    assert await eventually_async(forgotten, timeout_s=WAIT_S)
    assert key not in hub._channels  # the frames left memory with the channel


async def test_stop_sets_stopped_on_a_running_generation_only(backend_settings, make_hub):
    hub = make_hub()
    key = new_key()
    channel = hub.open(key)
    assert not channel.stopped.is_set()
    assert await hub.stop(key) is True
    assert channel.stopped.is_set()
    channel.close()
    assert await hub.stop(key) is False


async def test_get_hub_is_one_per_loop_and_follows_the_settings(backend_settings):
    hub = get_hub()
    try:
        assert get_hub() is hub
        assert (hub.config.redis_url is None) == (backend_settings.REDIS_URL is None)
        backend_settings.GENERATION_GRACE_S = 1.5
        rebuilt = get_hub()
        assert rebuilt is not hub and rebuilt.config.grace_s == 1.5
    finally:
        await aclose_hub()
        await hub.aclose()


def test_a_frame_costs_no_more_memory_than_itself_and_a_list_slot(memory_settings):
    """A normal reply (~300 chunks of ~70 bytes) keeps well under 100 KB per open channel."""
    import sys

    async def publish_reply() -> int:
        hub = Hub()
        channel = hub.open(new_key())
        for i in range(300):
            channel.publish(frame(i))
        size = sys.getsizeof(channel.frames) + sum(sys.getsizeof(f) for f in channel.frames)
        channel.close()
        await hub.aclose()
        return size

    assert asyncio.run(publish_reply()) < 40_000


# --- Redis: several processes ----------------------------------------------------------------


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


async def test_stop_from_another_hub_reaches_the_owner(redis_settings, make_hub):
    owner, other = make_hub(), make_hub()
    key = new_key()
    channel = owner.open(key)
    await owner.flush()
    assert await other.stop(key) is True
    await asyncio.wait_for(channel.stopped.wait(), WAIT_S)

    channel.close()
    await owner.flush()
    assert await other.stop(key) is False  # ended: nothing to stop


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


def test_hub_config_reads_every_setting(hub_settings):
    hub_settings.REDIS_URL = "redis://example:6379/3"
    hub_settings.GENERATION_FLUSH_INTERVAL_MS = 5
    assert HubConfig.from_settings() == HubConfig(
        redis_url="redis://example:6379/3",
        key_prefix="test:gen",
        stream_maxlen=1000,
        stream_ttl_s=120,
        live_ttl_s=15.0,
        grace_s=10.0,
        flush_interval_s=0.005,
    )


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
