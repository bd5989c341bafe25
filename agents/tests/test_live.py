"""Through a real uvicorn server (no test-client buffering): progress reaches the client while the
model is still working, and a client that goes away interrupts the run."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from agents.models import AgentRun
from tests.gemini_standin import Reply, json_reply, text_reply

from .conftest import parse_sse, types_of

pytestmark = pytest.mark.django_db(transaction=True)

EVALUATION = {"score": 8, "feedback": "Good", "improvements": []}


def gated(reply: Reply, gate: threading.Event) -> Reply:
    reply.gate = gate
    return reply


def open_stream(http: httpx.Client, user):
    from conftest import bearer

    return http.stream(
        "POST",
        "/api/agents/sequential/",
        json={"input": "a solar charger"},
        headers={"Authorization": bearer(user), "Accept": "text/event-stream"},
    )


def read_until(chunks, received: bytearray, marker: bytes) -> None:
    while marker not in received:
        received.extend(next(chunks))


def test_steps_reach_the_client_as_they_start(
    live_server_url, user, gemini_standin, gemini_provider_settings
):
    gate = threading.Event()
    gemini_standin.enqueue(text_reply("Copy v1"), gated(json_reply(EVALUATION), gate))
    received = bytearray()
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as http,
        open_stream(http, user) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_raw()
        read_until(chunks, received, b'"name":"QualityEvaluation","status":"running"')
        # The evaluation is still waiting on the model, and the client already knows.
        assert not gate.is_set()
        assert b"data-result" not in received
        gate.set()
        for chunk in chunks:
            received.extend(chunk)
    frames = parse_sse(bytes(received))
    assert types_of(frames)[-3:] == ["data-result", "finish", "[DONE]"]


def test_disconnect_interrupts_the_run(
    live_server_url, user, gemini_standin, gemini_provider_settings
):
    gate = threading.Event()
    gemini_standin.enqueue(text_reply("Copy v1"), gated(json_reply(EVALUATION), gate))
    received = bytearray()
    try:
        with (
            httpx.Client(base_url=live_server_url, timeout=10) as http,
            open_stream(http, user) as response,
        ):
            read_until(response.iter_raw(), received, b'"QualityEvaluation","status":"running"')
        # Leaving the block closed the connection mid-stream.
        deadline = time.monotonic() + 10
        run = AgentRun.objects.get()
        while run.status == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
            run.refresh_from_db()
        assert run.status == "interrupted"
        steps = list(run.steps.order_by("position").values_list("name", "status"))
        assert steps == [("InitialGeneration", "complete"), ("QualityEvaluation", "interrupted")]
        # The model request in flight was abandoned too. The step announces itself before its
        # request goes out, so the cancellation may also come before the stand-in saw it at all:
        # either way no request is left waiting on the model.
        assert gemini_standin.wait_until(
            lambda: all(r.status == 200 or r.disconnected for r in gemini_standin.requests)
        )
        assert all(r.disconnected for r in gemini_standin.requests[1:])
    finally:
        gate.set()
