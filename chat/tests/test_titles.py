"""Titles written by the model after a conversation's first reply: the `data-title` frame before
`finish`, the stored title, the request the title model got, and the titles it never replaces."""

import json
import logging
import threading

import pytest
from django.test import AsyncClient

from chat.models import Conversation
from chat.titles import TITLE_INSTRUCTIONS, clean_title
from tests.fixtures_gemini import STANDIN_TITLE, TITLE_MODEL
from tests.gemini_standin import error_reply, json_reply, text_stream
from usage.models import UsageRecord

from .streams import parse_sse, read_body, stream

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client():
    return AsyncClient()


def title_frames(frames) -> list[dict]:
    return [f for f in frames if isinstance(f, dict) and f["type"] == "data-title"]


def kinds(frames) -> list[str]:
    """Frame types, a run of deltas counted once."""
    out: list[str] = []
    for frame in frames:
        kind = frame["type"] if isinstance(frame, dict) else frame
        if not (out and kind == out[-1] and kind.endswith("-delta")):
            out.append(kind)
    return out


async def patch_title(client, headers, conversation_id, title):
    response = await client.patch(
        f"/api/chat/conversations/{conversation_id}/",
        json.dumps({"title": title}),
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 200


# --- Offline provider ---------------------------------------------------------------------------


async def test_offline_first_turn_streams_a_deterministic_title_before_finish(client, auth_header):
    _response, frames = await stream(client, auth_header, {"message": "Plan three days in Lisbon"})

    assert kinds(frames) == [
        "start",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-end",
        "data-title",
        "finish",
        "[DONE]",
    ]
    title = "Offline title for: Plan three days in Lisbon"
    assert frames[-3] == {"type": "data-title", "data": {"title": title}}
    conversation = await Conversation.objects.aget()
    assert (conversation.title, conversation.title_source) == (title, "model")
    assert await UsageRecord.objects.filter(endpoint="chat:title", model="offline").aexists()

    # Same first message, same title: the offline provider is deterministic.
    _response, again = await stream(client, auth_header, {"message": "Plan three days in Lisbon"})
    assert title_frames(again) == [{"type": "data-title", "data": {"title": title}}]


async def test_offline_second_turn_has_no_title(client, auth_header):
    _response, frames = await stream(client, auth_header, {"message": "Plan three days in Lisbon"})
    conversation_id = frames[0]["messageMetadata"]["conversationId"]

    _response, second = await stream(
        client, auth_header, {"message": "And a fourth?", "conversation_id": conversation_id}
    )

    assert title_frames(second) == []
    assert second[-2]["type"] == "finish"
    conversation = await Conversation.objects.aget()
    assert conversation.title == "Offline title for: Plan three days in Lisbon"
    assert await UsageRecord.objects.filter(endpoint="chat:title").acount() == 1


# --- Gemini stand-in ----------------------------------------------------------------------------


@pytest.fixture
def standin(gemini_provider_settings):
    return gemini_provider_settings


async def test_the_title_request_uses_chat_title_model(client, auth_header, standin):
    standin.enqueue(text_stream(["Sure."]))
    standin.enqueue_for(TITLE_MODEL, json_reply({"title": '"Lisbon in three days."'}))

    _response, frames = await stream(client, auth_header, {"message": "Plan three days in Lisbon"})

    assert title_frames(frames) == [
        {"type": "data-title", "data": {"title": "Lisbon in three days"}}
    ]
    [title_request] = standin.requests_for("generateContent")
    assert title_request.model == TITLE_MODEL
    assert title_request.system_instruction == TITLE_INSTRUCTIONS
    assert title_request.last_user_text == "Plan three days in Lisbon"
    assert title_request.generation_config["responseMimeType"] == "application/json"
    conversation = await Conversation.objects.aget()
    assert (conversation.title, conversation.title_source) == ("Lisbon in three days", "model")
    record = await UsageRecord.objects.aget(endpoint="chat:title")
    assert record.model == TITLE_MODEL and record.total_tokens > 0


async def test_without_chat_title_model_the_fast_model_writes_titles(
    client, auth_header, standin, settings
):
    settings.CHAT_TITLE_MODEL = ""
    settings.LLM = {**settings.LLM, "MODELS": {**settings.LLM["MODELS"], "fast": "gemini-fast"}}
    standin.enqueue_for("gemini-2.5-flash", text_stream(["Sure."]))
    standin.enqueue_for("gemini-fast", json_reply({"title": "Fast title"}))

    _response, frames = await stream(client, auth_header, {"message": "Hi"})

    assert title_frames(frames) == [{"type": "data-title", "data": {"title": "Fast title"}}]
    assert [r.model for r in standin.requests] == ["gemini-2.5-flash", "gemini-fast"]


async def test_simple_protocol_gets_no_title_frame_but_the_title_is_stored(
    client, auth_header, standin
):
    standin.enqueue(text_stream(["Hel", "lo"]))

    _response, frames = await stream(
        client, auth_header, {"message": "Hi"}, query="?protocol=simple"
    )

    assert frames == [{"content": "Hel"}, {"content": "lo"}, "[DONE]"]
    assert (await Conversation.objects.aget()).title == STANDIN_TITLE


async def test_a_title_the_user_set_first_is_never_replaced(client, auth_header, standin):
    created = await client.post(
        "/api/chat/conversations/",
        json.dumps({"title": "My trip"}),
        content_type="application/json",
        headers=auth_header,
    )
    standin.enqueue(text_stream(["Sure."]))

    _response, frames = await stream(
        client, auth_header, {"message": "Hi", "conversation_id": created.json()["id"]}
    )

    assert title_frames(frames) == [] and frames[-2]["type"] == "finish"
    assert standin.requests_for("generateContent") == []  # not even asked
    conversation = await Conversation.objects.aget()
    assert (conversation.title, conversation.title_source) == ("My trip", "user")


async def test_a_rename_while_the_title_is_written_wins(client, auth_header, standin):
    gate = threading.Event()
    standin.enqueue(text_stream(["Sure."]))
    held = json_reply({"title": "Model title"})
    held.gate = gate  # the title model answers only once the user renamed the conversation
    standin.enqueue_for(TITLE_MODEL, held)
    response = await client.post(
        "/api/chat/stream/",
        json.dumps({"message": "Hi"}),
        content_type="application/json",
        headers={"Accept": "text/event-stream", **auth_header},
    )
    assert await standin.wait_for(lambda: bool(standin.requests_for("generateContent")))
    conversation = await Conversation.objects.aget()

    await patch_title(client, auth_header, conversation.id, "Renamed by me")
    gate.set()
    frames = parse_sse(await read_body(response))

    assert title_frames(frames) == []
    assert frames[-2]["type"] == "finish" and frames[-2]["finishReason"] == "stop"
    await conversation.arefresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Renamed by me", "user")
    # The call was made: its tokens are accounted all the same.
    assert await UsageRecord.objects.filter(endpoint="chat:title").acount() == 1


async def test_a_failed_title_call_costs_the_reply_nothing(client, auth_header, standin, caplog):
    standin.enqueue(text_stream(["Hel", "lo"]))
    standin.enqueue_for(TITLE_MODEL, error_reply(400))

    with caplog.at_level(logging.WARNING, logger="chat.titles"):
        _response, frames = await stream(client, auth_header, {"message": "Hi there"})

    assert title_frames(frames) == []
    assert kinds(frames)[-4:] == ["text-delta", "text-end", "finish", "[DONE]"]
    assert frames[-2]["finishReason"] == "stop"
    conversation = await Conversation.objects.aget()
    assert (conversation.title, conversation.title_source) == ("Hi there", "message")
    reply = await conversation.messages.aget(role="assistant")
    assert (reply.status, reply.content) == ("complete", "Hello")
    assert "No title for conversation" in caplog.text


async def test_a_title_that_takes_too_long_is_given_up(client, auth_header, standin, monkeypatch):
    monkeypatch.setattr("chat.titles.TITLE_TIMEOUT_S", 0.2)
    gate = threading.Event()  # never set before the reply ends: the title model never answers
    standin.enqueue(text_stream(["Sure."]))
    held = json_reply({"title": "Too late"})
    held.gate = gate
    standin.enqueue_for(TITLE_MODEL, held)
    try:
        _response, frames = await stream(client, auth_header, {"message": "Hi"})
    finally:
        gate.set()

    assert title_frames(frames) == [] and frames[-2]["finishReason"] == "stop"
    assert (await Conversation.objects.aget()).title_source == "message"


@pytest.mark.parametrize(
    "raw, title",
    [
        ("Lisbon in three days", "Lisbon in three days"),
        ('"Lisbon trip."', "Lisbon trip"),
        ("Title: **Lisbon**", "Lisbon"),
        ("# \u201cTrip to Porto\u201d\nSecond line", "Trip to Porto"),
        ('"A" and "B"', '"A" and "B"'),
        ("word " * 30, ("word " * 12).strip() + "\u2026"),
        ("  \n ", ""),
    ],
)
def test_titles_are_one_short_line_without_wrapping(raw, title):
    assert clean_title(raw) == title
