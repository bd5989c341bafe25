"""Rich turns through the chat stream: attachments reach the model (and again in later history),
thought summaries stream as reasoning and are stored apart from the answer, web-search sources
stream and are stored only when search was offered."""

import base64
import json

import pytest
from django.test import AsyncClient

from attachments.models import Attachment
from chat.models import Conversation, Message
from tests.fixtures_gemini import STANDIN_TITLE
from tests.gemini_standin import grounding_metadata, text_stream

from .streams import parse_sse, read_body, stream

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("gemini_provider_settings"),
]

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00"
    b"\x00IEND\xaeB`\x82"
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def client():
    return AsyncClient()


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def use_chat(chat_id, message_id, text, files=(), **extra):
    parts = [{"type": "file", "mediaType": t, "url": u, "filename": n} for t, u, n in files]
    return {
        "id": chat_id,
        "trigger": "submit-message",
        "messages": [
            {"id": message_id, "role": "user", "parts": [*parts, {"type": "text", "text": text}]}
        ],
        **extra,
    }


def frame_types(frames):
    return [f["type"] if isinstance(f, dict) else f for f in frames]


async def test_an_image_and_a_pdf_reach_the_model_inline_and_again_in_the_next_turn(
    client, auth_header, gemini_standin
):
    gemini_standin.enqueue(text_stream(["A dot ", "and a PDF."]), text_stream(["Still there."]))
    files = [
        ("image/png", data_url("image/png", PNG), "dot.png"),
        ("application/pdf", data_url("application/pdf", PDF), "doc.pdf"),
    ]
    response, frames = await stream(
        client, auth_header, use_chat("chat-files", "m1", "What are these?", files)
    )
    assert response.status_code == 200, frames
    first = gemini_standin.requests_for("streamGenerateContent")[-1]
    assert first.inline_data == [("image/png", PNG), ("application/pdf", PDF)]
    assert first.last_user_text == "What are these?"

    response, _ = await stream(client, auth_header, use_chat("chat-files", "m2", "And now?"))
    assert response.status_code == 200
    second = gemini_standin.requests_for("streamGenerateContent")[-1]
    assert second.inline_data == [("image/png", PNG), ("application/pdf", PDF)]
    assert second.roles == ["user", "model", "user"]

    conversation = await Conversation.objects.aget()
    messages = await client.get(
        f"/api/chat/conversations/{conversation.id}/messages/", headers=auth_header
    )
    first_user = json.loads(messages.content)["results"][0]
    kinds = [(p["type"], p.get("mediaType"), p.get("filename")) for p in first_user["parts"]]
    assert kinds == [
        ("file", "image/png", "dot.png"),
        ("file", "application/pdf", "doc.pdf"),
        ("text", None, None),
    ]
    image = await client.get(first_user["parts"][0]["url"])
    assert image.status_code == 200
    body = (
        b"".join([c async for c in image.streaming_content]) if image.streaming else image.content
    )
    assert body == PNG


@pytest.mark.parametrize(
    "file",
    [
        ("application/pdf", data_url("application/pdf", PNG), "fake.pdf"),  # bytes are a PNG
        ("application/x-msdownload", data_url("application/x-msdownload", b"MZ\x90\x00"), "a.exe"),
        ("image/png", "https://example.com/cat.png", "cat.png"),  # never fetched
        ("image/png", data_url("image/png", PNG + b"\x00" * (2 * 1024 * 1024)), "big.png"),
    ],
)
async def test_a_bad_file_is_400_and_nothing_is_stored(
    client, auth_header, gemini_standin, settings, media_root, file
):
    settings.ATTACHMENT_MAX_BYTES = 1024 * 1024
    response, body = await stream(client, auth_header, use_chat("chat-bad", "m1", "Look", [file]))
    assert response.status_code == 400, body
    assert body["error"]["code"] == "invalid_request"
    assert await Conversation.objects.acount() == 0
    assert await Message.objects.acount() == 0
    assert await Attachment.objects.acount() == 0
    assert not any(p.is_file() for p in media_root.rglob("*"))
    assert gemini_standin.requests == []


async def test_thoughts_stream_as_reasoning_before_the_text_and_are_stored_apart(
    client, auth_header, gemini_standin
):
    gemini_standin.enqueue(text_stream(["Four."], thoughts=["Adding two ", "and two."]))
    response, frames = await stream(client, auth_header, {"message": "2+2?"})
    assert response.status_code == 200
    reply = await Message.objects.aget(role="assistant")
    reasoning_id, text_id = f"reasoning-{reply.id}", f"text-{reply.id}"
    assert frames[1:-2] == [
        {"type": "reasoning-start", "id": reasoning_id},
        {"type": "reasoning-delta", "id": reasoning_id, "delta": "Adding two "},
        {"type": "reasoning-delta", "id": reasoning_id, "delta": "and two."},
        {"type": "reasoning-end", "id": reasoning_id},
        {"type": "text-start", "id": text_id},
        {"type": "text-delta", "id": text_id, "delta": "Four."},
        {"type": "text-end", "id": text_id},
        {"type": "data-title", "data": {"title": STANDIN_TITLE}},
    ]
    assert reply.content == "Four."
    assert reply.parts == [
        {"type": "reasoning", "text": "Adding two and two."},
        {"type": "text", "text": "Four."},
    ]
    assert gemini_standin.requests[0].generation_config["thinkingConfig"] == {
        "includeThoughts": True
    }
    # Reasoning is never sent back to the model.
    gemini_standin.enqueue(text_stream(["Yes."]))
    conversation = await Conversation.objects.aget()
    await stream(client, auth_header, {"message": "Sure?", "conversation_id": str(conversation.id)})
    assert "Adding two" not in json.dumps(gemini_standin.requests[-1].body)


PAGES = [("https://example.org/a", "Page A"), ("https://example.org/b", "Page B")]


async def test_sources_stream_and_are_stored_when_search_is_offered(
    client, auth_header, gemini_standin
):
    gemini_standin.enqueue(text_stream(["Found it."], grounding=grounding_metadata(*PAGES)))
    response, frames = await stream(client, auth_header, {"message": "News?", "webSearch": True})
    assert response.status_code == 200
    sources = [f for f in frames if isinstance(f, dict) and f["type"] == "source-url"]
    assert [(s["url"], s["title"]) for s in sources] == PAGES
    assert {"googleSearch": {}} in gemini_standin.requests[0].body["tools"]
    reply = await Message.objects.aget(role="assistant")
    assert [(p["url"], p["title"]) for p in reply.parts if p["type"] == "source-url"] == PAGES


async def test_no_search_tool_unless_asked(client, auth_header, gemini_standin):
    gemini_standin.enqueue(text_stream(["Plain."]))
    await stream(client, auth_header, {"message": "News?"})
    assert "tools" not in gemini_standin.requests[0].body


async def test_simple_protocol_carries_text_only(client, auth_header, gemini_standin):
    gemini_standin.enqueue(
        text_stream(["Found."], thoughts=["Hmm."], grounding=grounding_metadata(*PAGES))
    )
    response = await client.post(
        "/api/chat/stream/?protocol=simple",
        json.dumps({"message": "News?", "webSearch": True}),
        content_type="application/json",
        headers=auth_header,
    )
    assert parse_sse(await read_body(response)) == [{"content": "Found."}, "[DONE]"]
