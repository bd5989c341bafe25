from datetime import date

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from .models import UsageRecord


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
