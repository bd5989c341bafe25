"""GET /api/usage/: the caller's tokens by day, endpoint and model; nobody else's."""

import pytest

pytestmark = pytest.mark.django_db


def test_usage_grouped_by_day_endpoint_and_model(api, spending):
    response = api.get("/api/usage/")

    assert response.status_code == 200
    body = response.json()
    assert body["rows"] == [
        {
            "day": "2026-03-02",
            "endpoint": "chat",
            "model": "gemini-2.5-flash-lite",
            "calls": 1,
            "input_tokens": 1,
            "output_tokens": 2,
            "total_tokens": 3,
        },
        {
            "day": "2026-03-01",
            "endpoint": "agents:routing",
            "model": "gemini-2.5-pro",
            "calls": 1,
            "input_tokens": 100,
            "output_tokens": 50,
            "total_tokens": 150,
        },
        {
            "day": "2026-03-01",
            "endpoint": "chat",
            "model": "gemini-2.5-flash",
            "calls": 2,
            "input_tokens": 30,
            "output_tokens": 15,
            "total_tokens": 45,
        },
    ]
    # The other user's 2000 tokens are not counted.
    assert body["total_tokens"] == 3 + 150 + 45


def test_since_filters_days(api, spending):
    body = api.get("/api/usage/", {"since": "2026-03-02"}).json()

    assert [(row["day"], row["total_tokens"]) for row in body["rows"]] == [("2026-03-02", 3)]
    assert body["total_tokens"] == 3


def test_bad_since_is_400_json(api, spending):
    response = api.get("/api/usage/", {"since": "yesterday"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_usage_needs_a_token(client, spending):
    response = client.get("/api/usage/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_user_without_usage_gets_an_empty_report(api):
    assert api.get("/api/usage/").json() == {"total_tokens": 0, "rows": []}
