"""Liveness and readiness probes (no auth, no throttling)."""

import asyncio

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

from llm import backend_label

READY_TIMEOUT_S = 2.0


async def healthz(request):
    """The process is up. Says which model provider it uses, so offline mode is never a secret."""
    return JsonResponse({"status": "ok", "provider": backend_label()})


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


async def readyz(request):
    """The database and the cache answer (within READY_TIMEOUT_S each, so that a probe gets its
    answer even while the database pool is still waiting for a connection)."""
    checks = {}
    try:
        # Not thread-sensitive: a check that outlives its timeout must not hold up the request.
        check = sync_to_async(_check_database, thread_sensitive=False)
        await asyncio.wait_for(check(), READY_TIMEOUT_S)
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready
        checks["database"] = "unavailable"
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await cache.aset("readyz", "1", 5)
            checks["cache"] = "ok" if await cache.aget("readyz") == "1" else "unavailable"
    except Exception:  # noqa: BLE001
        checks["cache"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "provider": backend_label(), **checks},
        status=200 if ready else 503,
    )
