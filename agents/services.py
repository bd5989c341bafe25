"""Writes of agent runs and their steps. Plain sync ORM functions: the run's path calls them through
`core.db.run_db`, so a run holds a database connection only for these short bursts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from llm import Usage

from .models import AgentRun, AgentStep


def create_run(*, user_id: int, pattern: str, input: dict[str, Any]) -> AgentRun:
    return AgentRun.objects.create(user_id=user_id, pattern=pattern, input=input)


def start_step(
    *,
    run_id: uuid.UUID,
    step_id: uuid.UUID,
    position: int,
    name: str,
    model: str,
    started_at: datetime,
) -> None:
    AgentStep.objects.create(
        id=step_id, run_id=run_id, position=position, name=name, model=model, started_at=started_at
    )


def finish_step(
    *,
    step_id: uuid.UUID,
    status: str,
    output: Any = None,
    error: str = "",
    duration_ms: int,
    usage: Usage,
    cached: bool,
    model: str,
) -> None:
    AgentStep.objects.filter(id=step_id).update(
        status=status,
        output=output,
        error=error,
        duration_ms=duration_ms,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        cached=cached,
        model=model,
        finished_at=timezone.now(),
    )


def finish_run(
    *, run_id: uuid.UUID, status: str, final_output: Any = None, error: str = ""
) -> None:
    """Close the run: its status, output or error, and its token total. Steps still running
    (cancelled siblings of a failed step, or everything on a disconnect) become interrupted."""
    now = timezone.now()
    AgentStep.objects.filter(run_id=run_id, status=AgentStep.Status.RUNNING).update(
        status=AgentStep.Status.INTERRUPTED, finished_at=now
    )
    total = AgentStep.objects.filter(run_id=run_id).aggregate(total=Sum("total_tokens"))["total"]
    AgentRun.objects.filter(id=run_id).update(
        status=status,
        final_output=final_output,
        error=error,
        total_tokens=total or 0,
        finished_at=now,
    )
