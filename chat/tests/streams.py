"""Helpers to read our streams in tests."""

import json
from dataclasses import dataclass
from typing import Any

from tests.sse import parse_sse

__all__ = ["Received", "parse_sse", "read_body", "received", "stream"]


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


@dataclass(frozen=True)
class Received:
    """What a client got from a reply's stream: its text, reasoning and sources, and the error it
    was told of (None if none)."""

    text: str
    reasoning: str = ""
    sources: tuple[dict, ...] = ()
    error: str | None = None

    def parts(self) -> list[dict]:
        """The reply's parts as they are stored when the client got all of them."""
        parts = [{"type": "reasoning", "text": self.reasoning}] if self.reasoning else []
        if self.text:
            parts.append({"type": "text", "text": self.text})
        return parts + list(self.sources)


def received(frames: list[Any], *, simple: bool = False) -> Received:
    """What the frames of a UI message stream (or, `simple`, of `?protocol=simple`) gave the
    client."""
    dicts = [frame for frame in frames if isinstance(frame, dict)]
    if simple:
        errors = [frame["error"] for frame in dicts if "error" in frame]
        return Received(
            "".join(frame["content"] for frame in dicts if "content" in frame),
            error=errors[-1] if errors else None,
        )
    by_type: dict[str, list[dict]] = {}
    for frame in dicts:
        by_type.setdefault(frame["type"], []).append(frame)
    errors = [frame["errorText"] for frame in by_type.get("error", [])]
    return Received(
        "".join(frame["delta"] for frame in by_type.get("text-delta", [])),
        "".join(frame["delta"] for frame in by_type.get("reasoning-delta", [])),
        tuple(
            {
                "type": "source-url",
                "sourceId": f["sourceId"],
                "url": f["url"],
                "title": f.get("title", ""),
            }
            for f in by_type.get("source-url", [])
        ),
        errors[-1] if errors else None,
    )
