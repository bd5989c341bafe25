"""Two real worker processes sharing one database: a run stays `running` while its worker lives,
however long the model takes, even as the other worker sweeps; once its worker is killed (SIGKILL:
nothing of it runs any more), the other worker marks it interrupted within STREAM_STALE_S."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest

from agents.models import AgentRun
from conftest import bearer
from tests.gemini_standin import json_reply, text_reply
from tests.live_server import ServerProcess, database_url_for_subprocess, production_env
from tests.polling import eventually
from tests.require import require
from tests.sse import iter_frames

pytestmark = pytest.mark.django_db(transaction=True)

STALE_S = 1.0
EVALUATION = {"score": 8, "feedback": "Good", "improvements": []}


def worker_env(standin) -> dict[str, str]:
    database_url = database_url_for_subprocess()
    require(database_url, "the test database is in memory: another process cannot use it")
    return production_env(
        DATABASE_URL=database_url,
        AI_PROVIDER="gemini",
        GEMINI_API_KEY="test-key",
        GEMINI_BASE_URL=standin.base_url,
        GEMINI_MAX_RETRIES="0",
        STREAM_STALE_S=str(STALE_S),
    )


def test_a_killed_workers_run_is_interrupted_by_the_other_worker(gemini_standin, user):
    gate = threading.Event()  # the evaluation is held at the model for the whole test
    held = json_reply(EVALUATION)
    held.gate = gate
    gemini_standin.enqueue(text_reply("Copy v1"), held)
    env = worker_env(gemini_standin)
    running_it, other = ServerProcess(env), ServerProcess(env)
    try:
        running_it.start()
        other.start()
        with (
            httpx.Client(base_url=running_it.url, timeout=10) as client,
            client.stream(
                "POST",
                "/api/agents/sequential/",
                json={"input": "a solar charger"},
                headers={"Authorization": bearer(user), "Accept": "text/event-stream"},
            ) as response,
        ):
            frames = iter_frames(response)
            run_id = next(frames)["messageId"]
            for frame in frames:
                if frame["type"] == "data-step" and frame["data"] == {
                    "name": "QualityEvaluation",
                    "status": "running",
                    "output": None,
                    "durationMs": None,
                    "usage": None,
                }:
                    break
            assert gemini_standin.wait_until(lambda: len(gemini_standin.requests) == 2)

            # Alive: its worker keeps stamping it past 1.5 stale periods, while the other worker
            # sweeps every STALE_S/3 s, and nothing closes it.
            first_beat = AgentRun.objects.get(id=run_id).heartbeat_at
            assert eventually(
                lambda: (
                    AgentRun.objects.get(id=run_id).heartbeat_at
                    >= first_beat + timedelta(seconds=1.5 * STALE_S)
                )
            ), running_it.log()
            assert AgentRun.objects.get(id=run_id).status == "running"

            running_it.process.kill()
            running_it.process.wait(10)

        # Dead: the other worker's sweep closes it.
        assert eventually(
            lambda: AgentRun.objects.get(id=run_id).status != "running", timeout_s=10
        ), other.log()
    finally:
        gate.set()
        running_it.stop()
        other.stop()

    run = AgentRun.objects.get(id=run_id)
    assert run.status == "interrupted" and run.finished_at
    steps = list(run.steps.order_by("position").values_list("name", "status", "output"))
    assert steps == [
        ("InitialGeneration", "complete", "Copy v1"),
        ("QualityEvaluation", "interrupted", None),
    ]
