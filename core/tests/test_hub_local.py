"""core.hub.local: the frames of a running generation reach its listeners in this process.

Every behaviour a listener can see runs on both backends (memory only, and with REDIS_URL: the
mirror must not change what a local listener gets)."""

from __future__ import annotations

import asyncio

from core.hub import Hub, HubConfig, aclose_hub, get_hub
from tests.polling import eventually_async

from .hub_support import WAIT_S, frame, new_key, next_frames, read_all


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
