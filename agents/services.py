"""Writes of agent runs and their steps. Plain sync ORM functions: the run's path calls them through
`core.db.run_db`, so a run holds a database connection only for these short bursts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
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


def beat_runs(*, run_ids: list[uuid.UUID]) -> None:
    """The process running these runs is alive (core.liveness calls this every few seconds)."""
    AgentRun.objects.filter(id__in=run_ids, status=AgentRun.Status.RUNNING).update(
        heartbeat_at=timezone.now()
    )


STALE_RUN_ERROR = "The run stopped when the server process running it stopped."


def sweep_stale_runs(*, stale_before: datetime) -> int:
    """Close the runs left `running` by a process that died (no heartbeat since `stale_before`):
    the run and its running steps become interrupted; finished steps and their output stay, and
    the run's token total counts them. Returns how many runs were closed.

    Every worker sweeps. On PostgreSQL the stale rows are locked, skipping those another worker's
    sweep holds, and the UPDATE repeats the condition, so a run is closed once and a run whose
    process beat in the meantime is left alone."""
    now = timezone.now()
    with transaction.atomic():
        run_ids = list(
            AgentRun.objects.select_for_update(skip_locked=True)
            .filter(status=AgentRun.Status.RUNNING, heartbeat_at__lt=stale_before)
            .values_list("id", flat=True)
        )
        if not run_ids:
            return 0
        closed = AgentRun.objects.filter(
            id__in=run_ids, status=AgentRun.Status.RUNNING, heartbeat_at__lt=stale_before
        )
        AgentStep.objects.filter(run__in=closed, status=AgentStep.Status.RUNNING).update(
            status=AgentStep.Status.INTERRUPTED, finished_at=now
        )
        tokens = (
            AgentStep.objects.filter(run=OuterRef("pk"))
            .values("run")
            .annotate(total=Sum("total_tokens"))
            .values("total")
        )
        return closed.update(
            status=AgentRun.Status.INTERRUPTED,
            error=STALE_RUN_ERROR,
            total_tokens=Coalesce(Subquery(tokens), 0),
            finished_at=now,
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
