"""What a test needs from the machine (Node.js, Chromium, PostgreSQL, Redis...), said once.

    require(shutil.which("node") is not None, "needs Node.js: apt-get install -y nodejs npm")

Locally a missing dependency skips the test, with the reason (pytest's `-ra` prints it at the end).
Under `CI=true` the same line fails the test: CI must never pass by skipping what it did not run.
Usable inside a test or fixture, and at module level (a failure there is a collection error)."""

from __future__ import annotations

import os

import pytest

__all__ = ["in_ci", "require", "required_redis_url"]


def in_ci() -> bool:
    """True when the environment says this is CI (`CI=true`, as CI services and `.ci/run` set)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(condition: object, reason: str) -> None:
    """Go on when `condition` is truthy; otherwise skip (locally) or fail (CI) with `reason`."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"CI=true and a test dependency is missing: {reason}", pytrace=False)
    # What pytest.skip raises, reported at the test's own location (as pytest's skipif marks do)
    # rather than at this line, so that `-ra` lists each skipped test by its file.
    raise pytest.skip.Exception(reason, allow_module_level=True, _use_item_location=True)


def required_redis_url(why: str) -> str:
    """REDIS_URL, once a Redis answers there; else `require` fails or skips, saying `why` the test
    needs one (e.g. "two server processes share a limit only through Redis")."""
    url = os.environ.get("REDIS_URL", "")
    require(url, f"needs REDIS_URL: {why}")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        unreachable = ""
    except redis.RedisError as exc:
        unreachable = type(exc).__name__
    require(not unreachable, f"Redis at REDIS_URL is unreachable ({unreachable}): {why}")
    return url
