"""Runs are never left `running`: a run whose process died (its heartbeat stopped) is marked
interrupted by any live process's sweep, keeping what its finished steps produced; a run that
is alive, even one waiting a long time on the model, is left alone."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.utils import timezone

from agents import services
from agents.execution import RUN_KIND
from agents.models import AgentRun, AgentStep
from core import liveness
from tests.gemini_standin import json_reply, text_reply
from tests.require import require

from .conftest import SSE, get, post

pytestmark = pytest.mark.django_db(transaction=True)

EVALUATION = {"score": 8, "feedback": "Good", "improvements": []}


@pytest.fixture(autouse=True)
def stale_after_30_s(settings):
    settings.STREAM_STALE_S = 30


def leave_running(user, *, heartbeat_age_s: float) -> AgentRun:
    """What a worker killed mid-run leaves: the run `running`, one step done, one in flight."""
    now = timezone.now()
    run = AgentRun.objects.create(
        user=user,
        pattern="sequential",
        input={"input": "a solar charger"},
        heartbeat_at=now - timedelta(seconds=heartbeat_age_s),
    )
    AgentStep.objects.create(
        run=run,
        position=1,
        name="InitialGeneration",
        status=AgentStep.Status.COMPLETE,
        output="Copy v1",
        total_tokens=42,
        started_at=now - timedelta(seconds=heartbeat_age_s + 5),
        finished_at=now - timedelta(seconds=heartbeat_age_s + 1),
    )
    AgentStep.objects.create(
        run=run,
        position=2,
        name="QualityEvaluation",
        started_at=now - timedelta(seconds=heartbeat_age_s),
    )
    return run


left_running = sync_to_async(leave_running)


async def test_a_run_whose_process_died_becomes_interrupted(aclient, user):
    run = await left_running(user, heartbeat_age_s=31)

    assert await liveness.sweep() == 1

    document = (await get(aclient, f"/api/agents/runs/{run.id}/")).json()
    assert document["status"] == "interrupted"
    assert document["finished_at"] is not None
    assert document["error"] == "The run stopped when the server process running it stopped."
    assert document["total_tokens"] == 42
    assert [(s["name"], s["status"], s["output"]) for s in document["steps"]] == [
        ("InitialGeneration", "complete", "Copy v1"),
        ("QualityEvaluation", "interrupted", None),
    ]
    assert await liveness.sweep() == 0  # a second sweep (another worker's) finds nothing


async def test_a_run_with_a_fresh_heartbeat_is_left_alone(aclient, user):
    run = await left_running(user, heartbeat_age_s=20)
    finished = await AgentRun.objects.acreate(
        user=user,
        pattern="routing",
        input={"query": "hi"},
        status=AgentRun.Status.COMPLETE,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )

    assert await liveness.sweep() == 0

    document = (await get(aclient, f"/api/agents/runs/{run.id}/")).json()
    assert document["status"] == "running" and document["finished_at"] is None
    assert [s["status"] for s in document["steps"]] == ["complete", "running"]
    await finished.arefresh_from_db()
    assert finished.status == "complete"


async def test_runs_left_by_a_dead_process_are_swept_when_a_worker_starts(user):
    run = await left_running(user, heartbeat_age_s=300)
    await liveness.start()
    try:
        await run.arefresh_from_db()  # start() sweeps before it returns
    finally:
        await liveness.stop()
    assert run.status == "interrupted"


@pytest.mark.usefixtures("gemini_provider_settings")
async def test_a_run_waiting_on_the_model_is_beaten_not_swept(aclient, gemini_standin):
    """The heartbeat comes from the process, not from progress: a run whose model has said
    nothing for longer than STREAM_STALE_S is still alive."""
    gate = threading.Event()
    held = json_reply(EVALUATION)
    held.gate = gate
    gemini_standin.enqueue(text_reply("Copy v1"), held)
    response = await post(aclient, "sequential", {"input": "a solar charger"}, accept=SSE)
    chunks = aiter(response.streaming_content)
    received = b""
    while b'"name":"QualityEvaluation","status":"running"' not in received:
        received += await asyncio.wait_for(anext(chunks), 10)
    run = await AgentRun.objects.aget()
    assert liveness.running_ids(RUN_KIND) == [run.id]
    # As if the model had been thinking for a minute, with no beat in between.
    await AgentRun.objects.filter(id=run.id).aupdate(
        heartbeat_at=timezone.now() - timedelta(seconds=60)
    )
    before = timezone.now()

    try:
        assert await liveness.tick() == 0
        await run.arefresh_from_db()
        assert run.status == "running"
        assert run.heartbeat_at >= before
    finally:
        gate.set()
    async for chunk in chunks:
        received += chunk

    await run.arefresh_from_db()
    assert run.status == "complete"
    assert liveness.running_ids(RUN_KIND) == []


def test_a_sweep_skips_a_run_another_workers_sweep_holds(user):
    """Every worker sweeps: on PostgreSQL a sweep neither waits on nor closes again a run whose row
    another sweep has locked, and closes it once that one is gone."""
    require(connection.vendor == "postgresql", "row locks with SKIP LOCKED need PostgreSQL")
    run = leave_running(user, heartbeat_age_s=31)
    locked, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        with transaction.atomic():
            AgentRun.objects.select_for_update().get(id=run.id)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=other_worker)
    holder.start()
    try:
        assert locked.wait(10)
        stale_before = timezone.now() - timedelta(seconds=30)
        assert services.sweep_stale_runs(stale_before=stale_before) == 0  # returns, skipping it
    finally:
        release.set()
        holder.join(10)
    assert services.sweep_stale_runs(stale_before=stale_before) == 1
    assert services.sweep_stale_runs(stale_before=stale_before) == 0
    run.refresh_from_db()
    assert run.status == "interrupted"
