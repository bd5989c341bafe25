"""Helpers to read our streams in tests."""

import json

from tests.sse import parse_sse

__all__ = ["parse_sse", "read_body", "stream"]


async def read_body(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


async def stream(
    client, headers, body, *, query="", extra_headers=None, accept="text/event-stream"
):
    """POST to the chat stream; returns (response, frames or JSON body)."""
    response = await client.post(
        f"/api/chat/stream/{query}",
        json.dumps(body) if not isinstance(body, str) else body,
        content_type="application/json",
        headers={"Accept": accept, **headers, **(extra_headers or {})},
    )
    if response.streaming:
        return response, parse_sse(await read_body(response))
    return response, json.loads(response.content)
