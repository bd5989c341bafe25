import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-unusual-passphrase-42"


@pytest.fixture
def client():
    return APIClient()


def register(client, **body):
    return client.post("/api/auth/register/", body, format="json")


def test_register_creates_user_and_hides_password(client):
    response = register(client, username="bob", password=PASSWORD, email="bob@example.com")
    assert response.status_code == 201
    assert response.json()["username"] == "bob"
    assert "password" not in response.json()
    user = get_user_model().objects.get(username="bob")
    assert user.check_password(PASSWORD) and not user.is_staff


def test_duplicate_username_is_rejected(client):
    assert register(client, username="bob", password=PASSWORD).status_code == 201
    response = register(client, username="bob", password=PASSWORD + "x")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "username" in response.json()["error"]["details"]
    assert get_user_model().objects.filter(username="bob").count() == 1


@pytest.mark.parametrize("password", ["short", "12345678901", "password123"])
def test_weak_passwords_fail_django_validators(client, password):
    response = register(client, username="bob", password=password)
    assert response.status_code == 400
    assert "password" in response.json()["error"]["details"]
    assert not get_user_model().objects.filter(username="bob").exists()


def test_password_like_the_username_is_rejected(client):
    response = register(client, username="charlotte", password="charlotte1")
    assert response.status_code == 400
    assert "password" in response.json()["error"]["details"]


def test_missing_fields_are_400(client):
    response = register(client)
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) >= {"username", "password"}


def test_token_obtain_refresh_and_me(client):
    register(client, username="bob", password=PASSWORD)
    tokens = client.post(
        "/api/auth/token/", {"username": "bob", "password": PASSWORD}, format="json"
    ).json()
    assert {"access", "refresh"} <= tokens.keys()

    refreshed = client.post(
        "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200 and refreshed.json()["access"]

    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    me = client.get("/api/auth/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "bob"


def test_wrong_password_is_401(client):
    register(client, username="bob", password=PASSWORD)
    response = client.post(
        "/api/auth/token/", {"username": "bob", "password": "nope"}, format="json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_me_without_token_is_401(client):
    response = client.get("/api/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_bad_token_is_401(client):
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert client.get("/api/auth/me/").status_code == 401
