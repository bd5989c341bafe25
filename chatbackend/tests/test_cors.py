"""CORS: the frontend at FRONTEND_URL may call the API and read the stream's headers; nobody
else gets CORS headers."""

import json

import pytest
from django.test import AsyncClient

FRONTEND = "https://app.example.com"


@pytest.fixture(autouse=True)
def frontend(settings):
    settings.CORS_ALLOWED_ORIGINS = [FRONTEND]


def preflight(client, origin):
    return client.options(
        "/api/chat/stream/",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


def test_preflight_from_the_frontend_is_allowed(client):
    response = preflight(client, FRONTEND)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed


def test_preflight_from_another_origin_gets_no_cors_headers(client):
    response = preflight(client, "https://evil.example.net")

    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def exposed(response) -> set[str]:
    return {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}


@pytest.mark.django_db(transaction=True)
async def test_stream_response_exposes_its_headers_to_the_frontend(auth_header):
    response = await AsyncClient().post(
        "/api/chat/stream/",
        json.dumps({"message": "hi"}),
        content_type="application/json",
        headers={**auth_header, "Origin": FRONTEND},
    )
    async for _chunk in response.streaming_content:
        pass

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    assert {"x-vercel-ai-ui-message-stream", "retry-after"} <= exposed(response)


@pytest.mark.django_db(transaction=True)  # the view's database work runs in its own threads
def test_rate_limit_response_is_readable_by_the_frontend(api, settings, user):
    settings.CHAT_RATE_LIMIT = "1/h"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "cors-rate-limit-test",
        }
    }
    body = {}  # refused before anything is generated
    assert api.post("/api/chat/stream/", body, format="json").status_code == 400

    response = api.post("/api/chat/stream/", body, format="json", headers={"Origin": FRONTEND})

    assert response.status_code == 429
    assert response["Access-Control-Allow-Origin"] == FRONTEND
    assert "retry-after" in exposed(response)
    assert int(response["Retry-After"]) >= 1


@pytest.mark.django_db
def test_another_origin_gets_no_cors_headers_on_real_requests(api):
    response = api.get("/api/usage/", headers={"Origin": "https://evil.example.net"})

    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
