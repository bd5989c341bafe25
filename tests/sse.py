"""Reading our server-sent event streams from a real HTTP client (httpx)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx


def _frame(line: str) -> Any | None:
    if not line.startswith("data: "):
        return None
    payload = line[len("data: ") :]
    return payload if payload == "[DONE]" else json.loads(payload)


def iter_frames(response: httpx.Response) -> Iterator[Any]:
    """The frames of a streamed httpx response as they arrive: parsed JSON, or "[DONE]"."""
    for line in response.iter_lines():
        frame = _frame(line)
        if frame is not None:
            yield frame


async def aiter_frames(response: httpx.Response) -> AsyncIterator[Any]:
    """`iter_frames` for an httpx.AsyncClient stream."""
    async for line in response.aiter_lines():
        frame = _frame(line)
        if frame is not None:
            yield frame
