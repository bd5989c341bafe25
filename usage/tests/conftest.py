"""Helpers for the usage tests: spending recorded on a chosen day."""

from datetime import UTC, datetime

import pytest

from usage.models import UsageRecord


def spend(user, day: str, endpoint: str, model: str, inp: int, out: int) -> UsageRecord:
    """A usage row of `inp` + `out` tokens, dated `day` (YYYY-MM-DD) at noon UTC."""
    record = UsageRecord.objects.create(
        user=user,
        endpoint=endpoint,
        model=model,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out,
    )
    at = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    UsageRecord.objects.filter(pk=record.pk).update(created_at=at)
    record.refresh_from_db()
    return record


@pytest.fixture
def spending(user, other_user):
    """Four calls of `user` over two days (two of them of one endpoint and model on one day), and
    one far larger call of `other_user`."""
    spend(user, "2026-03-01", "chat", "gemini-2.5-flash", 10, 5)
    spend(user, "2026-03-01", "chat", "gemini-2.5-flash", 20, 10)
    spend(user, "2026-03-01", "agents:routing", "gemini-2.5-pro", 100, 50)
    spend(user, "2026-03-02", "chat", "gemini-2.5-flash-lite", 1, 2)
    spend(other_user, "2026-03-01", "chat", "gemini-2.5-flash", 1000, 1000)
