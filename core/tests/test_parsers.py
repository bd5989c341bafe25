"""Hostile JSON bodies are a 400 `malformed_request` on every JSON endpoint, never a 500, and
nothing is saved (core.parsers.JSONParser)."""

import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from agents.models import AgentRun
from chat.models import Conversation, Message
from conftest import bearer
from core.parsers import MAX_DEPTH

pytestmark = pytest.mark.django_db

#: The issue's reproduction: 2 KB of `[` raised RecursionError in the standard library's parser.
DEEP = b"[" * 2048

UNAUTHENTICATED = ["/api/auth/token/", "/api/auth/register/", "/api/auth/token/refresh/"]
AUTHENTICATED = [
    "/api/chat/conversations/",
    "/api/chat/stream/",
    "/api/agents/sequential/",
    "/api/agents/routing/",
]


def post(client, path, body: bytes, content_type="application/json"):
    return client.generic("POST", path, body, content_type=content_type)


def assert_malformed(response):
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "malformed_request"
    assert error["message"].startswith("JSON parse error - ")


def assert_nothing_saved():
    assert get_user_model().objects.exclude(username="alice").count() == 0
    assert Conversation.objects.count() == 0
    assert Message.objects.count() == 0
    assert AgentRun.objects.count() == 0


@pytest.mark.parametrize("path", UNAUTHENTICATED + AUTHENTICATED)
def test_deeply_nested_json_is_400_on_every_json_endpoint(user, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(user))
    assert_malformed(post(client, path, DEEP))
    assert_nothing_saved()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"username": NaN, "password": 1}', id="nan"),
        pytest.param(b'{"username": "a\\ud800b", "password": "x"}', id="lone-surrogate"),
        pytest.param(b'{"username": "caf\xe9", "password": "x"}', id="invalid-utf8"),
        pytest.param(b'{"username": "bob"} {"x": 1}', id="two-documents"),
    ],
)
def test_invalid_json_is_400_malformed_request(body):
    response = post(APIClient(), "/api/auth/register/", body)
    assert_malformed(response)
    assert_nothing_saved()


def nested(depth: int) -> str:
    return "[" * (depth - 1) + '"x"' + "]" * (depth - 1)


def test_nesting_up_to_the_limit_parses_and_one_more_level_is_refused():
    client = APIClient()
    within = f'{{"username": {nested(MAX_DEPTH - 1)}, "password": "x"}}'.encode()
    beyond = f'{{"username": {nested(MAX_DEPTH + 2)}, "password": "x"}}'.encode()

    parsed = post(client, "/api/auth/register/", within)
    # Parsed, then refused by the serializer for what it is (a list is not a username).
    assert parsed.status_code == 400
    assert parsed.json()["error"]["code"] == "invalid_request"
    assert "username" in parsed.json()["error"]["details"]
    assert_malformed(post(client, "/api/auth/register/", beyond))


def test_a_declared_charset_is_honoured():
    body = json.dumps(
        {"username": "zoë", "password": "a-long-unusual-passphrase-42"}, ensure_ascii=False
    ).encode("latin-1")
    response = post(
        APIClient(), "/api/auth/register/", body, content_type="application/json; charset=latin-1"
    )
    assert response.status_code == 201, response.content
    assert get_user_model().objects.filter(username="zoë").exists()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/register/", {"username": "nul\u0000l", "password": "a-long-passphrase-42"}),
        ("/api/chat/conversations/", {"title": "before\u0000after"}),
        ("/api/chat/stream/", {"message": "hello\u0000world"}),
    ],
    ids=["register", "conversation-title", "chat-message"],
)
def test_nul_characters_in_text_are_400_and_nothing_is_saved(user, path, body):
    """PostgreSQL cannot store U+0000 in text: refused as invalid input, not a 500 at save."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(user))
    response = post(client, path, json.dumps(body).encode())
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "invalid_request"
    assert_nothing_saved()
