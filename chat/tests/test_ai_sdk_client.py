"""The Vercel AI SDK (ai 6.x) itself, as `useChat` uses it, talks to a real server: it sends its own
request bodies and validates every chunk we stream against its schema."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from chat.models import Conversation, Message
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
    assert [c["parts"][0]["text"] for c in gemini_standin.requests[1].contents] == [
        "Hi there",
        "Hello from Gemini.",
        "And again",
    ]
