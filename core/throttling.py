"""Rate limits counted by django-ratelimit in the shared cache.

django-ratelimit's decorator does not support async views, so its counter (`get_usage`) is wrapped
in a DRF throttle (checked by `core.views.StreamingAPIView` in a database thread, off the loop,
or on the loop when the counts are in this process's memory: `counted_in_process`),
and the exception handler turns the refusal into a 429 JSON error with `Retry-After`. With
REDIS_URL set the count is shared by every worker. Logins use `count_attempt` directly
(accounts.throttling).

When the cache cannot be reached (Redis down), a limit cannot be counted: `count_attempt` then
allows the request and logs one warning a minute, instead of failing every request with a 500.
After a failure it leaves the cache alone for `RETRY_CACHE_AFTER_S`: a Redis that does not answer
(rather than refusing the connection) costs a timeout (`REDIS_TIMEOUT_S`) per try, which every
request would otherwise wait for, holding its thread or the event loop meanwhile.
/readyz reports the cache as unavailable meanwhile."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

#: What a cache backend raises when its server is unreachable: redis-py's errors (Django's
#: RedisCache) and socket errors (OSError: refused, reset, timed out, name not resolved).
CACHE_ERRORS = (RedisError, OSError)
WARN_EVERY_S = 60.0
RETRY_CACHE_AFTER_S = 5.0

_last_warning = -WARN_EVERY_S
_warning_lock = threading.Lock()
#: Until this time (time.monotonic()), limits are not counted: the cache failed just before.
_cache_down_until = 0.0


def _warn_unlimited(group: str, exc: Exception) -> None:
    """One warning per WARN_EVERY_S per process, however many requests go unlimited."""
    global _last_warning
    now = time.monotonic()
    with _warning_lock:
        if now - _last_warning < WARN_EVERY_S:
            return
        _last_warning = now
    logger.warning(
        "Rate limits are not enforced: the cache is unavailable (%s: %s; first seen on %r)",
        type(exc).__name__,
        exc,
        group,
    )


def count_attempt(request, *, group: str, key, rate: str) -> int | None:
    """Count one attempt of `request` in `group` (django-ratelimit's fixed window, `key` as its
    `key` argument). The seconds to wait when the attempt is over `rate`, else None, also when
    the cache is unreachable (the request is allowed; see the module's docstring)."""
    global _cache_down_until
    if time.monotonic() < _cache_down_until:
        return None
    try:
        usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    except CACHE_ERRORS as exc:
        _cache_down_until = time.monotonic() + RETRY_CACHE_AFTER_S
        _warn_unlimited(group, exc)
        return None
    if usage and usage["should_limit"]:
        return max(1, int(usage["time_left"]))
    return None


def counted_in_process() -> bool:
    """Whether the limits' counts live in this process's memory (the local-memory cache, without
    REDIS_URL): counting then does no I/O, so a view on the event loop may count there, with no
    thread hop."""
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    return isinstance(cache, LocMemCache | DummyCache)


def rate_enabled(rate: str) -> bool:
    return rate.strip() not in {"", "0"}


def _user_key(group, request) -> str:
    return str(request.user.pk)


class SettingRateThrottle(BaseThrottle):
    #: settings attribute holding a rate such as "10/m"; "0" or empty disables the limit.
    rate_setting: str = ""
    group: str = ""

    def __init__(self):
        self.retry_after: int | None = None
        self.rate = str(getattr(settings, self.rate_setting, "") or "").strip()

    @property
    def enabled(self) -> bool:
        """False when the limit is off: the view skips the throttle (and its cache round trip)."""
        return rate_enabled(self.rate)

    def allow_request(self, request, view) -> bool:
        if not self.enabled or not request.user or not request.user.is_authenticated:
            return True
        self.retry_after = count_attempt(
            request._request, group=self.group, key=_user_key, rate=self.rate
        )
        return self.retry_after is None

    def wait(self) -> int | None:
        return self.retry_after


class ChatRateThrottle(SettingRateThrottle):
    rate_setting = "CHAT_RATE_LIMIT"
    group = "chat"


class AgentRateThrottle(SettingRateThrottle):
    rate_setting = "AGENT_RATE_LIMIT"
    group = "agents"
