"""core.hub.stop: a stop reaches the running generation, here or on another hub."""

from __future__ import annotations

import asyncio

from .hub_support import WAIT_S, new_key


async def test_stop_sets_stopped_on_a_running_generation_only(backend_settings, make_hub):
    hub = make_hub()
    key = new_key()
    channel = hub.open(key)
    assert not channel.stopped.is_set()
    assert await hub.stop(key) is True
    assert channel.stopped.is_set()
    channel.close()
    assert await hub.stop(key) is False


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
