"""Password guessing (issue 10, #8): `/api/auth/token/` and the admin's login are throttled per
username and per client address (AUTH_RATE_LIMIT), counted in the shared cache, and a cache that is
down lets logins through instead of failing them with a 500."""

import logging
import uuid

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from core import throttling
from tests.live_server import free_port

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"
# A day's window: a test cannot straddle django-ratelimit's window boundary by chance.
RATE = "10/d"


@pytest.fixture
def fresh_counts(settings):
    """The configured cache (Redis when REDIS_URL is set) under a key prefix of its own."""
    default = dict(django_settings.CACHES["default"])
    default["KEY_PREFIX"] = f"login-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": default}
    settings.AUTH_RATE_LIMIT = RATE


@pytest.fixture
def redis_down(settings, monkeypatch):
    """REDIS_URL pointing at a port where nothing listens (and no warning given yet)."""
    # No warning given yet, no failure remembered (both restored after the test).
    monkeypatch.setattr(throttling, "_last_warning", float("-inf"), raising=False)
    monkeypatch.setattr(throttling, "_cache_down_until", 0.0, raising=False)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/2",
        }
    }
    settings.AUTH_RATE_LIMIT = RATE


def login(username, password, address="10.0.0.1"):
    return Client(REMOTE_ADDR=address).post(
        "/api/auth/token/",
        {"username": username, "password": password},
        content_type="application/json",
    )


def assert_rate_limited(response):
    assert response.status_code == 429, response.content
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 86400
    assert response.json() == {
        "error": {
            "code": "rate_limited",
            "message": f"Rate limit exceeded. Retry in {retry_after} seconds.",
        }
    }


def test_guesses_at_one_username_are_refused_from_any_address(fresh_counts, user, make_user):
    make_user("bob")
    for attempt in range(10):
        guess = login("alice", f"guess-{attempt}", address=f"10.0.1.{attempt}")
        assert guess.status_code == 401
    # The right password no longer helps: refused before it is checked.
    refused = login("alice", PASSWORD, address="10.0.2.1")
    assert_rate_limited(refused)
    assert "access" not in refused.content.decode()
    # However it is spelt.
    assert_rate_limited(login("ALICE ", PASSWORD, address="10.0.2.2"))
    # Another user is not affected.
    assert login("bob", PASSWORD, address="10.0.2.3").status_code == 200


def test_guesses_from_one_address_are_refused_for_any_username(fresh_counts, user):
    for attempt in range(10):
        assert login(f"someone-{attempt}", "guess", address="10.0.3.1").status_code == 401
    assert_rate_limited(login("alice", PASSWORD, address="10.0.3.1"))
    # The same user from elsewhere is still let in.
    response = login("alice", PASSWORD, address="10.0.3.2")
    assert response.status_code == 200
    assert {"access", "refresh"} <= response.json().keys()


def test_zero_disables_login_throttling(fresh_counts, settings, user):
    settings.AUTH_RATE_LIMIT = "0"
    for attempt in range(12):
        assert login("alice", f"guess-{attempt}").status_code == 401
    assert login("alice", PASSWORD).status_code == 200


def test_the_admin_login_form_is_throttled_with_a_429_page(fresh_counts, make_user):
    admin = make_user("root")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client = Client(REMOTE_ADDR="10.0.4.1")
    for attempt in range(10):
        page = client.post("/admin/login/", {"username": "root", "password": f"guess-{attempt}"})
        assert page.status_code == 200
        assert "Please enter the correct username and password" in page.content.decode()

    refused = client.post("/admin/login/?next=/admin/", {"username": "root", "password": PASSWORD})

    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 86400
    text = refused.content.decode()
    assert f"Too many login attempts. Retry in {refused['Retry-After']} seconds." in text
    assert '<form action="/admin/login/' in text  # the login page itself, to try again later
    assert client.get("/admin/").status_code == 302  # not logged in


def test_api_and_admin_logins_share_one_count(fresh_counts, user):
    client = Client(REMOTE_ADDR="10.0.5.1")
    for attempt in range(10):
        client.post("/admin/login/", {"username": "alice", "password": f"guess-{attempt}"})
    assert_rate_limited(login("alice", PASSWORD, address="10.0.5.2"))


def test_logins_work_while_the_cache_is_down_with_one_warning(redis_down, user, caplog):
    caplog.set_level(logging.WARNING, logger="core.throttling")
    for _ in range(3):
        response = login("alice", PASSWORD)
        assert response.status_code == 200
        assert {"access", "refresh"} <= response.json().keys()
    assert login("alice", "wrong").status_code == 401
    warnings = [r.getMessage() for r in caplog.records if r.name == "core.throttling"]
    assert len(warnings) == 1
    assert warnings[0].startswith("Rate limits are not enforced: the cache is unavailable")


def test_refresh_token_of_a_deleted_user_is_401(user):
    client = Client()
    tokens = client.post(
        "/api/auth/token/", {"username": "alice", "password": PASSWORD}, "application/json"
    ).json()
    get_user_model().objects.filter(pk=user.pk).delete()

    response = client.post(
        "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, "application/json"
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "authentication_failed",
            "message": "No active account found for the given token.",
        }
    }


def test_refresh_token_of_a_deactivated_user_is_401(user):
    client = Client()
    tokens = client.post(
        "/api/auth/token/", {"username": "alice", "password": PASSWORD}, "application/json"
    ).json()
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    response = client.post(
        "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, "application/json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
