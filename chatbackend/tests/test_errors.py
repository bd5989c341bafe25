"""One JSON error shape, {"error": {"code", "message", "details"?}}, for every 4xx/5xx, with no
internals in it; the Gemini API key is never returned or logged."""

import json
import logging

import pytest
from django.test import AsyncClient, Client

from chatbackend.tests.urls_failing import SECRET_IN_EXCEPTION
from tests.gemini_standin import text_stream


def error_of(response) -> dict:
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = json.loads(response.content)
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "details"}
    return body["error"]


def test_unknown_url_is_404_json(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": "Not found."}


def test_unknown_api_url_is_404_json(client):
    response = client.post("/api/chat/nope/", {}, content_type="application/json")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_missing_and_bad_token_are_401_json(client):
    missing = client.get("/api/usage/")
    bad = client.get("/api/usage/", headers={"Authorization": "Bearer not-a-token"})
    assert (missing.status_code, bad.status_code) == (401, 401)
    assert error_of(missing)["code"] == "not_authenticated"
    assert error_of(bad) == {
        "code": "token_not_valid",
        "message": "Given token not valid for any token type",
    }


@pytest.mark.django_db
def test_wrong_method_is_405_json(api):
    response = api.put("/api/usage/", {}, format="json")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_malformed_json_is_400_json(api):
    response = api.post("/api/chat/conversations/", "{oops", content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_request"


@pytest.mark.django_db
def test_oversized_body_is_413_json(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"message": "x" * 4096})
    response = api.post("/api/chat/conversations/", body, content_type="application/json")
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"


@pytest.mark.parametrize("path", ["/test-failing/plain/", "/test-failing/api/"])
def test_a_view_that_raises_is_500_json_without_internals(settings, path, caplog):
    settings.ROOT_URLCONF = "chatbackend.tests.urls_failing"
    client = Client(raise_request_exception=False)

    response = client.get(path)

    assert response.status_code == 500
    assert error_of(response) == {"code": "internal_error", "message": "Internal server error."}
    text = response.content.decode()
    assert SECRET_IN_EXCEPTION not in text
    assert "Traceback" not in text and "Error" not in text.replace("error", "")
    # The failure is logged for the operators (with its traceback), not sent to the client.
    assert any(record.exc_info for record in caplog.records if record.levelno >= logging.ERROR)


API_KEY = "AIzaSy-test-secret-key-must-never-leak-0123456789"


@pytest.fixture
def secret_key_provider(settings, gemini_provider_settings):
    """The provider uses a key the stand-in rejects (Gemini's 400 API_KEY_INVALID)."""
    settings.LLM = {**settings.LLM, "OPTIONS": {**settings.LLM["OPTIONS"], "api_key": API_KEY}}
    gemini_provider_settings.api_key = "the-right-key"
    return gemini_provider_settings


def assert_key_absent(*texts: str) -> None:
    for text in texts:
        assert API_KEY not in text
        assert API_KEY[8:30] not in text  # nor a recognisable piece of it


@pytest.mark.django_db(transaction=True)
async def test_api_key_is_never_returned_or_logged_when_the_model_call_fails(
    secret_key_provider, auth_header, caplog
):
    caplog.set_level(logging.DEBUG)
    client = AsyncClient()

    response = await client.post(
        "/api/chat/stream/",
        json.dumps({"message": "hello"}),
        content_type="application/json",
        headers=auth_header,
    )
    body = (
        b"".join([chunk async for chunk in response.streaming_content])
        if response.streaming
        else response.content
    )

    # The key reached the stand-in (so it was in use), and was refused there.
    assert [r.headers.get("x-goog-api-key") for r in secret_key_provider.requests][:1] == [API_KEY]
    # Refused by the model (its 400 for a bad key): a 502, said plainly, before any stream.
    assert response.status_code == 502
    assert error_of(response) == {
        "code": "model_request_rejected",
        "message": "The model rejected the request.",
    }
    assert_key_absent(
        body.decode(),
        "\n".join(f"{name}: {value}" for name, value in response.items()),
        caplog.text,
        "\n".join(str(record.__dict__) for record in caplog.records),
    )


@pytest.mark.django_db(transaction=True)
async def test_api_key_is_never_returned_or_logged_when_the_model_fails_mid_stream(
    settings, gemini_provider_settings, auth_header, caplog
):
    settings.LLM = {**settings.LLM, "OPTIONS": {**settings.LLM["OPTIONS"], "api_key": API_KEY}}
    gemini_provider_settings.enqueue(text_stream(["Partial ", "answer"], error_after=1))
    caplog.set_level(logging.DEBUG)
    client = AsyncClient()

    response = await client.post(
        "/api/chat/stream/",
        json.dumps({"message": "hello"}),
        content_type="application/json",
        headers=auth_header,
    )
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()

    assert response.status_code == 200
    assert '"type":"error"' in body
    assert_key_absent(body, caplog.text, "\n".join(str(r.__dict__) for r in caplog.records))


def test_database_unavailable_is_503_json_not_500(api, monkeypatch):
    from django.db import OperationalError

    from chat import views

    def unavailable(*args, **kwargs):
        raise OperationalError("couldn't get a connection after 30.00 sec")

    monkeypatch.setattr(views.ConversationListView, "get_queryset", unavailable)
    response = api.get("/api/chat/conversations/")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json() == {
        "error": {
            "code": "service_unavailable",
            "message": "The service is busy. Please retry shortly.",
        }
    }


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/usage/", "/api/chat/stream/", "/api/auth/me/"])
def test_a_bad_token_is_a_plain_401_message_not_a_python_repr(path):
    """simplejwt's InvalidToken carries a dict as its detail; its repr was the message."""
    client = Client()
    method = client.post if path.endswith("stream/") else client.get
    response = method(path, headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert error_of(response) == {
        "code": "token_not_valid",
        "message": "Given token not valid for any token type",
    }
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_an_expired_refresh_token_is_a_plain_401_message():
    response = Client().post(
        "/api/auth/token/refresh/", {"refresh": "abc.def.ghi"}, content_type="application/json"
    )
    assert response.status_code == 401
    assert error_of(response) == {"code": "token_not_valid", "message": "Token is invalid"}


def test_a_conflict_raised_by_a_service_is_409_with_its_code_and_details():
    from core.errors import Conflict, api_exception_handler

    response = api_exception_handler(
        Conflict(
            "A reply is being generated in this conversation.",
            code="generation_in_progress",
            details={"replyId": "r-1"},
        ),
        {},
    )
    assert response.status_code == 409
    assert error_of(response) == {
        "code": "generation_in_progress",
        "message": "A reply is being generated in this conversation.",
        "details": {"replyId": "r-1"},
    }


@pytest.mark.django_db
def test_a_csrf_failure_is_403_json():
    """The admin's login form posted without its CSRF token (Django's page is HTML)."""
    client = Client(enforce_csrf_checks=True)
    response = client.post("/admin/login/", {"username": "root", "password": "x"})
    assert response.status_code == 403
    assert error_of(response) == {
        "code": "csrf_failed",
        "message": "CSRF verification failed. Reload the page.",
    }
