"""Fixtures of the hub tests (core.hub): its settings on each backend (memory only; REDIS_URL on
its own database), and hubs that are closed with the test."""

from __future__ import annotations

import pytest
import redis

from core.hub import Hub

from .hub_support import redis_url_or_skip


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
