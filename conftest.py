"""Fixtures shared by every app's tests."""

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

pytest_plugins = ["tests.fixtures_gemini"]


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
