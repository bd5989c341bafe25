"""Fixtures and helpers for the agent tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.cache import cache
from django.test import AsyncClient
from pydantic import BaseModel
from rest_framework_simplejwt.tokens import RefreshToken

from llm.structured import build_example
from tests.sse import parse_sse

SSE = "text/event-stream"
JSON = "application/json"
TEXT = "text/plain"


@pytest.fixture(autouse=True)
def _fresh_step_cache():
    """Each test starts with an empty cache (agent step cache and rate-limit counters)."""
    cache.clear()
    yield
    cache.clear()


def client_for(user) -> AsyncClient:
    client = AsyncClient()
    client.auth = {"Authorization": f"Bearer {RefreshToken.for_user(user).access_token}"}
    return client


@pytest.fixture
def aclient(user) -> AsyncClient:
    """Django's AsyncClient with a JWT for `user`."""
    return client_for(user)


async def post(client: AsyncClient, pattern: str, body: Any, *, accept: str = SSE):
    return await client.post(
        f"/api/agents/{pattern}/",
        data=json.dumps(body),
        content_type="application/json",
        headers={**getattr(client, "auth", {}), "Accept": accept},
    )


async def get(client: AsyncClient, path: str):
    return await client.get(path, headers=getattr(client, "auth", {}))


async def read_body(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join([chunk async for chunk in response.streaming_content])
    return response.content


async def sse_frames(client: AsyncClient, pattern: str, body: Any) -> list[Any]:
    response = await post(client, pattern, body, accept=SSE)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith(SSE)
    return parse_sse(await read_body(response))


def step_frames(frames: list[Any]) -> list[tuple[str, str]]:
    """(name, status) of each data-step chunk, in order."""
    return [
        (frame["data"]["name"], frame["data"]["status"])
        for frame in frames
        if isinstance(frame, dict) and frame.get("type") == "data-step"
    ]


def result_of(frames: list[Any]) -> dict[str, Any]:
    (result,) = [f["data"] for f in frames if isinstance(f, dict) and f["type"] == "data-result"]
    return result


def result_text(frames: list[Any]) -> str:
    return "".join(f["delta"] for f in frames if isinstance(f, dict) and f["type"] == "text-delta")


def of_type(frames: list[Any], chunk_type: str) -> list[dict[str, Any]]:
    return [f for f in frames if isinstance(f, dict) and f.get("type") == chunk_type]


def types_of(frames: list[Any]) -> list[str]:
    return [f["type"] if isinstance(f, dict) else f for f in frames]


def example(schema: type[BaseModel], **overrides: Any) -> dict[str, Any]:
    """A valid object of `schema` as JSON data, with `overrides` applied (and re-validated)."""
    data = build_example(schema).model_dump(mode="json")
    data.update(overrides)
    return schema.model_validate(data).model_dump(mode="json")


def schema_sent(request) -> dict[str, Any] | None:
    """The response schema a stand-in request carried (JSON mode), if any."""
    config = request.generation_config
    return config.get("responseSchema") or config.get("responseJsonSchema")


def calls(standin) -> list[tuple[str, str]]:
    """(model, action) of each request the stand-in received, in arrival order."""
    return [(r.model, r.action) for r in standin.requests]
