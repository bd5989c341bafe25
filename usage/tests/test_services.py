"""usage.services: what one model call's accounting stores, from sync and async code."""

import pytest

from llm import Usage
from usage.models import UsageRecord
from usage.services import record_usage, save_usage


def rows():
    return list(
        UsageRecord.objects.order_by("id").values_list(
            "user__username", "endpoint", "model", "input_tokens", "output_tokens", "total_tokens"
        )
    )


@pytest.mark.django_db
def test_save_usage_stores_one_row_for_the_user(user, other_user):
    save_usage(
        user_id=user.id,
        endpoint="chat",
        model="gemini-2.5-flash",
        usage=Usage(input_tokens=12, output_tokens=30, total_tokens=42),
    )

    assert rows() == [("alice", "chat", "gemini-2.5-flash", 12, 30, 42)]
    assert not other_user.usage_records.exists()


@pytest.mark.django_db
def test_the_provider_total_is_kept_when_it_counts_more_than_input_and_output(user):
    # Gemini's totalTokenCount includes thinking tokens that are in neither count.
    save_usage(
        user_id=user.id,
        endpoint="agents:routing",
        model="gemini-2.5-pro",
        usage=Usage(input_tokens=10, output_tokens=5, total_tokens=115),
    )

    assert rows() == [("alice", "agents:routing", "gemini-2.5-pro", 10, 5, 115)]


@pytest.mark.django_db
def test_a_missing_total_is_input_plus_output(user):
    save_usage(
        user_id=user.id,
        endpoint="chat:summary",
        model="gemini-2.5-flash-lite",
        usage=Usage(input_tokens=7, output_tokens=3),
    )

    assert rows() == [("alice", "chat:summary", "gemini-2.5-flash-lite", 7, 3, 10)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "usage",
    [Usage(), Usage(input_tokens=0, output_tokens=0, total_tokens=0)],
    ids=["default", "zeros"],
)
def test_a_call_that_cost_nothing_is_not_stored(user, usage):
    save_usage(user_id=user.id, endpoint="chat", model="gemini-2.5-flash", usage=usage)

    assert rows() == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("usage", "stored"),
    [
        (Usage(input_tokens=4), (4, 0, 4)),
        (Usage(output_tokens=6), (0, 6, 6)),
        (Usage(total_tokens=9), (0, 0, 9)),
    ],
    ids=["input-only", "output-only", "total-only"],
)
def test_any_nonzero_count_is_stored(user, usage, stored):
    save_usage(user_id=user.id, endpoint="chat", model="m", usage=usage)

    assert rows() == [("alice", "chat", "m", *stored)]


@pytest.mark.django_db(transaction=True)
async def test_record_usage_saves_from_async_code(user):
    await record_usage(
        user_id=user.id,
        endpoint="agents:parallel",
        model="gemini-2.5-flash",
        usage=Usage(input_tokens=1, output_tokens=2, total_tokens=3),
    )

    stored = [row async for row in UsageRecord.objects.values_list("user_id", "total_tokens")]
    assert stored == [(user.id, 3)]
