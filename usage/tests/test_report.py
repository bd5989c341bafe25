"""The usage page in the admin: tokens and cost per day, per model or per user, as a chart and a
table of the same numbers; summed by the database; no other host named."""

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from usage.selectors import usage_per_day

from .conftest import spend

pytestmark = pytest.mark.django_db

REPORT = "/admin/usage/usagerecord/report/"
MARCH = {"since": "2026-03-01", "until": "2026-03-02"}


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


def table(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_per_day_and_model_with_cost(spending):
    assert usage_per_day(by="model", since=date(2026, 3, 1), until=date(2026, 3, 2)) == [
        {
            "day": date(2026, 3, 1),
            "key": "gemini-2.5-flash",
            "calls": 3,
            "input_tokens": 1030,
            "output_tokens": 1015,
            "total_tokens": 2045,
            # 1030 * $0.30 + 1015 * $2.50 per million
            "cost": Decimal("0.00284650"),
        },
        {
            "day": date(2026, 3, 1),
            "key": "gemini-2.5-pro",
            "calls": 1,
            "input_tokens": 100,
            "output_tokens": 50,
            "total_tokens": 150,
            "cost": Decimal("0.00062500"),  # 100 * $1.25 + 50 * $10
        },
        {
            "day": date(2026, 3, 2),
            "key": "gemini-2.5-flash-lite",
            "calls": 1,
            "input_tokens": 1,
            "output_tokens": 2,
            "total_tokens": 3,
            "cost": Decimal("0.00000090"),  # 1 * $0.10 + 2 * $0.40
        },
    ]


def test_per_user_in_one_query_and_an_unpriced_model_has_no_cost(user, spending, settings):
    spend(user, "2026-03-02", "chat", "brand-new-model", 7, 7)
    settings.MODEL_PRICES = {"gemini-2.5-flash": {"input": 1, "output": 1}}
    with CaptureQueriesContext(connection) as queries:
        rows = usage_per_day(by="user", since=date(2026, 3, 1), until=date(2026, 3, 2))
    assert len(queries) == 1
    assert [(r["day"], r["key"], r["total_tokens"], r["cost"]) for r in rows] == [
        (date(2026, 3, 1), "alice", 195, Decimal("0.00004500")),  # flash only: 45 tokens at $1/M
        (date(2026, 3, 1), "mallory", 2000, Decimal("0.00200000")),
        (date(2026, 3, 2), "alice", 17, None),  # no priced model that day
    ]


def test_the_page_shows_the_table_and_the_chart_per_model(staff, spending):
    response = staff.get(REPORT, MARCH)
    assert response.status_code == 200
    html = response.content.decode()
    assert table(html, "usage-days") == [
        ["2026-03-01", "gemini-2.5-flash", "3", "1,030", "1,015", "2,045", "$0.0028"],
        ["2026-03-01", "gemini-2.5-pro", "1", "100", "50", "150", "$0.0006"],
        ["2026-03-02", "gemini-2.5-flash-lite", "1", "1", "2", "3", "$0.0000"],
    ]
    assert table(html, "usage-totals") == [
        ["gemini-2.5-flash", "3", "1,030", "1,015", "2,045", "$0.0028"],
        ["gemini-2.5-pro", "1", "100", "50", "150", "$0.0006"],
        ["gemini-2.5-flash-lite", "1", "1", "2", "3", "$0.0000"],
        ["all", "5", "1,131", "1,067", "2,198", "$0.0035"],
    ]
    # One bar segment per day and model, titled with its number; two days on the axis.
    titles = re.findall(r"<rect [^>]*><title>([^<]*)</title>", html)
    assert sorted(titles) == [
        "2026-03-01 gemini-2.5-flash: 2,045",
        "2026-03-01 gemini-2.5-pro: 150",
        "2026-03-02 gemini-2.5-flash-lite: 3",
    ]
    assert re.findall(r">(03-0\d)</text>", html) == ["03-01", "03-02"]


def test_per_user_by_cost(staff, spending):
    html = staff.get(REPORT, {**MARCH, "by": "user", "metric": "cost"}).content.decode()
    assert [row[:2] + row[-1:] for row in table(html, "usage-days")] == [
        ["2026-03-01", "alice", "$0.0007"],
        ["2026-03-01", "mallory", "$0.0028"],
        ["2026-03-02", "alice", "$0.0000"],
    ]
    titles = re.findall(r"<rect [^>]*><title>([^<]*)</title>", html)
    assert "2026-03-01 mallory: $0.0028" in titles
    bar = r'<rect [^>]*height="([\d.]+)"[^>]*><title>2026-03-01 (\w+):'
    bars = {name: float(height) for height, name in re.findall(bar, html)}
    assert bars["mallory"] > 4 * bars["alice"]  # the larger cost, the taller bar


def test_the_default_is_the_last_thirty_days(staff, user):
    from django.utils import timezone

    today = timezone.now().date()
    spend(user, str(today), "chat", "gemini-2.5-flash", 10, 10)
    spend(user, "2020-01-01", "chat", "gemini-2.5-flash", 99, 99)
    html = staff.get(REPORT).content.decode()
    assert [row[0] for row in table(html, "usage-days")] == [f"{today:%Y-%m-%d}"]
    assert len(re.findall(r">\d\d-\d\d</text>", html)) == 10  # 30 days, every third labelled
    assert f'value="{today - timedelta(days=29):%Y-%m-%d}"' in html  # the range, in the form


def test_bad_ranges_are_a_400_with_the_reason(staff):
    response = staff.get(REPORT, {"since": "2026-03-05", "until": "2026-03-01"})
    assert response.status_code == 400
    assert b"The first day comes after the last." in response.content
    assert staff.get(REPORT, {"since": "2020-01-01", "until": "2026-01-01"}).status_code == 400
    assert staff.get(REPORT, {"since": "yesterday"}).status_code == 400
    assert staff.get(REPORT, {"by": "endpoint"}).status_code == 400


def test_the_page_names_no_other_host(staff, spending):
    html = staff.get(REPORT, MARCH).content.decode()
    hosts = set(re.findall(r"(?:https?:)?//([\w.-]+)", html))
    # SVG's own namespace is a name, not something fetched; nothing else may appear.
    assert hosts <= {"www.w3.org"}, hosts
    assert not re.search(r"<script[^>]+src=\"(?!/static/)", html)


def test_the_usage_list_links_the_page_and_staff_only_see_it(client, staff, user):
    assert REPORT.encode() in staff.get("/admin/usage/usagerecord/").content
    client.force_login(user)
    assert client.get(REPORT)["Location"].startswith("/admin/login/")


def test_staff_without_the_view_permission_get_403(client, django_user_model):
    client.force_login(django_user_model.objects.create_user(username="s", is_staff=True))
    assert client.get(REPORT).status_code == 403
