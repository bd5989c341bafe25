from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate

from .models import UsageRecord
from .pricing import cost_usd


def usage_by_day(*, user, since: date | None = None) -> list[dict]:
    """The user's token usage grouped by day, endpoint and model, newest day first."""
    records = UsageRecord.objects.filter(user=user)
    if since:
        records = records.filter(created_at__date__gte=since)
    return list(
        records.annotate(day=TruncDate("created_at"))
        .values("day", "endpoint", "model")
        .annotate(
            calls=Count("id"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            total_tokens=Sum("total_tokens"),
        )
        .order_by("-day", "endpoint", "model")
    )


def usage_per_day(*, by: str, since: date, until: date) -> list[dict]:
    """Every user's usage from `since` to `until` (inclusive, UTC days) summed per day and per
    model (`by="model"`) or per user (`by="user"`), oldest day first: `day`, `key` (the model or
    the username), `calls`, the three token counts and `cost` (dollars at `MODEL_PRICES`; None
    when no call of the row's model has a price). Summed by the database, one query."""
    key = {"model": F("model"), "user": F("user__username")}[by]
    start = datetime.combine(since, time.min, tzinfo=UTC)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
    return list(
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", key=key)
        # Cost first: the sums below take the token fields' names, which the cost then would read.
        .annotate(cost=Sum(cost_usd()))
        .annotate(
            calls=Count("id"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            total_tokens=Sum("total_tokens"),
        )
        .order_by("day", "key")
    )
