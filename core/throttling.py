"""Per-user rate limits counted by django-ratelimit in the shared cache.

django-ratelimit's decorator does not support async views, so its counter (`get_usage`) is wrapped
in a DRF throttle; adrf runs throttles before the view, and the exception handler turns the refusal
into a 429 JSON error with `Retry-After`. With REDIS_URL set the count is shared by every worker."""

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework.throttling import BaseThrottle


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
        return self.rate not in {"", "0"}

    def allow_request(self, request, view) -> bool:
        rate = self.rate
        if not self.enabled or not request.user or not request.user.is_authenticated:
            return True
        usage = get_usage(
            request._request, group=self.group, key=_user_key, rate=rate, increment=True
        )
        if usage and usage["should_limit"]:
            self.retry_after = max(1, int(usage["time_left"]))
            return False
        return True

    def wait(self) -> int | None:
        return self.retry_after


class ChatRateThrottle(SettingRateThrottle):
    rate_setting = "CHAT_RATE_LIMIT"
    group = "chat"


class AgentRateThrottle(SettingRateThrottle):
    rate_setting = "AGENT_RATE_LIMIT"
    group = "agents"
