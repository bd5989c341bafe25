"""Redis down (issue 10, #4): the rate limits cannot be counted, so chat and agent requests go
ahead unlimited, with one warning a minute, instead of each failing with a 500; /readyz says so.
A Redis that accepts connections and never answers costs one timeout, not one per request."""

import json
import logging
import socket
import threading

import pytest
from django.test import AsyncClient

from agents.models import AgentRun
from chat.models import Message
from core import throttling
from tests.live_server import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_down(settings, monkeypatch):
    """REDIS_URL pointing at a port where nothing listens, limits on, no warning given yet."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/2",
        }
    }
    settings.CHAT_RATE_LIMIT = "10/m"
    settings.AGENT_RATE_LIMIT = "10/m"
    # No warning given yet, no failure remembered (both restored after the test).
    monkeypatch.setattr(throttling, "_last_warning", float("-inf"), raising=False)
    monkeypatch.setattr(throttling, "_cache_down_until", 0.0, raising=False)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "core.throttling"]


async def test_chat_streams_while_redis_is_down(redis_down, auth_header, caplog):
    caplog.set_level(logging.WARNING, logger="core.throttling")
    client = AsyncClient()
    for turn in range(3):
        response = await client.post(
            "/api/chat/stream/",
            json.dumps({"message": f"hello {turn}"}),
            content_type="application/json",
            headers=auth_header,
        )
        assert response.status_code == 200
        body = b"".join([chunk async for chunk in response.streaming_content]).decode()
        assert body.rstrip().endswith("data: [DONE]")

    assert await Message.objects.filter(role="assistant").acount() == 3
    warnings = warnings_of(caplog)
    assert len(warnings) == 1, warnings  # one a minute, not one a request
    assert warnings[0].startswith("Rate limits are not enforced: the cache is unavailable")


async def test_agent_runs_while_redis_is_down(redis_down, auth_header):
    response = await AsyncClient().post(
        "/api/agents/sequential/",
        json.dumps({"input": "a solar charger"}),
        content_type="application/json",
        headers={**auth_header, "Accept": "application/json"},
    )
    assert response.status_code == 200, response.content[:500]
    assert response.json()["status"] == "complete"
    assert await AgentRun.objects.filter(status="complete").acount() == 1


async def test_readyz_reports_the_cache_unavailable(redis_down):
    response = await AsyncClient().get("/readyz")
    assert response.status_code == 503
    assert response.json()["cache"] == "unavailable"


@pytest.fixture
def redis_that_never_answers(settings, monkeypatch):
    """A TCP server that accepts connections and reads, but never replies; counts connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{listener.getsockname()[1]}/2",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    settings.CHAT_RATE_LIMIT = "10/m"
    settings.REDIS_URL = ""  # the generation hub (core.hub) stays local: this is about the cache
    monkeypatch.setattr(throttling, "_last_warning", float("-inf"), raising=False)
    monkeypatch.setattr(throttling, "_cache_down_until", 0.0, raising=False)
    yield accepted
    listener.close()
    for connection in accepted:
        connection.close()


async def test_a_redis_that_never_answers_costs_one_timeout_not_one_per_request(
    redis_that_never_answers, auth_header
):
    client = AsyncClient()

    async def turn(text):
        response = await client.post(
            "/api/chat/stream/",
            json.dumps({"message": text}),
            content_type="application/json",
            headers=auth_header,
        )
        body = b"".join([chunk async for chunk in response.streaming_content]).decode()
        assert response.status_code == 200
        assert body.rstrip().endswith("data: [DONE]")

    await turn("first")
    tried = len(redis_that_never_answers)
    for n in range(4):
        await turn(f"then {n}")

    assert tried >= 1  # the first request did try Redis (and timed out)
    assert len(redis_that_never_answers) == tried  # the next ones left it alone: no waits
