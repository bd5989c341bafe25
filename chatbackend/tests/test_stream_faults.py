"""Nothing the user sent is lost: a client that leaves, a process that is stopped, a crash between
checkpoints. Real uvicorn servers (in a thread, or a subprocess for SIGTERM), real HTTP clients,
the Gemini stand-in holding the reply where the test wants it."""

import signal
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chat.models import Message
from conftest import bearer
from tests.gemini_standin import text_stream
from tests.live_server import ServerProcess, standin_server_env
from tests.polling import eventually
from tests.sse import iter_frames

pytestmark = pytest.mark.django_db(transaction=True)


def read_until_first_delta(frames: Iterator[Any]) -> tuple[str, str]:
    """Read frames up to the first text delta; returns (reply id, the delta)."""
    reply_id = None
    for frame in frames:
        if frame["type"] == "start":
            reply_id = frame["messageId"]
        elif frame["type"] == "text-delta":
            assert reply_id is not None
            return reply_id, frame["delta"]
    raise AssertionError("the stream ended before any text")


def reply_row(reply_id: str) -> Message:
    return Message.objects.get(id=reply_id)


def stream_request(standin):
    [request] = standin.requests_for("streamGenerateContent")
    return request


@pytest.fixture
def gate():
    """Holds the stand-in's reply after its first chunk; released at teardown whatever happens."""
    event = threading.Event()
    yield event
    event.set()


def leave_after_first_delta(live_server_url, user, message: str) -> str:
    """Start a turn, read up to its first text delta, then close the connection; the reply id."""
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as client,
        client.stream(
            "POST",
            "/api/chat/stream/",
            json={"message": message},
            headers={"Authorization": bearer(user)},
        ) as response,
    ):
        assert response.status_code == 200
        frames = iter_frames(response)  # kept: dropping a half-read iterator closes the stream
        reply_id, delta = read_until_first_delta(frames)
        assert delta == "The first part. "
        assert reply_row(reply_id).status == Message.Status.STREAMING
    return reply_id


def test_with_cancel_a_client_disconnect_saves_the_partial_reply_and_cancels_the_model_call(
    settings, gemini_provider_settings, live_server_url, user, gate
):
    settings.CHAT_ON_DISCONNECT = "cancel"
    standin = gemini_provider_settings
    standin.enqueue(text_stream(["The first part. ", "Never sent."], gate=gate))

    reply_id = leave_after_first_delta(live_server_url, user, "Tell me everything")

    assert standin.wait_until(lambda: stream_request(standin).disconnected, timeout=10)
    assert eventually(lambda: reply_row(reply_id).status != Message.Status.STREAMING)
    reply = reply_row(reply_id)
    assert (reply.status, reply.content, reply.finish_reason) == (
        Message.Status.INTERRUPTED,
        "The first part. ",
        "other",
    )
    # The user's message is kept, before the reply.
    assert list(reply.conversation.messages.values_list("role", "content")) == [
        ("user", "Tell me everything"),
        ("assistant", "The first part. "),
    ]


def test_by_default_the_reply_outlives_its_client(
    gemini_provider_settings, live_server_url, user, gate
):
    standin = gemini_provider_settings
    standin.enqueue(text_stream(["The first part. ", "And the rest."], gate=gate))

    reply_id = leave_after_first_delta(live_server_url, user, "Tell me everything")
    # The client is gone; the model is still asked, and its answer is kept whole.
    assert reply_row(reply_id).status == Message.Status.STREAMING
    assert not stream_request(standin).disconnected
    gate.set()

    assert eventually(lambda: reply_row(reply_id).status != Message.Status.STREAMING)
    reply = reply_row(reply_id)
    assert (reply.status, reply.content) == (
        Message.Status.COMPLETE,
        "The first part. And the rest.",
    )
    assert not stream_request(standin).disconnected


def test_checkpoint_stores_the_text_while_the_stream_is_held(
    settings, gemini_provider_settings, live_server_url, user, gate
):
    settings.STREAM_CHECKPOINT_S = 0  # checkpoint at every delta
    standin = gemini_provider_settings
    standin.enqueue(text_stream(["Saved early. ", "And the rest."], gate=gate))

    with (
        httpx.Client(base_url=live_server_url, timeout=10) as client,
        client.stream(
            "POST",
            "/api/chat/stream/",
            json={"message": "Go on"},
            headers={"Authorization": bearer(user)},
        ) as response,
    ):
        frames = iter_frames(response)
        reply_id, _ = read_until_first_delta(frames)
        # The model is held: the row already has what was streamed, still marked streaming.
        assert eventually(lambda: reply_row(reply_id).content == "Saved early. ", timeout_s=5)
        assert reply_row(reply_id).status == Message.Status.STREAMING

        gate.set()
        rest = list(frames)

    assert rest[-1] == "[DONE]"
    reply = reply_row(reply_id)
    assert (reply.status, reply.content) == (Message.Status.COMPLETE, "Saved early. And the rest.")


def open_stream(client: httpx.Client, user, message: str):
    return client.stream(
        "POST",
        "/api/chat/stream/",
        json={"message": message},
        headers={"Authorization": bearer(user)},
    )


@pytest.mark.parametrize("workers", [1, 2], ids=["one-worker", "two-workers"])
def test_sigterm_mid_stream_saves_the_partial_reply_before_exiting(
    gemini_standin, user, gate, workers
):
    gemini_standin.enqueue(text_stream(["Half an answer", " and the other half"], gate=gate))
    server = ServerProcess(
        standin_server_env(gemini_standin.base_url),
        graceful_timeout_s=1,
        extra_args=("--workers", str(workers)),  # the Dockerfile runs 2
    ).start()
    try:
        with (
            httpx.Client(base_url=server.url, timeout=10) as client,
            open_stream(client, user, "Explain") as response,
        ):
            frames = iter_frames(response)
            reply_id, _ = read_until_first_delta(frames)

            # Stopped while the model is held and the client still reads: uvicorn waits 1 s for
            # the stream, then cancels it, and the process exits.
            server.terminate(timeout_s=20)

            with pytest.raises(httpx.TransportError):
                list(frames)  # cut off, without [DONE]
    finally:
        log = server.log()
        server.stop()

    reply = reply_row(reply_id)
    assert (reply.status, reply.content) == (Message.Status.INTERRUPTED, "Half an answer"), log
    assert stream_request(gemini_standin).disconnected


def test_sigterm_lets_a_stream_finish_within_the_graceful_timeout(gemini_standin, user, gate):
    gemini_standin.enqueue(text_stream(["Almost ", "done."], gate=gate))
    # A graceful timeout far longer than the exit below may take: exiting in time shows that
    # uvicorn stopped because the stream was done, not because the timeout ran out.
    server = ServerProcess(
        standin_server_env(gemini_standin.base_url), graceful_timeout_s=60
    ).start()
    try:
        with (
            httpx.Client(base_url=server.url, timeout=10) as client,
            open_stream(client, user, "Finish it") as response,
        ):
            frames = iter_frames(response)
            reply_id, _ = read_until_first_delta(frames)
            server.process.send_signal(signal.SIGTERM)
            # Shutting down: uvicorn has closed its listening socket, yet it is still running,
            # held open by this stream (the model is held by the gate until the line below).
            assert eventually(lambda: not server.accepts_connections())
            assert server.process.poll() is None

            gate.set()  # the model finishes while the server waits for the stream
            rest = list(frames)
            exit_code = server.process.wait(15)  # TimeoutExpired if it waited for more
    finally:
        server.stop()

    # uvicorn ends a graceful shutdown by re-raising the SIGTERM it caught (chatbackend.shutdown).
    assert exit_code == -signal.SIGTERM

    assert rest[-1] == "[DONE]"
    reply = reply_row(reply_id)
    assert (reply.status, reply.content) == (Message.Status.COMPLETE, "Almost done.")
