"""JWT tampering: a token whose payload, signature or algorithm was changed is a 401, on the
endpoints that load the user (JWTAuthentication) and on the stream (the stateless one)."""

import base64
import json

import jwt
import pytest
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken

from chat.models import Conversation

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
