"""JWT tampering: a token whose payload, signature or algorithm was changed is a 401, on the
endpoints that load the user (JWTAuthentication) and on the stream (the stateless one)."""

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from django.test import AsyncClient, Client
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.authentication import StatelessJWTAuthentication
from chat.models import Conversation
from chat.tests.streams import stream

pytestmark = pytest.mark.django_db

PATHS = [
    ("get", "/api/auth/me/"),
    ("get", "/api/chat/conversations/"),
    ("post", "/api/chat/stream/"),
]


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def tampered_tokens(user, other_user) -> dict[str, str]:
    access = str(RefreshToken.for_user(user).access_token)
    header, payload, signature = access.split(".")
    claims = jwt.decode(access, options={"verify_signature": False})
    as_other = {**claims, "user_id": str(other_user.pk)}
    return {
        "payload-changed": f"{header}.{b64(as_other)}.{signature}",
        "alg-none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(as_other)}.",
        "other-key": jwt.encode(as_other, "not-the-server-secret-0123456789abcdef", "HS256"),
        "refresh-as-access": str(RefreshToken.for_user(other_user)),
        "signature-cut": f"{header}.{payload}.",
    }


@pytest.mark.parametrize(
    "kind", ["payload-changed", "alg-none", "other-key", "refresh-as-access", "signature-cut"]
)
@pytest.mark.parametrize(("method", "path"), PATHS)
def test_a_tampered_token_is_401(user, other_user, kind, method, path):
    Conversation.objects.create(user=other_user, title="mallory's")
    token = tampered_tokens(user, other_user)[kind]
    client = Client()
    response = getattr(client, method)(
        path,
        {"message": "hi"} if method == "post" else None,
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"token_not_valid", "authentication_failed"}
    assert "mallory" not in response.content.decode()
    assert Conversation.objects.count() == 1


def test_a_token_is_checked_once_while_it_is_valid(user, monkeypatch):
    """The stream's authentication keeps a verified token: the same bytes are not decoded and
    checked again (PyJWT's ~60 µs) on the client's next request."""
    from rest_framework.test import APIRequestFactory
    from rest_framework_simplejwt.backends import TokenBackend

    decoded = []
    decode = TokenBackend.decode
    monkeypatch.setattr(
        TokenBackend, "decode", lambda self, *a, **kw: decoded.append(1) or decode(self, *a, **kw)
    )
    token = str(RefreshToken.for_user(user).access_token)
    authentication = StatelessJWTAuthentication()
    for _ in range(3):
        request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
        token_user, _ = authentication.authenticate(request)
        assert str(token_user.id) == str(user.pk)
    assert len(decoded) == 1


def test_a_kept_token_is_refused_once_it_expires(user):
    """A token kept from when it was valid is checked again at its `exp`, and refused."""
    token = RefreshToken.for_user(user).access_token
    token.set_exp(lifetime=-timedelta(minutes=1))
    raw = str(token).encode()
    # As if it had verified a minute and a half ago, valid for another 30 s then.
    StatelessJWTAuthentication._verified[raw] = (token, time.time() - 60)
    response = Client().post(
        "/api/chat/stream/",
        {"message": "hi"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw.decode()}"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"
    assert Conversation.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["payload-changed", "other-key", "signature-cut"])
async def test_a_tampered_copy_of_a_kept_token_is_401(user, other_user, kind):
    """The genuine token was used (and kept) first: a changed copy of it is still refused."""
    access = str(RefreshToken.for_user(user).access_token)
    header, payload, signature = access.split(".")
    as_other = {**jwt.decode(access, options={"verify_signature": False}), "user_id": other_user.pk}
    tampered = {
        "payload-changed": f"{header}.{b64(as_other)}.{signature}",
        "other-key": jwt.encode(as_other, "not-the-server-secret-0123456789abcdef", "HS256"),
        "signature-cut": f"{header}.{payload}.",
    }[kind]
    client = AsyncClient()
    response, _ = await stream(client, {"Authorization": f"Bearer {access}"}, {"message": "hi"})
    assert response.status_code == 200
    response, body = await stream(client, {"Authorization": f"Bearer {tampered}"}, {"message": "x"})
    assert response.status_code == 401
    assert body["error"]["code"] == "token_not_valid"
    owners = {c.user_id async for c in Conversation.objects.all()}
    assert owners == {user.pk}
