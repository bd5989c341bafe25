"""A model that fails mid-reply: the reply keeps exactly what its client received, with status
`error`, in the stored row, its parts and the message list.

Real HTTP (a uvicorn server in a thread), the real google-genai SDK, the Gemini stand-in failing
in each way a stream breaks after some text: an error event, a connection cut between events, a
chunked body cut in the middle of an event. For both stream protocols, a new and a continued
conversation, with the generation hub local (no REDIS_URL) and mirrored to Redis."""

from __future__ import annotations

import uuid

import httpx
import pytest

from chat.models import Conversation, Message
from conftest import bearer
from tests.gemini_standin import grounding_metadata, text_stream
from tests.require import required_redis_url
from tests.sse import iter_frames

from .streams import received

pytestmark = pytest.mark.django_db(transaction=True)

THOUGHT = "Weighing it up. "
CHUNKS = ["One. ", "Two. ", "Three. ", "Never sent."]
#: How the stream breaks after the thought and three text chunks.
FAILURES = {
    "error-event": {"error_after": 4},
    "connection-cut": {"drop_after": 4},
    "event-cut-in-half": {"truncate_after": 4},
}


@pytest.fixture(params=["local-hub", "redis-hub"])
def hub(request, settings):
    if request.param == "redis-hub":
        settings.REDIS_URL = required_redis_url("the generation hub mirrors to Redis")
        settings.GENERATION_KEY_PREFIX = f"partial-test-{uuid.uuid4().hex[:12]}"
    else:
        settings.REDIS_URL = None
    return request.param


@pytest.fixture
def http(live_server_url, user):
    with httpx.Client(
        base_url=live_server_url, timeout=10, headers={"Authorization": bearer(user)}
    ) as client:
        yield client


def post_turn(http: httpx.Client, body: dict, *, simple: bool) -> list:
    path = "/api/chat/stream/" + ("?protocol=simple" if simple else "")
    with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        return list(iter_frames(response))


def last_reply() -> Message:
    return Message.objects.filter(role="assistant").order_by("-created_at", "-position").first()


def listed(http: httpx.Client, reply: Message) -> dict:
    response = http.get(f"/api/chat/conversations/{reply.conversation_id}/messages/")
    assert response.status_code == 200
    [entry] = [m for m in response.json()["results"] if m["id"] == str(reply.id)]
    return entry


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("protocol", ["ui", "simple"])
@pytest.mark.parametrize("conversation", ["new", "continued"])
def test_a_model_failing_mid_reply_keeps_exactly_what_the_client_received(
    gemini_provider_settings, http, hub, failure, protocol, conversation
):
    standin = gemini_provider_settings
    simple = protocol == "simple"
    body: dict = {"message": "Tell me everything"}
    if conversation == "continued":
        standin.enqueue(text_stream(["An earlier answer."]))
        post_turn(http, {"message": "First question"}, simple=simple)
        body["conversation_id"] = str(Conversation.objects.get().id)
    standin.enqueue(text_stream(CHUNKS, thoughts=[THOUGHT], **FAILURES[failure]))

    got = received(post_turn(http, body, simple=simple), simple=simple)

    assert got.text == "One. Two. Three. "  # the failure came after some text
    assert got.error == "The model is temporarily unavailable. Please try again."
    reply = last_reply()
    assert (reply.status, reply.finish_reason) == (Message.Status.ERROR, "error")
    assert reply.content == got.text
    # The reasoning is stored too (the simple protocol does not send it).
    assert reply.parts == [
        {"type": "reasoning", "text": THOUGHT},
        {"type": "text", "text": got.text},
    ]
    if not simple:
        assert reply.parts == got.parts()
    entry = listed(http, reply)
    assert (entry["content"], entry["parts"], entry["status"]) == (
        got.text,
        reply.parts,
        "error",
    )
    assert [r.action for r in standin.requests][-1] == "streamGenerateContent"
    # Never retried (the continued conversation's first turn also had its title written).
    assert len(standin.requests_for("streamGenerateContent")) == (
        2 if conversation == "continued" else 1
    )


def test_sources_streamed_before_the_failure_are_kept(gemini_provider_settings, http, hub):
    gemini_provider_settings.enqueue(
        text_stream(
            ["Found it. ", "Here is why."],
            grounding=grounding_metadata(
                ("https://example.com/a", "Page A"), ("https://example.com/b", "Page B")
            ),
            finish=None,  # the sources came on the last chunk, and then the error
            error_after=2,
        )
    )

    got = received(post_turn(http, {"message": "Search it"}, simple=False))

    assert [s["url"] for s in got.sources] == ["https://example.com/a", "https://example.com/b"]
    assert got.error is not None
    reply = last_reply()
    assert reply.status == Message.Status.ERROR
    assert (reply.content, reply.parts) == (got.text, got.parts())
    assert listed(http, reply)["parts"] == got.parts()
