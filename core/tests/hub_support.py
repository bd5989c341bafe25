"""Helpers of the hub tests (core.hub): the Redis they use, frames, and reading listeners.

Two Hub objects with their own Redis connections stand for two worker processes."""

from __future__ import annotations

import os
import socket
import uuid
import weakref
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

REDIS_DB = 7  # the hub tests' own Redis database
WAIT_S = 5


def redis_url() -> str:
    """REDIS_URL (or a local Redis) on this module's own database."""
    parts = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


def redis_url_or_skip() -> str:
    url = redis_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            raise  # CI always has Redis: a missing one is a failure, not a skip
        pytest.skip(
            f"Redis at {url} is unreachable ({type(exc).__name__}): Redis hub tests skipped"
        )
    return url


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/{REDIS_DB}"


def frame(i: int) -> bytes:
    return f'data: {{"type":"text-delta","id":"t","delta":"word {i} "}}\n\n'.encode()


def new_key() -> str:
    return str(uuid.uuid4())


# A listener may get several frames in one chunk (one socket write for them): the helpers split
# chunks back into frames, keeping what a partial read did not use for the next read.
_leftover: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _split(chunk: bytes) -> list[bytes]:
    return [part + b"\n\n" for part in chunk.split(b"\n\n")[:-1]]


async def read_all(frames) -> list[bytes]:
    got = _leftover.pop(frames, [])
    async for chunk in frames:
        got += _split(chunk)
    return got


async def next_frames(frames, n: int) -> list[bytes]:
    got = _leftover.pop(frames, [])
    while len(got) < n:
        got += _split(await anext(frames))
    _leftover[frames] = got[n:]
    return got[:n]
