"""Fixtures shared by every app's tests."""

import asyncio

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

pytest_plugins = ["tests.fixtures_gemini"]


def pytest_report_header(config) -> list[str]:
    """What this run talks to, at the top of its output: a CI log shows it used PostgreSQL and
    Redis, and whether missing dependencies fail (CI=true) or skip (tests/require.py)."""
    from django.conf import settings

    from tests.require import in_ci

    database = settings.DATABASES["default"]
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    return [
        f"database: {database['ENGINE'].rsplit('.', 1)[-1]} {database.get('NAME')}; "
        f"cache: {cache}; "
        f"missing test dependencies: {'fail (CI=true)' if in_ci() else 'skip'}"
    ]


@pytest.fixture(autouse=True)
def close_connections_of_async_tests(request):
    """An async test's own ORM calls run in asgiref's single executor thread, whose connections
    pytest-django never closes: on PostgreSQL the test database then cannot be dropped at the end
    of the run ("being accessed by other users"). Close them after each async test."""
    yield
    if asyncio.iscoroutinefunction(request.function):
        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture
def make_user(django_user_model):
    def make(username: str = "alice", password: str = "correct-horse-battery-9"):
        return django_user_model.objects.create_user(username=username, password=password)

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


@pytest.fixture
def other_user(make_user):
    return make_user("mallory")


def bearer(user) -> str:
    return f"Bearer {RefreshToken.for_user(user).access_token}"


@pytest.fixture
def api(user):
    """A DRF test client authenticated as `user`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bearer(user))
    return client


@pytest.fixture
def auth_header(user):
    """Headers for Django's AsyncClient, authenticated as `user`."""
    return {"Authorization": bearer(user)}


@pytest.fixture
def live_server_url(transactional_db):
    from tests.live_server import LiveServer

    with LiveServer() as server:
        yield server.url


@pytest.fixture
async def close_generation_hub():
    """The generation hub of the test's event loop (Redis connections and background tasks, see
    core.hub), closed with the test as the lifespan shutdown closes it in production; left to the
    loop's final cancellation, a Redis call cut in the middle can hang the teardown."""
    yield
    from core.hub import aclose_hub

    await aclose_hub()


def pytest_collection_modifyitems(items):
    # Every async test closes its loop's hub (a sync test has no loop of its own to close, and an
    # async fixture would give it one, which Playwright's sync API refuses to run inside).
    for item in items:
        function = getattr(item, "function", None)
        if (
            asyncio.iscoroutinefunction(function)
            and "close_generation_hub" not in item.fixturenames
        ):
            item.fixturenames.append("close_generation_hub")
