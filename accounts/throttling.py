"""Password guessing: logins are counted per username and per client address.

Both the API's `/api/auth/token/` and the admin's login form count every attempt (right or wrong:
the count is one atomic increment, so parallel guesses cannot slip between a check and a count) in
two django-ratelimit windows of `AUTH_RATE_LIMIT` (default `10/m`): one per username (however it is
spelt: `Bob` and `bob` are one count) and one per client address (`REMOTE_ADDR`, which uvicorn's
`--proxy-headers` sets from a trusted proxy's `X-Forwarded-For`; IPv6 counted per /64). Over either,
the attempt is refused before the password is checked. The counts live in the shared cache; when it
is unreachable, logins are allowed (core.throttling.count_attempt)."""

from __future__ import annotations

from django.conf import settings

from core.throttling import count_attempt, rate_enabled

USERNAME_GROUP = "login-username"
ADDRESS_GROUP = "login-address"


def login_retry_after(request, *, username) -> int | None:
    """Count a login attempt of `request` (a Django `HttpRequest`) for `username`: None when it may
    go ahead, else the seconds until it may."""
    rate = str(settings.AUTH_RATE_LIMIT or "")
    if not rate_enabled(rate):
        return None
    name = username.strip().casefold() if isinstance(username, str) else repr(username)
    waits = [
        count_attempt(request, group=USERNAME_GROUP, key=lambda group, request: name, rate=rate),
        count_attempt(request, group=ADDRESS_GROUP, key="ip", rate=rate),
    ]
    return max((wait for wait in waits if wait), default=None)


def too_many_attempts_message(wait: int) -> str:
    return f"Too many login attempts. Retry in {wait} seconds."
