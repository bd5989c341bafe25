"""Every way a reply can end early keeps exactly what its client received: a stop, a client that
leaves with CHAT_ON_DISCONNECT=cancel, SIGTERM, a retry after a partial stream, and a save the
database refuses. Real uvicorn servers (a thread, or a process for SIGTERM), real HTTP clients, the
Gemini stand-in holding the reply after a thought and three text chunks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.db import OperationalError
from django.utils import timezone

from chat import generation
from chat.models import Message
from chat.tests.streams import Received, received
from conftest import bearer
from tests.gemini_standin import text_stream
from tests.live_server import ServerProcess, standin_server_env
from tests.polling import eventually
from tests.sse import DONE, iter_frames
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

THOUGHT = "Weighing it up. "
SENT = ["One. ", "Two. ", "Three. "]  # before the hold
HELD = ["Four. ", "The end."]  # after it


@pytest.fixture
def gate():
    """Holds the stand-in's reply after the thought and SENT; released at teardown whatever
    happens."""
    event = threading.Event()
    yield event
    event.set()


def held_reply(gate: threading.Event, **options):
    return text_stream(SENT + HELD, thoughts=[THOUGHT], gate=gate, gate_after=4, **options)


def read_sent(frames: Iterator[Any]) -> list:
    """Read frames up to the last delta sent before the hold."""
    read: list = []
    for frame in frames:
        read.append(frame)
        if received(read).text == "".join(SENT):
            return read
    raise AssertionError(f"the stream ended before the held part: {read}")


def start_turn(client: httpx.Client, user, body: dict):
    return client.stream(
        "POST", "/api/chat/stream/", json=body, headers={"Authorization": bearer(user)}
    )


def assert_kept(reply: Message, got: Received, status: str) -> None:
    assert reply.status == status
    assert reply.content == got.text
    assert reply.parts == got.parts()


def the_request(standin):
    [request] = standin.requests_for("streamGenerateContent")
    return request


# --- stop, disconnect, SIGTERM ---


def test_a_stopped_reply_keeps_exactly_what_its_client_received(
    gemini_provider_settings, live_server_url, user, gate
):
    gemini_provider_settings.enqueue(held_reply(gate))
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as client,
        start_turn(client, user, {"message": "Tell me"}) as response,
    ):
        frames = iter_frames(response)
        read = read_sent(frames)
        conversation_id = read[0]["messageMetadata"]["conversationId"]
        stopped = client.post(
            f"/api/chat/conversations/{conversation_id}/stop/",
            headers={"Authorization": bearer(user)},
        )
        assert stopped.json() == {"stopped": True}
        read += list(frames)

    got = received(read)
    assert (got.text, read[-2:]) == (
        "".join(SENT),
        [{"type": "finish", "finishReason": "other"}, DONE],
    )
    assert_kept(Message.objects.get(id=read[0]["messageId"]), got, Message.Status.INTERRUPTED)
    assert gemini_provider_settings.wait_until(
        lambda: the_request(gemini_provider_settings).disconnected
    )


def test_a_reply_its_client_left_in_cancel_mode_keeps_exactly_what_was_received(
    settings, gemini_provider_settings, live_server_url, user, gate
):
    settings.CHAT_ON_DISCONNECT = "cancel"
    gemini_provider_settings.enqueue(held_reply(gate))
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as client,
        start_turn(client, user, {"message": "Tell me"}) as response,
    ):
        frames = iter_frames(response)  # kept: dropping a half-read iterator closes the stream
        read = read_sent(frames)
    reply_id = read[0]["messageId"]

    assert eventually(lambda: Message.objects.get(id=reply_id).status != Message.Status.STREAMING)
    assert_kept(Message.objects.get(id=reply_id), received(read), Message.Status.INTERRUPTED)


def test_sigterm_keeps_exactly_what_the_client_received(gemini_standin, user, gate):
    gemini_standin.enqueue(held_reply(gate))
    server = ServerProcess(standin_server_env(gemini_standin.base_url), graceful_timeout_s=1)
    server.start()
    try:
        with (
            httpx.Client(base_url=server.url, timeout=10) as client,
            start_turn(client, user, {"message": "Explain"}) as response,
        ):
            frames = iter_frames(response)
            read = read_sent(frames)
            server.terminate(timeout_s=20)
            with pytest.raises(httpx.TransportError):
                read += list(frames)  # cut off: uvicorn cancels the stream after 1 s
    finally:
        log = server.log()
        server.stop()

    reply = Message.objects.get(id=read[0]["messageId"])
    assert (reply.content, reply.status) == ("".join(SENT), Message.Status.INTERRUPTED), log
    assert_kept(reply, received(read), Message.Status.INTERRUPTED)


# --- a retry after a partial stream ---


def test_a_failed_stream_is_not_retried_so_no_text_comes_twice(
    gemini_provider_settings, live_server_url, user
):
    # A retryable error after some text, a fallback model configured: still one model call.
    gemini_provider_settings.enqueue(text_stream(SENT + HELD, thoughts=[THOUGHT], error_after=4))
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as client,
        start_turn(client, user, {"message": "Tell me"}) as response,
    ):
        got = received(list(iter_frames(response)))

    assert got.text == "".join(SENT)
    assert_kept(Message.objects.get(role="assistant"), got, Message.Status.ERROR)
    assert len(gemini_provider_settings.requests) == 1


def test_regenerating_a_partial_reply_replaces_it(gemini_provider_settings, live_server_url, user):
    standin = gemini_provider_settings
    standin.enqueue(
        text_stream(SENT + HELD, thoughts=[THOUGHT], error_after=4),
        text_stream(["A whole ", "new answer."]),
    )
    chat = {"id": "chat-1", "messages": [{"id": "u1", "role": "user", "parts": []}]}
    chat["messages"][0]["parts"] = [{"type": "text", "text": "Tell me"}]
    with httpx.Client(base_url=live_server_url, timeout=10) as client:
        with start_turn(client, user, {**chat, "trigger": "submit-message"}) as response:
            failed = list(iter_frames(response))
        assert received(failed).error is not None
        with start_turn(
            client,
            user,
            {**chat, "trigger": "regenerate-message", "messageId": failed[0]["messageId"]},
        ) as response:
            again = received(list(iter_frames(response)))

    [reply] = Message.objects.filter(role="assistant")
    assert_kept(reply, again, Message.Status.COMPLETE)
    assert reply.content == "A whole new answer."
    # The model was asked the question again, not shown the void partial answer.
    assert [c["role"] for c in standin.requests[1].contents] == ["user"]


def test_resending_a_message_after_a_partial_reply_keeps_each_reply_once(
    gemini_provider_settings, live_server_url, user
):
    standin = gemini_provider_settings
    standin.enqueue(
        text_stream(SENT + HELD, thoughts=[THOUGHT], error_after=4),
        text_stream(["A whole ", "new answer."]),
        text_stream(["Next answer."]),
    )
    key = {"Idempotency-Key": "resend-1", "Authorization": bearer(user)}
    with httpx.Client(base_url=live_server_url, timeout=10, headers=key) as client:
        with client.stream("POST", "/api/chat/stream/", json={"message": "Q"}) as response:
            first = received(list(iter_frames(response)))
        conversation_id = str(Message.objects.get(role="assistant").conversation_id)
        body = {"message": "Q", "conversation_id": conversation_id}
        with client.stream("POST", "/api/chat/stream/", json=body) as response:
            second = received(list(iter_frames(response)))
        body = {"message": "Next", "conversation_id": conversation_id}
        client.post("/api/chat/stream/", json=body, headers={"Idempotency-Key": "next-1"})

    failed, retried, _ = Message.objects.filter(role="assistant").order_by("position")
    assert_kept(failed, first, Message.Status.ERROR)
    assert_kept(retried, second, Message.Status.COMPLETE)
    assert list(Message.objects.filter(role="user").values_list("content", flat=True)) == [
        "Q",
        "Next",
    ]
    # The model is asked the message again, not shown the void attempt; later turns see only
    # the answer that replaced it.
    retry, later = standin.requests_for("streamGenerateContent")[1:]
    assert [c["role"] for c in retry.contents] == ["user"]
    assert [(c["role"], c["parts"][0]["text"]) for c in later.contents] == [
        ("user", "Q"),
        ("model", "A whole new answer."),
        ("user", "Next"),
    ]


# --- the save itself fails ---


def refusing_saves(monkeypatch, times: int | None) -> list:
    """The reply's final save raises OperationalError `times` times (None: always); returns the
    list of attempts."""
    attempts: list = []
    save_reply = generation.save_reply

    async def flaky(**fields):
        attempts.append(fields["status"])
        if times is None or len(attempts) <= times:
            raise OperationalError("server closed the connection unexpectedly")
        await save_reply(**fields)

    monkeypatch.setattr(generation, "save_reply", flaky)
    return attempts


def test_a_final_save_the_database_refuses_is_retried_until_it_holds(
    gemini_provider_settings, live_server_url, user, monkeypatch
):
    attempts = refusing_saves(monkeypatch, times=2)
    gemini_provider_settings.enqueue(text_stream(SENT + HELD, thoughts=[THOUGHT]))
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as client,
        start_turn(client, user, {"message": "Tell me"}) as response,
    ):
        frames = list(iter_frames(response))

    got = received(frames)
    assert (got.text, frames[-2]["finishReason"]) == ("".join(SENT + HELD), "stop")
    assert_kept(Message.objects.get(role="assistant"), got, Message.Status.COMPLETE)
    assert attempts == [Message.Status.COMPLETE] * 3
    assert UsageRecord.objects.filter(endpoint="chat").count() == 1  # billed once


def test_when_the_database_refuses_every_save_the_last_checkpoint_is_what_stays(
    settings, gemini_provider_settings, live_server_url, user, monkeypatch
):
    settings.STREAM_CHECKPOINT_S = 0  # a checkpoint at every event
    settings.STREAM_STALE_S = 0.3  # how long the final save is retried
    attempts = refusing_saves(monkeypatch, times=None)
    gemini_provider_settings.enqueue(text_stream(SENT + HELD, thoughts=[THOUGHT]))
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as client,
        start_turn(client, user, {"message": "Tell me"}) as response,
    ):
        frames = list(iter_frames(response))

    got = received(frames)
    assert got.text == "".join(SENT + HELD)
    assert frames[-3:] == [
        {"type": "error", "errorText": "The reply failed."},
        {"type": "finish", "finishReason": "error"},
        DONE,
    ]
    assert len(attempts) > 1 and set(attempts) == {Message.Status.COMPLETE}
    reply = Message.objects.get(role="assistant")
    # Not saved, but checkpointed: the row holds what the client got, until the stale sweep
    # closes it (its worker no longer beats it).
    assert (reply.status, reply.content, reply.parts) == (
        Message.Status.STREAMING,
        got.text,
        got.parts(),
    )
    assert generation.sweep_stale_replies(timezone.now() + timedelta(seconds=1)) == 1
    assert_kept(Message.objects.get(id=reply.id), got, Message.Status.INTERRUPTED)
