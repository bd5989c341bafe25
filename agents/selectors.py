from __future__ import annotations

import uuid

from django.db.models import Count, QuerySet

from .models import AgentRun


def runs_of(*, user) -> QuerySet[AgentRun]:
    """The user's runs, newest first, with their step count."""
    return (
        AgentRun.objects.filter(user=user)
        .annotate(step_count=Count("steps"))
        .order_by("-created_at")
    )


def run_with_steps(*, run_id: uuid.UUID) -> AgentRun:
    return AgentRun.objects.prefetch_related("steps").get(id=run_id)
