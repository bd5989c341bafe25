"""Liveness and readiness probes (no auth, no throttling)."""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse


async def healthz(request):
    """The process is up. Says which model provider it uses, so offline mode is never a secret."""
    return JsonResponse({"status": "ok", "provider": settings.AI_PROVIDER})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.close()


async def readyz(request):
    """The database and the cache answer."""
    checks = {}
    try:
        await sync_to_async(_check_database)()
        checks["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready
        checks["database"] = "unavailable"
    try:
        await cache.aset("readyz", "1", 5)
        checks["cache"] = "ok" if await cache.aget("readyz") == "1" else "unavailable"
    except Exception:  # noqa: BLE001
        checks["cache"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "provider": settings.AI_PROVIDER, **checks},
        status=200 if ready else 503,
    )
