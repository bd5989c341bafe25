"""usage.selectors.usage_by_day: one row per day, endpoint and model, of one user's calls."""

from datetime import date

import pytest

from usage.selectors import usage_by_day

from .conftest import spend

pytestmark = pytest.mark.django_db


def test_calls_are_summed_per_day_endpoint_and_model_newest_day_first(user, spending):
    assert usage_by_day(user=user) == [
        {
            "day": date(2026, 3, 2),
            "endpoint": "chat",
            "model": "gemini-2.5-flash-lite",
            "calls": 1,
            "input_tokens": 1,
            "output_tokens": 2,
            "total_tokens": 3,
        },
        {
            "day": date(2026, 3, 1),
            "endpoint": "agents:routing",
            "model": "gemini-2.5-pro",
            "calls": 1,
            "input_tokens": 100,
            "output_tokens": 50,
            "total_tokens": 150,
        },
        {
            "day": date(2026, 3, 1),
            "endpoint": "chat",
            "model": "gemini-2.5-flash",
            "calls": 2,
            "input_tokens": 30,
            "output_tokens": 15,
            "total_tokens": 45,
        },
    ]


def test_only_the_owner_s_calls_are_counted(user, other_user, spending):
    assert [
        (row["day"], row["endpoint"], row["model"], row["calls"], row["total_tokens"])
        for row in usage_by_day(user=other_user)
    ] == [(date(2026, 3, 1), "chat", "gemini-2.5-flash", 1, 2000)]
    assert sum(row["total_tokens"] for row in usage_by_day(user=user)) == 3 + 150 + 45


def test_the_same_endpoint_and_model_on_two_days_are_two_rows(user):
    spend(user, "2026-03-01", "chat", "gemini-2.5-flash", 1, 1)
    spend(user, "2026-03-03", "chat", "gemini-2.5-flash", 2, 2)

    assert [(row["day"], row["total_tokens"]) for row in usage_by_day(user=user)] == [
        (date(2026, 3, 3), 4),
        (date(2026, 3, 1), 2),
    ]


def test_since_keeps_that_day_and_later(user, spending):
    rows = usage_by_day(user=user, since=date(2026, 3, 2))
    assert [(row["day"], row["total_tokens"]) for row in rows] == [(date(2026, 3, 2), 3)]

    rows = usage_by_day(user=user, since=date(2026, 3, 1))
    assert [row["day"] for row in rows] == [date(2026, 3, 2), date(2026, 3, 1), date(2026, 3, 1)]


def test_a_user_without_calls_gets_no_rows(user, other_user):
    spend(other_user, "2026-03-01", "chat", "gemini-2.5-flash", 5, 5)

    assert usage_by_day(user=user) == []
