"""The Vercel AI SDK (ai 6.x) itself, as `useChat` uses it, talks to a real server: it sends its own
request bodies and validates every chunk we stream against its schema."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from chat.models import Conversation, Message
from tests.fixtures_gemini import STANDIN_TITLE
from tests.gemini_standin import text_stream
from tests.require import require

SDK_DIR = Path(__file__).resolve().parents[2] / "tests" / "ai_sdk"

pytestmark = pytest.mark.django_db(transaction=True)


def test_ai_sdk_client_reads_our_stream_and_continues_the_chat(
    live_server_url, user, gemini_standin, gemini_provider_settings
):
    from conftest import bearer

    require(
        shutil.which("node") is not None and (SDK_DIR / "node_modules" / "ai").exists(),
        "needs Node.js and the AI SDK: run `npm ci --prefix tests/ai_sdk`",
    )
    gemini_standin.enqueue(text_stream(["Hello ", "from Gemini."]), text_stream(["Second."]))
    token = bearer(user).removeprefix("Bearer ")
    result = subprocess.run(
        [
            "node",
            "use_chat_client.mjs",
            f"{live_server_url}/api/chat/stream/",
            token,
            "sdk-chat-1",
            "Hi there",
            "And again",
        ],
        cwd=SDK_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["errors"] == []
    _, reply1, _, reply2 = output["messages"]
    assert reply1["role"] == "assistant"
    assert [p["text"] for p in reply1["parts"] if p["type"] == "text"] == ["Hello from Gemini."]
    assert [p["text"] for p in reply2["parts"] if p["type"] == "text"] == ["Second."]
    # The first reply's title (a data part the SDK validated and kept); none after the second.
    assert [p for p in reply1["parts"] if p["type"].startswith("data-")] == [
        {"type": "data-title", "data": {"title": STANDIN_TITLE}}
    ]
    assert not [p for p in reply2["parts"] if p["type"].startswith("data-")]

    conversation = Conversation.objects.get()
    assert conversation.client_chat_id == "sdk-chat-1"
    assert reply1["id"] == str(
        Message.objects.get(conversation=conversation, content="Hello from Gemini.").id
    )
    assert reply1["metadata"]["conversationId"] == str(conversation.id)
    assert list(conversation.messages.values_list("role", "content")) == [
        ("user", "Hi there"),
        ("assistant", "Hello from Gemini."),
        ("user", "And again"),
        ("assistant", "Second."),
    ]
    second = gemini_standin.requests_for("streamGenerateContent")[1]
    assert [c["parts"][0]["text"] for c in second.contents] == [
        "Hi there",
        "Hello from Gemini.",
        "And again",
    ]


def test_ai_sdk_client_validates_reasoning_text_and_sources(
    live_server_url, user, gemini_standin, gemini_provider_settings
):
    """A reply with a thought summary, text and web-search sources: every chunk passes the AI
    SDK's schema, and its assembled UIMessage holds them as parts, as the database does."""
    import os

    from conftest import bearer
    from tests.gemini_standin import grounding_metadata

    require(
        shutil.which("node") is not None and (SDK_DIR / "node_modules" / "ai").exists(),
        "needs Node.js and the AI SDK: run `npm ci --prefix tests/ai_sdk`",
    )
    pages = [("https://example.org/a", "Page A"), ("https://example.org/b", "Page B")]
    gemini_standin.enqueue(
        text_stream(
            ["Found ", "two pages."],
            thoughts=["Searching ", "the web."],
            grounding=grounding_metadata(*pages),
        )
    )
    result = subprocess.run(
        [
            "node",
            "use_chat_client.mjs",
            f"{live_server_url}/api/chat/stream",
            bearer(user).removeprefix("Bearer "),
            "sdk-rich-1",
            "What is new?",
        ],
        cwd=SDK_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "EXTRA_BODY": json.dumps({"webSearch": True})},
    )
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["errors"] == []
    reply = output["messages"][1]
    kinds = [part["type"] for part in reply["parts"] if part["type"] != "step-start"]
    assert kinds == ["reasoning", "text", "source-url", "source-url", "data-title"]
    by_type = {part["type"]: part for part in reply["parts"]}
    assert by_type["reasoning"]["text"] == "Searching the web."
    assert by_type["text"]["text"] == "Found two pages."
    assert [(p["url"], p["title"]) for p in reply["parts"] if p["type"] == "source-url"] == pages
    stored = Message.objects.get(role="assistant")
    assert [p["type"] for p in stored.parts] == ["reasoning", "text", "source-url", "source-url"]
    assert by_type["data-title"]["data"] == {"title": STANDIN_TITLE}
    assert Conversation.objects.get().title == STANDIN_TITLE
    assert {"googleSearch": {}} in gemini_standin.requests[0].body["tools"]
