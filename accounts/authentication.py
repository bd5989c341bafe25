"""JWT authentication for the streaming endpoints, without a database lookup.

DRF's default `JWTAuthentication` loads the user row on every request. For a stream that costs a
pooled connection before the view has even started (held until the view's own database burst
ends) and, under adrf, a thread to run it in. `StatelessJWTAuthentication` trusts the signed
token for the user's id; the view then checks that the user still exists and is active in its
turn's first statement (`chat.turns.start_turn`), so a deactivated user is still refused.
"""

import threading
import time

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTStatelessUserScheme
from drf_spectacular.drainage import set_override
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.tokens import Token

from core.errors import NotAuthenticated

#: Verified tokens kept per process, at most this many (the oldest goes first).
VERIFIED_TOKENS_MAX = 4096


class StatelessJWTAuthentication(JWTStatelessUserAuthentication):
    """`request.user` is a `TokenUser` (its id from the token); no database access.

    A client sends the same access token with every request until it expires, and PyJWT checks
    it anew each time: ~60 µs of base64 and JSON decoding, a per-character alphabet check and the
    HMAC, about a hundredth of a chat turn's CPU. So a token that verified is kept (by its exact
    bytes, signature included) with its expiry, and the same bytes are trusted again until then:
    nothing simplejwt checks can change meanwhile for a given token and secret (this project
    revokes no access tokens; a new secret needs a restart anyway). At its `exp` the token goes
    through simplejwt again, which refuses it (or allows the configured leeway)."""

    _verified: dict[bytes, tuple[Token, float]] = {}
    _lock = threading.Lock()

    def get_validated_token(self, raw_token: bytes) -> Token:
        verified = self._verified.get(raw_token)
        if verified is not None and time.time() < verified[1]:
            return verified[0]
        token = super().get_validated_token(raw_token)
        expires = token.payload.get("exp")
        if isinstance(expires, int | float):
            cache = self._verified
            with self._lock:  # the streams read it on the loop, other views in threads
                cache.pop(raw_token, None)
                if len(cache) >= VERIFIED_TOKENS_MAX:
                    del cache[next(iter(cache))]  # dicts keep insertion order: the oldest
                cache[raw_token] = (token, float(expires))
        return token


class StatelessJWTScheme(SimpleJWTStatelessUserScheme):
    """drf-spectacular documents it as simplejwt's own class: the same bearer scheme
    ("jwtAuth") as `JWTAuthentication`, which it is."""

    target_class = "accounts.authentication.StatelessJWTAuthentication"


set_override(StatelessJWTAuthentication, "suppress_collision_warning", True)


class UserNotActive(NotAuthenticated):
    """Raised by a service that finds the token's user deactivated or deleted: the same 401 as
    `JWTAuthentication` gives for them, so clients see no difference. A domain error (core.errors),
    not DRF's: services know nothing of the API layer."""

    def __init__(self, *, found: bool):
        super().__init__("User is inactive" if found else "User not found")
