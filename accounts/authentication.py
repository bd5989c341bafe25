"""JWT authentication for the streaming endpoints, without a database lookup.

DRF's default `JWTAuthentication` loads the user row on every request. For a stream that costs a
pooled connection before the view has even started (held until the view's own database burst
ends) and, under adrf, a thread to run it in. `StatelessJWTAuthentication` trusts the signed
token for the user's id; the view then checks that the user still exists and is active in its
turn's first statement (`chat.turns.start_turn`), so a deactivated user is still refused.
"""

from drf_spectacular.drainage import set_override
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication

from core.errors import NotAuthenticated

#: `request.user` is a `TokenUser` (its id from the token); no database access. (simplejwt's own
#: class, not a subclass, so that drf-spectacular documents it as the same bearer scheme.)
StatelessJWTAuthentication = JWTStatelessUserAuthentication
# Both classes are documented as the same bearer scheme ("jwtAuth"), which they are.
set_override(StatelessJWTAuthentication, "suppress_collision_warning", True)


class UserNotActive(NotAuthenticated):
    """Raised by a service that finds the token's user deactivated or deleted: the same 401 as
    `JWTAuthentication` gives for them, so clients see no difference. A domain error (core.errors),
    not DRF's: services know nothing of the API layer."""

    def __init__(self, *, found: bool):
        super().__init__("User is inactive" if found else "User not found")
