"""Through a real uvicorn server (no test-client buffering): progress reaches the client while the
model is still working, and a client that goes away interrupts the run."""

from __future__ import annotations

import threading

import httpx
import pytest

from agents import services
from agents.models import AgentRun
from tests.gemini_standin import Reply, json_reply, text_reply, text_stream
from tests.sse import DONE, iter_frames

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


def is_step(frame, name: str, status: str) -> bool:
    return (
        isinstance(frame, dict)
        and frame["type"] == "data-step"
        and (frame["data"]["name"], frame["data"]["status"]) == (name, status)
    )


def read_until(frames, received: list, name: str, status: str) -> None:
    """Read frames into `received` up to the data-step chunk of step `name` in `status`."""
    for frame in frames:
        received.append(frame)
        if is_step(frame, name, status):
            return
    raise AssertionError(f"the stream ended before step {name} was {status}: {received}")


def test_steps_reach_the_client_as_they_start(
    live_server_url, user, gemini_standin, gemini_provider_settings
):
    gate = threading.Event()
    gemini_standin.enqueue(text_reply("Copy v1"), gated(json_reply(EVALUATION), gate))
    received: list = []
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as http,
        open_stream(http, user) as response,
    ):
        assert response.status_code == 200
        frames = iter_frames(response)
        # The stand-in holds the evaluation until the gate opens: the chunk can only arrive now if
        # the server sent it while the model was still working.
        read_until(frames, received, "QualityEvaluation", "running")
        assert gemini_standin.wait_until(lambda: len(gemini_standin.requests) == 2)
        assert gemini_standin.requests[1].finished is None
        gate.set()
        received.extend(frames)
    assert [f if f == DONE else f["type"] for f in received[-3:]] == [
        "data-result",
        "finish",
        DONE,
    ]


def test_disconnect_interrupts_the_run(
    live_server_url, user, gemini_standin, gemini_provider_settings, monkeypatch
):
    # Set by the server when it saves the run's end: the test waits on it, not on a clock.
    closed = threading.Event()
    finish_run = services.finish_run

    def finish_run_and_tell(**kwargs):
        finish_run(**kwargs)
        closed.set()

    monkeypatch.setattr(services, "finish_run", finish_run_and_tell)
    gate = threading.Event()
    gemini_standin.enqueue(text_reply("Copy v1"), gated(json_reply(EVALUATION), gate))
    try:
        with (
            httpx.Client(base_url=live_server_url, timeout=10) as http,
            open_stream(http, user) as response,
        ):
            frames = iter_frames(response)  # held: dropping the reader would close the stream
            read_until(frames, [], "QualityEvaluation", "running")
            # The evaluation request is at the model (held there) when the client leaves.
            assert gemini_standin.wait_until(lambda: len(gemini_standin.requests) == 2)
        # Leaving the block closed the connection mid-stream.
        assert closed.wait(10)
        run = AgentRun.objects.get()
        assert run.status == "interrupted" and run.finished_at
        steps = list(run.steps.order_by("position").values_list("name", "status"))
        assert steps == [("InitialGeneration", "complete"), ("QualityEvaluation", "interrupted")]
        # The model request in flight was abandoned too: the client closed it, unanswered.
        generation, evaluation = gemini_standin.requests
        assert generation.status == 200
        assert gemini_standin.wait_until(lambda: evaluation.disconnected)
        assert evaluation.status is None  # never answered
    finally:
        gate.set()


# --- a final step that ends early keeps the JSON text its client received ----------------------
RESULT_TEXT = ['{"headline": "Charge', ' anywhere", "body": "Sun', 'light in, power out."}']


def result_text(frames) -> str:
    return "".join(f["delta"] for f in frames if isinstance(f, dict) and f["type"] == "text-delta")


def test_a_final_step_failing_mid_stream_keeps_the_text_its_client_received(
    live_server_url, user, gemini_standin, gemini_provider_settings
):
    gemini_standin.enqueue(
        text_reply("Copy v1"), json_reply(EVALUATION), text_stream(RESULT_TEXT, error_after=2)
    )
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as http,
        open_stream(http, user) as response,
    ):
        frames = list(iter_frames(response))

    got = result_text(frames)
    assert got == "".join(RESULT_TEXT[:2])
    [failed_frame] = [f for f in frames if is_step(f, "FinalPackaging", "error")]
    assert failed_frame["data"]["output"] == got
    run = AgentRun.objects.get()
    assert run.status == "error"
    step = run.steps.get(name="FinalPackaging")
    assert (step.status, step.output) == ("error", got)


def test_a_final_step_its_client_left_keeps_the_text_the_client_received(
    live_server_url, user, gemini_standin, gemini_provider_settings, monkeypatch
):
    closed = threading.Event()
    finish_run = services.finish_run

    def finish_run_and_tell(**kwargs):
        finish_run(**kwargs)
        closed.set()

    monkeypatch.setattr(services, "finish_run", finish_run_and_tell)
    gate = threading.Event()
    gemini_standin.enqueue(
        text_reply("Copy v1"),
        json_reply(EVALUATION),
        text_stream(RESULT_TEXT, gate=gate, gate_after=2),
    )
    read: list = []
    try:
        with (
            httpx.Client(base_url=live_server_url, timeout=10) as http,
            open_stream(http, user) as response,
        ):
            frames = iter_frames(response)  # held: dropping the reader would close the stream
            for frame in frames:
                read.append(frame)
                if result_text(read) == "".join(RESULT_TEXT[:2]):
                    break
        assert closed.wait(10)
    finally:
        gate.set()

    run = AgentRun.objects.get()
    assert run.status == "interrupted"
    step = run.steps.get(name="FinalPackaging")
    assert (step.status, step.output) == ("interrupted", result_text(read))
