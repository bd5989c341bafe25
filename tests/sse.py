"""The tests' one reader of our server-sent event streams (core/encoders.py writes them).

A frame is `data: <payload>` followed by a blank line; the payload is JSON, or `[DONE]` at the end
of a UI message stream. The readers are strict: anything else in the stream (a line without
`data: `, an unterminated last frame, invalid JSON) fails the test instead of being skipped.

* `parse_sse(body)`: a whole body (bytes) → its frames, for Django's test clients.
* `iter_frames(response)` / `aiter_frames(response)`: the frames of a streamed httpx response, as
  they arrive."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

__all__ = ["DONE", "aiter_frames", "iter_frames", "parse_frame", "parse_sse"]

DONE = "[DONE]"


def parse_frame(block: str) -> Any:
    """One frame's text without its blank line (`data: {...}`) → the parsed JSON, or "[DONE]"."""
    assert block.startswith("data: "), f"not an SSE data frame: {block!r}"
    payload = block[len("data: ") :]
    assert "\n" not in payload, f"a frame spans several lines: {block!r}"
    return payload if payload == DONE else json.loads(payload)


def parse_sse(body: bytes) -> list[Any]:
    """Split a whole SSE body into its frames: parsed JSON, or the string "[DONE]"."""
    text = body.decode()
    assert text.endswith("\n\n"), f"every frame ends with a blank line: {text[-80:]!r}"
    return [parse_frame(block) for block in text.split("\n\n")[:-1]]


def iter_frames(response: httpx.Response) -> Iterator[Any]:
    """The frames of a streamed httpx response as they arrive: parsed JSON, or "[DONE]"."""
    for line in response.iter_lines():
        if line:
            yield parse_frame(line)


async def aiter_frames(response: httpx.Response) -> AsyncIterator[Any]:
    """`iter_frames` for an httpx.AsyncClient stream."""
    async for line in response.aiter_lines():
        if line:
            yield parse_frame(line)
