"""PostgreSQL down (issue 10, "Security": a dependency fault is a 503 or a degraded service, never a
500): a production-like server whose database does not answer. Every endpoint that needs the
database answers 503 `service_unavailable` with `Retry-After`; health says alive, readiness says
not ready."""

import httpx
import pytest
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken

from tests.live_server import ServerProcess, free_port, production_env

UNAVAILABLE = {
    "error": {
        "code": "service_unavailable",
        "message": "The service is busy. Please retry shortly.",
    }
}


@pytest.fixture(scope="module")
def server_without_database():
    env = production_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/nowhere",
        DB_POOL_TIMEOUT_S="1",
        AUTH_RATE_LIMIT="0",
    )
    with ServerProcess(env) as server:
        yield server


def bearer_without_database() -> dict[str, str]:
    user = get_user_model()(id=4242, username="nobody")
    return {"Authorization": f"Bearer {AccessToken.for_user(user)}"}


@pytest.mark.parametrize(
    ("method", "path", "body", "authenticated"),
    [
        ("POST", "/api/auth/token/", {"username": "a", "password": "b"}, False),
        ("POST", "/api/auth/register/", {"username": "a", "password": "a-long-pass-42"}, False),
        ("GET", "/api/auth/me/", None, True),
        ("GET", "/api/chat/conversations/", None, True),
        ("POST", "/api/chat/stream/", {"message": "hi"}, True),
        ("POST", "/api/agents/sequential/", {"input": "a solar charger"}, True),
        ("GET", "/api/usage/", None, True),
    ],
)
def test_api_endpoints_are_503_json_when_the_database_is_down(
    server_without_database, method, path, body, authenticated
):
    headers = bearer_without_database() if authenticated else {}
    response = httpx.request(
        method, f"{server_without_database.url}{path}", json=body, headers=headers, timeout=30
    )
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == UNAVAILABLE
    assert response.headers["Retry-After"] == "1"


def test_the_admin_login_is_503_json_when_the_database_is_down(server_without_database):
    csrf = "c" * 32  # a CSRF secret of our own, as cookie and as form field (Django accepts it)
    response = httpx.post(
        f"{server_without_database.url}/admin/login/",
        data={"username": "root", "password": "x", "csrfmiddlewaretoken": csrf},
        cookies={"csrftoken": csrf},
        timeout=30,
    )
    assert response.status_code == 503, response.text
    assert response.json() == UNAVAILABLE
    assert response.headers["Retry-After"] == "1"


def test_health_is_alive_and_readiness_is_not(server_without_database):
    assert httpx.get(f"{server_without_database.url}/healthz").status_code == 200
    ready = httpx.get(f"{server_without_database.url}/readyz", timeout=10)
    assert ready.status_code == 503
    assert ready.json()["database"] == "unavailable"
