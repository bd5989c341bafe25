"""Per-user rate limits: a 429 JSON error with Retry-After, counted in the shared cache, so that
two server processes on one Redis enforce one limit."""

import json
import uuid

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import AsyncClient

from conftest import bearer
from tests.live_server import ServerProcess, database_url_for_subprocess, production_env
from tests.require import require, required_redis_url


@pytest.fixture
def fresh_rate_counts(settings):
    """The same cache backend, under a key prefix of its own: counts left by earlier tests or
    runs (Redis keeps them) cannot leak in."""
    default = dict(django_settings.CACHES["default"])
    default["KEY_PREFIX"] = f"ratelimit-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": default}


async def post(client, path, body, headers):
    return await client.post(
        path, json.dumps(body), content_type="application/json", headers=headers
    )


@pytest.mark.django_db(transaction=True)
async def test_chat_limit_gives_429_json_with_retry_after(
    settings, fresh_rate_counts, auth_header, other_user
):
    settings.CHAT_RATE_LIMIT = "2/h"
    client = AsyncClient()

    for _ in range(2):
        response = await post(client, "/api/chat/stream/", {"message": "hi"}, auth_header)
        assert response.status_code == 200
        async for _chunk in response.streaming_content:
            pass
    refused = await post(client, "/api/chat/stream/", {"message": "hi"}, auth_header)

    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    body = json.loads(refused.content)
    assert body["error"]["code"] == "rate_limited"
    retry_after = int(refused["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert body["error"]["message"] == f"Rate limit exceeded. Retry in {retry_after} seconds."
    # Per user: someone else still gets through.
    other = await post(
        client, "/api/chat/stream/", {"message": "hi"}, {"Authorization": bearer(other_user)}
    )
    assert other.status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_agent_limit_counts_separately_from_chat(settings, fresh_rate_counts, auth_header):
    settings.CHAT_RATE_LIMIT = "1/h"
    settings.AGENT_RATE_LIMIT = "1/h"
    client = AsyncClient()

    # An invalid body is refused after the throttle counted it: 400, then 429.
    assert (await post(client, "/api/agents/sequential/", {}, auth_header)).status_code == 400
    refused = await post(client, "/api/agents/sequential/", {}, auth_header)
    assert refused.status_code == 429
    assert json.loads(refused.content)["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    # The chat limit is its own count.
    assert (await post(client, "/api/chat/stream/", {}, auth_header)).status_code == 400


@pytest.mark.django_db(transaction=True)
async def test_zero_disables_the_limit(settings, fresh_rate_counts, auth_header):
    settings.CHAT_RATE_LIMIT = "0"
    client = AsyncClient()
    for _ in range(5):
        assert (await post(client, "/api/chat/stream/", {}, auth_header)).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_two_server_processes_share_one_limit_through_redis(user):
    redis_url = required_redis_url("two server processes share a limit only through Redis")
    database_url = database_url_for_subprocess()
    require(database_url, "the test database is in memory: another process cannot see its users")
    env = production_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CACHE_KEY_PREFIX=f"ratelimit-test-{uuid.uuid4().hex}",
        CHAT_RATE_LIMIT="3/h",
    )
    headers = {"Authorization": bearer(user)}
    with ServerProcess(env) as first, ServerProcess(env) as second:
        statuses = []
        for server in (first, second, first, second, first):
            response = httpx.post(
                f"{server.url}/api/chat/stream/",
                json={"message": "hi"},
                headers=headers,
                timeout=10,
            )
            statuses.append(response.status_code)
        last = response

    assert statuses == [200, 200, 200, 429, 429]
    assert last.json()["error"]["code"] == "rate_limited"
    assert int(last.headers["Retry-After"]) >= 1
