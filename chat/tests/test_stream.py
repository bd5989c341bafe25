"""The chat stream end to end: our view, the real google-genai SDK, the Gemini stand-in."""

import threading

import httpx
import pytest
from django.test import AsyncClient

from chat.models import Conversation, Message
from tests.fixtures_gemini import STANDIN_TITLE, TITLE_MODEL
from tests.gemini_standin import error_reply, text_stream
from usage.models import UsageRecord

from .streams import parse_sse, stream

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("gemini_provider_settings"),
]

USAGE = {"promptTokenCount": 8, "candidatesTokenCount": 2, "totalTokenCount": 10}


@pytest.fixture
def client():
    return AsyncClient()


async def test_ui_message_stream_frames_and_stored_messages(client, auth_header, gemini_standin):
    gemini_standin.enqueue(text_stream(["Hel", "lo"], usage=USAGE))

    response, frames = await stream(client, auth_header, {"message": "Hi there"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert response["x-vercel-ai-ui-message-stream"] == "v1"
    conversation = await Conversation.objects.aget()
    user_message, reply = [m async for m in conversation.messages.order_by("position")]
    text_id = f"text-{reply.id}"
    assert frames == [
        {
            "type": "start",
            "messageId": str(reply.id),
            "messageMetadata": {
                "conversationId": str(conversation.id),
                "userMessageId": str(user_message.id),
            },
        },
        {"type": "text-start", "id": text_id},
        {"type": "text-delta", "id": text_id, "delta": "Hel"},
        {"type": "text-delta", "id": text_id, "delta": "lo"},
        {"type": "text-end", "id": text_id},
        {"type": "data-title", "data": {"title": STANDIN_TITLE}},
        {
            "type": "finish",
            "finishReason": "stop",
            "messageMetadata": {"usage": {"inputTokens": 8, "outputTokens": 2, "totalTokens": 10}},
        },
        "[DONE]",
    ]
    assert (conversation.title, conversation.title_source) == (STANDIN_TITLE, "model")
    assert (user_message.role, user_message.content, user_message.status) == (
        "user",
        "Hi there",
        "complete",
    )
    assert (reply.role, reply.content, reply.status, reply.finish_reason, reply.model) == (
        "assistant",
        "Hello",
        "complete",
        "stop",
        "gemini-2.5-flash",
    )
    assert (reply.input_tokens, reply.output_tokens, reply.total_tokens) == (8, 2, 10)
    record = await UsageRecord.objects.aget(endpoint="chat")
    assert (record.model, record.total_tokens) == ("gemini-2.5-flash", 10)
    assert await UsageRecord.objects.filter(endpoint="chat:title", model=TITLE_MODEL).aexists()


async def test_simple_protocol_frames(client, auth_header, gemini_standin):
    gemini_standin.enqueue(text_stream(["Hel", "lo"], usage=USAGE))

    response, frames = await stream(
        client, auth_header, {"message": "Hi"}, query="?protocol=simple"
    )

    assert response.status_code == 200
    assert frames == [{"content": "Hel"}, {"content": "lo"}, "[DONE]"]
    reply = await Message.objects.aget(role="assistant")
    assert (reply.content, reply.status, reply.total_tokens) == ("Hello", "complete", 10)


async def test_three_turns_send_the_whole_saved_history(client, auth_header, gemini_standin):
    created = await client.post(
        "/api/chat/conversations/",
        {"title": "Trip", "system_prompt": "You are a travel agent."},
        content_type="application/json",
        headers=auth_header,
    )
    conversation_id = created.json()["id"]
    gemini_standin.enqueue(text_stream(["One."]), text_stream(["Two."]), text_stream(["Three."]))

    for text in ["first question", "second question", "third question"]:
        _response, frames = await stream(
            client, auth_header, {"message": text, "conversationId": conversation_id}
        )
        assert frames[-2]["type"] == "finish" and frames[-1] == "[DONE]"

    requests = gemini_standin.requests_for("streamGenerateContent")
    assert len(requests) == 3
    assert [r.model for r in requests] == ["gemini-2.5-flash"] * 3
    assert all(r.system_instruction == "You are a travel agent." for r in requests)
    assert requests[2].roles == ["user", "model", "user", "model", "user"]
    assert [c["parts"][0]["text"] for c in requests[2].contents] == [
        "first question",
        "One.",
        "second question",
        "Two.",
        "third question",
    ]
    assert requests[0].roles == ["user"] and requests[1].roles == ["user", "model", "user"]
    stored = [
        (m.role, m.content)
        async for m in Message.objects.filter(conversation_id=conversation_id).order_by("position")
    ]
    assert stored == [
        ("system", "You are a travel agent."),
        ("user", "first question"),
        ("assistant", "One."),
        ("user", "second question"),
        ("assistant", "Two."),
        ("user", "third question"),
        ("assistant", "Three."),
    ]


async def test_server_error_before_streaming_is_retried(client, auth_header, gemini_standin):
    gemini_standin.enqueue(error_reply(500), text_stream(["fine"]))

    response, frames = await stream(client, auth_header, {"message": "Hi"})

    assert response.status_code == 200
    assert [f["delta"] for f in frames if isinstance(f, dict) and f["type"] == "text-delta"] == [
        "fine"
    ]
    assert len(gemini_standin.requests_for("streamGenerateContent")) == 2
    assert (await Message.objects.aget(role="assistant")).status == "complete"


async def test_rate_limited_for_good_is_json_error_and_keeps_user_message(
    client, auth_header, gemini_standin
):
    gemini_standin.handler = lambda request: error_reply(429, retry_delay="30s")

    response, body = await stream(client, auth_header, {"message": "Keep me"})

    assert response.status_code == 503
    assert body["error"]["code"] == "model_rate_limited"
    assert "429" not in body["error"]["message"] and "quota" not in body["error"]["message"]
    assert response["Retry-After"] == "30"
    user_message = await Message.objects.aget(role="user")
    assert user_message.content == "Keep me"
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.content) == ("error", "")
    models = {r.model for r in gemini_standin.requests}
    assert models == {"gemini-2.5-flash", "gemini-2.5-flash-lite"}, "fallback model was tried"


async def test_error_mid_stream_sends_error_chunk_and_keeps_partial(
    client, auth_header, gemini_standin
):
    gemini_standin.enqueue(text_stream(["Hel", "lo"], error_after=1))

    response, frames = await stream(client, auth_header, {"message": "Hi"})

    assert response.status_code == 200
    reply = await Message.objects.aget(role="assistant")
    text_id = f"text-{reply.id}"
    assert frames[1:] == [
        {"type": "text-start", "id": text_id},
        {"type": "text-delta", "id": text_id, "delta": "Hel"},
        {"type": "text-end", "id": text_id},
        {"type": "error", "errorText": "The model is temporarily unavailable. Please try again."},
        {"type": "finish", "finishReason": "error"},
        "[DONE]",
    ]
    assert (reply.content, reply.status, reply.finish_reason) == ("Hel", "error", "error")
    assert (await Message.objects.aget(role="user")).content == "Hi"
    assert len(gemini_standin.requests) == 1, "nothing is retried after the first token"


async def test_error_mid_stream_simple_protocol(client, auth_header, gemini_standin):
    gemini_standin.enqueue(text_stream(["Hel", "lo"], error_after=1))
    _, frames = await stream(client, auth_header, {"message": "Hi"}, query="?protocol=simple")
    assert frames == [
        {"content": "Hel"},
        {"error": "The model is temporarily unavailable. Please try again."},
        "[DONE]",
    ]


# --- Bad requests are JSON errors before any stream, and store nothing -------------------------


@pytest.mark.parametrize(
    "body,field",
    [
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({}, "message"),
        ({"message": ["not", "text"]}, "message"),
        ({"message": {"a": 1}}, "message"),
        ({"message": "hi", "conversation_id": "not-a-uuid"}, "conversation_id"),
        ({"messages": "nope"}, "messages"),
        (
            {"id": "c1", "messages": [{"role": "user", "parts": [{"type": "text", "text": ""}]}]},
            "message",
        ),
    ],
)
async def test_invalid_bodies_are_400(client, auth_header, gemini_standin, body, field):
    response, payload = await stream(client, auth_header, body)
    assert response.status_code == 400
    assert payload["error"]["code"] == "invalid_request"
    assert field in payload["error"]["details"]
    assert await Message.objects.acount() == 0 and await Conversation.objects.acount() == 0
    assert gemini_standin.requests == []


async def test_malformed_json_is_400(client, auth_header):
    response, payload = await stream(client, auth_header, "{not json")
    assert response.status_code == 400
    assert payload["error"]["code"] == "malformed_request"


async def test_too_long_message_is_400(client, auth_header, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 10
    response, payload = await stream(client, auth_header, {"message": "x" * 11})
    assert response.status_code == 400
    assert "longer than 10" in payload["error"]["details"]["message"][0]
    assert await Message.objects.acount() == 0


async def test_unknown_conversation_is_404(client, auth_header):
    response, payload = await stream(
        client,
        auth_header,
        {"message": "hi", "conversation_id": "00000000-0000-0000-0000-000000000000"},
    )
    assert response.status_code == 404
    assert payload["error"]["code"] == "not_found"
    assert await Message.objects.acount() == 0


async def test_other_users_conversation_is_404_on_stream(
    client, auth_header, other_user, gemini_standin
):
    theirs = await Conversation.objects.acreate(user=other_user, title="secret")
    response, _payload = await stream(
        client, auth_header, {"message": "hi", "conversation_id": str(theirs.id)}
    )
    assert response.status_code == 404
    assert await Message.objects.acount() == 0
    assert gemini_standin.requests == []


async def test_no_token_is_401(client):
    response, payload = await stream(client, {}, {"message": "hi"})
    assert response.status_code == 401
    assert payload["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("change", ["deactivate", "delete"])
async def test_valid_token_of_a_deactivated_or_deleted_user_is_401(
    client, user, auth_header, gemini_standin, change
):
    """The stream authenticates from the token alone; start_turn refuses a user who is no longer
    active, as JWTAuthentication would, before anything is saved or sent to the model."""
    conversation = await Conversation.objects.acreate(user=user, title="mine")
    if change == "deactivate":
        user.is_active = False
        await user.asave(update_fields=["is_active"])
    else:
        await user.adelete()
    for body in ({"message": "hi"}, {"message": "hi", "conversation_id": str(conversation.id)}):
        response, payload = await stream(client, auth_header, body)
        assert response.status_code == 401
        assert payload["error"]["code"] == "authentication_failed"
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert await Message.objects.acount() == 0
    assert await Conversation.objects.exclude(pk=conversation.pk).acount() == 0
    assert gemini_standin.requests == []


# --- useChat bodies, resends ------------------------------------------------------------------


def ui_message(message_id, text, role="user"):
    return {"id": message_id, "role": role, "parts": [{"type": "text", "text": text}]}


async def test_use_chat_client_id_creates_then_continues_conversation(
    client, auth_header, gemini_standin
):
    gemini_standin.enqueue(text_stream(["A1"]), text_stream(["A2"]))
    first = {"id": "Xy7chat", "messages": [ui_message("u1", "Q1")], "trigger": "submit-message"}
    _, frames = await stream(client, auth_header, first)
    conversation_id = frames[0]["messageMetadata"]["conversationId"]

    second = {
        "id": "Xy7chat",
        "messages": [
            ui_message("u1", "Q1"),
            ui_message(frames[0]["messageId"], "A1", "assistant"),
            ui_message("u2", "Q2"),
        ],
        "trigger": "submit-message",
    }
    _, frames2 = await stream(client, auth_header, second)

    assert frames2[0]["messageMetadata"]["conversationId"] == conversation_id
    conversation = await Conversation.objects.aget()
    assert conversation.client_chat_id == "Xy7chat"
    second_request = gemini_standin.requests_for("streamGenerateContent")[1]
    assert [c["parts"][0]["text"] for c in second_request.contents] == [
        "Q1",
        "A1",
        "Q2",
    ]


async def test_use_chat_earlier_messages_are_not_validated_only_the_last_users(
    client, auth_header, gemini_standin
):
    """useChat sends the whole conversation each turn: the server reads its last user message
    only, so earlier messages with parts it does not know (tool calls, data parts with objects)
    do not make the turn a 400, and what is stored is that last message."""
    gemini_standin.enqueue(text_stream(["ok"]))
    odd = {
        "id": "a0",
        "role": "assistant",
        "parts": [
            {"type": "tool-weather", "toolCallId": "t1", "input": {"city": "Oslo"}, "state": 3},
            {"type": "data-x", "data": [1, 2]},
            {"type": "text", "text": None, "url": 7},
        ],
    }
    body = {
        "id": "chat-odd",
        "messages": [ui_message("u0", "Q0"), odd, ui_message("u1", "Q1")],
        "trigger": "submit-message",
    }
    response, frames = await stream(client, auth_header, body)

    assert response.status_code == 200
    assert frames[-1] == "[DONE]"
    user_message = await Message.objects.aget(role="user")
    assert (user_message.content, user_message.client_message_id) == ("Q1", "u1")


@pytest.mark.parametrize(
    "messages, errors",
    [
        # the last user message is validated whole; its error keeps its index
        (
            [ui_message("u0", "Q0"), {"role": "user", "parts": [{"type": 3}]}],
            {"1": {"parts": {"0": {"type": ["Must be a string."]}}}},
        ),
        # anything that is not a message with a known role: DRF's validation of the whole list
        (
            [{"role": "bot"}, ui_message("u1", "Q1")],
            {"0": {"role": ['"bot" is not a valid choice.']}},
        ),
        (
            [ui_message("u0", "Q0"), "hello"],
            {"1": {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}},
        ),
    ],
)
async def test_use_chat_messages_errors_name_the_message(
    client, auth_header, gemini_standin, messages, errors
):
    body = {"id": "chat-bad", "messages": messages, "trigger": "submit-message"}
    response, payload = await stream(client, auth_header, body)

    assert response.status_code == 400
    assert payload["error"]["details"]["messages"] == errors
    assert await Message.objects.acount() == 0
    assert gemini_standin.requests == []


async def test_resent_use_chat_message_is_not_stored_twice(client, auth_header, gemini_standin):
    gemini_standin.enqueue(text_stream(["Only once"]))
    body = {"id": "chat-1", "messages": [ui_message("u1", "Q1")], "trigger": "submit-message"}
    _, frames = await stream(client, auth_header, body)
    _, again = await stream(client, auth_header, body)

    assert await Message.objects.filter(role="user").acount() == 1
    assert await Message.objects.filter(role="assistant").acount() == 1
    assert [r.model for r in gemini_standin.requests] == [
        "gemini-2.5-flash",
        TITLE_MODEL,
    ], "the stored reply is streamed back, not regenerated (nor titled again)"
    assert again[0]["messageId"] == frames[0]["messageId"]
    assert [f["delta"] for f in again if isinstance(f, dict) and f["type"] == "text-delta"] == [
        "Only once"
    ]


async def test_idempotency_key_resend_after_failure_generates_missing_reply(
    client, auth_header, gemini_standin
):
    gemini_standin.enqueue(text_stream(["par"], error_after=1), text_stream(["full reply"]))
    key = {"Idempotency-Key": "k-123"}
    await stream(client, auth_header, {"message": "Q"}, extra_headers=key)
    conversation = await Conversation.objects.aget()
    _, frames = await stream(
        client,
        auth_header,
        {"message": "Q", "conversation_id": str(conversation.id)},
        extra_headers=key,
    )

    assert await Message.objects.filter(role="user").acount() == 1
    assert frames[-2]["finishReason"] == "stop"
    statuses = [
        (m.content, m.status)
        async for m in Message.objects.filter(role="assistant").order_by("position")
    ]
    assert statuses == [("par", "error"), ("full reply", "complete")]


async def test_regenerate_replaces_last_reply(client, auth_header, gemini_standin):
    gemini_standin.enqueue(text_stream(["first answer"]), text_stream(["second answer"]))
    _, frames = await stream(client, auth_header, {"message": "Q"})
    conversation_id = frames[0]["messageMetadata"]["conversationId"]
    user_message_id = frames[0]["messageMetadata"]["userMessageId"]

    body = {
        "id": conversation_id,
        "messages": [ui_message(user_message_id, "Q")],
        "trigger": "regenerate-message",
        "messageId": frames[0]["messageId"],
    }
    _, frames2 = await stream(client, auth_header, body)

    assert frames2[-2]["finishReason"] == "stop"
    replies = [m.content async for m in Message.objects.filter(role="assistant")]
    assert replies == ["second answer"]
    assert await Message.objects.filter(role="user").acount() == 1
    assert gemini_standin.requests_for("streamGenerateContent")[1].roles == ["user"]


# --- A real server: nothing buffers the stream ------------------------------------------------


def test_first_text_arrives_before_the_model_finishes(
    live_server_url, user, gemini_standin, gemini_provider_settings
):
    from conftest import bearer

    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["first ", "second ", "third"], gate=gate))
    received = b""
    with (
        httpx.Client(base_url=live_server_url, timeout=10) as http,
        http.stream(
            "POST",
            "/api/chat/stream/",
            json={"message": "Hi"},
            headers={"Authorization": bearer(user)},
        ) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_raw()
        while b'"delta":"first "' not in received:
            received += next(chunks)
        # The client holds the first words while the model has not finished its reply.
        assert not gate.is_set()
        assert gemini_standin.requests[0].finished is None
        gate.set()
        for chunk in chunks:
            received += chunk
    frames = parse_sse(received)
    deltas = [f["delta"] for f in frames if isinstance(f, dict) and f["type"] == "text-delta"]
    assert deltas == ["first ", "second ", "third"]
    assert Message.objects.get(role="assistant").content == "first second third"


# --- Context window ---------------------------------------------------------------------------


async def test_history_over_budget_is_folded_into_a_stored_summary(
    client, auth_header, user, gemini_standin, settings
):
    from llm import estimate_tokens
    from tests.gemini_standin import text_reply

    settings.CHAT_HISTORY_TOKEN_BUDGET = 400
    conversation = await Conversation.objects.acreate(user=user, title="Long")
    rows = [("system", "Be brief.")] + [
        ("user" if i % 2 == 0 else "assistant", f"turn {i} " + "lorem ipsum " * 40)
        for i in range(10)
    ]
    await Message.objects.abulk_create(
        Message(conversation=conversation, position=i, role=role, content=content)
        for i, (role, content) in enumerate(rows)
    )
    conversation.next_position = len(rows)
    await conversation.asave()
    gemini_standin.enqueue(text_reply("SUMMARY: ten turns about lorem ipsum."), text_stream(["ok"]))

    _response, frames = await stream(
        client, auth_header, {"message": "latest question", "conversation_id": str(conversation.id)}
    )

    assert frames[-2]["finishReason"] == "stop"
    summary_request, chat_request = gemini_standin.requests
    assert summary_request.action == "generateContent"
    assert "turn 0 lorem" in summary_request.all_text()
    assert chat_request.action == "streamGenerateContent"
    assert "SUMMARY: ten turns about lorem ipsum." in chat_request.system_instruction
    assert "Be brief." in chat_request.system_instruction
    sent = [p["text"] for c in chat_request.contents for p in c["parts"]]
    assert sent[-1] == "latest question"
    assert not any(text.startswith("turn 0 ") for text in sent), "oldest turns were folded"
    assert (
        sum(estimate_tokens(t) for t in sent) + estimate_tokens(chat_request.system_instruction)
        <= 400
    )
    await conversation.arefresh_from_db()
    assert conversation.summary == "SUMMARY: ten turns about lorem ipsum."
    assert conversation.summarized_through > 1
    assert await UsageRecord.objects.filter(endpoint="chat:summary").aexists()

    # The next turn starts from the summary: no new summary, folded turns not sent again.
    gemini_standin.enqueue(text_stream(["again"]))
    await stream(
        client, auth_header, {"message": "one more", "conversation_id": str(conversation.id)}
    )
    next_request = gemini_standin.requests[-1]
    assert len(gemini_standin.requests) == 3 and next_request.action == "streamGenerateContent"
    assert "SUMMARY: ten turns about lorem ipsum." in next_request.system_instruction
    sent = [p["text"] for c in next_request.contents for p in c["parts"]]
    assert sent[-3:] == ["latest question", "ok", "one more"]
    assert not any(text.startswith("turn 0 ") for text in sent)
