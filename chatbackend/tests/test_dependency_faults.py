"""Dependency faults (issue 10, "Security": a 503 or a degraded service, never a 500), against
production-like servers. PostgreSQL down: every endpoint that needs the database answers 503
`service_unavailable` with `Retry-After`; health says alive, readiness says not ready. Redis down:
logins and chat go on, unlimited, with one warning; readiness says not ready."""

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from rest_framework_simplejwt.tokens import AccessToken

from conftest import bearer
from tests.live_server import (
    ServerProcess,
    database_url_for_subprocess,
    free_port,
    production_env,
)

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


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_logins_and_chat_go_on_unlimited(user):
    database_url = database_url_for_subprocess()
    if database_url is None:
        pytest.skip("the test database is in memory: another process cannot see its users")
    # The server has production's hashers, not the tests' MD5 (few iterations: fast).
    user.password = PBKDF2PasswordHasher().encode("correct-horse-battery-9", "salt1234", 1000)
    user.save(update_fields=["password"])
    env = production_env(
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/2",
        AUTH_RATE_LIMIT="10/m",
        CHAT_RATE_LIMIT="10/m",
    )
    with ServerProcess(env) as server:
        login = httpx.post(
            f"{server.url}/api/auth/token/",
            json={"username": "alice", "password": "correct-horse-battery-9"},
            timeout=30,
        )
        stream = httpx.post(
            f"{server.url}/api/chat/stream/",
            json={"message": "hello"},
            headers={"Authorization": bearer(user)},
            timeout=30,
        )
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        log = server.log()

    assert login.status_code == 200, login.text
    assert {"access", "refresh"} <= login.json().keys()
    assert stream.status_code == 200, stream.text
    assert stream.text.rstrip().endswith("data: [DONE]")
    assert ready.status_code == 503
    assert ready.json()["cache"] == "unavailable"
    assert log.count("Rate limits are not enforced: the cache is unavailable") == 1
