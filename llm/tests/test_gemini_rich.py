"""Rich turns on the Gemini backend: thought summaries, web search with its sources, attachments
inline or through the Files API. Asserted on the events the caller gets and on what reached the
stand-in's wire."""

from __future__ import annotations

import asyncio

import pytest

from llm import (
    ChatMessage,
    FilePart,
    ModelRequestRejected,
    ReasoningDelta,
    Source,
    StreamFinish,
    TextDelta,
    build_provider,
)
from llm.gemini import wire
from tests.fixtures_gemini import standin_llm_settings
from tests.gemini_standin import grounding_metadata, text_stream, thought_stream

MODEL = "gemini-2.5-flash"
HELLO = [ChatMessage("user", "Hello")]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n" + b"0123456789" * 300


def provider_on(standin, **options):
    return build_provider(standin_llm_settings(standin.base_url, fallback=None, **options))


async def collect(stream):
    return [event async for event in stream]


# --- thought summaries ---------------------------------------------------------------------------


async def test_thought_summaries_are_requested_and_streamed_as_reasoning_before_the_text(
    gemini_provider, gemini_standin
):
    gemini_standin.enqueue(thought_stream(["Weighing it up. ", "Done."], ["The ", "answer."]))

    events = await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert events[:4] == [
        ReasoningDelta("Weighing it up. "),
        ReasoningDelta("Done."),
        TextDelta("The "),
        TextDelta("answer."),
    ]
    assert isinstance(events[4], StreamFinish) and len(events) == 5
    [request] = gemini_standin.requests
    assert request.generation_config["thinkingConfig"] == {"includeThoughts": True}


async def test_a_thinking_budget_is_sent(gemini_standin):
    provider = provider_on(gemini_standin, thinking_budget=256)

    await collect(provider.stream_chat(HELLO, model=MODEL))

    config = gemini_standin.requests[0].generation_config
    assert config["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 256}


async def test_no_thinking_config_when_thoughts_are_off(gemini_standin):
    provider = provider_on(gemini_standin, include_thoughts=False)

    await collect(provider.stream_chat(HELLO, model=MODEL))

    assert "thinkingConfig" not in gemini_standin.requests[0].generation_config


async def test_agents_calls_do_not_ask_for_thoughts(gemini_provider, gemini_standin):
    await gemini_provider.generate_text("hi", model=MODEL)

    assert "generationConfig" not in gemini_standin.requests[0].body


# --- web search ----------------------------------------------------------------------------------


async def test_web_search_offers_google_search_and_yields_each_distinct_source_once(
    gemini_provider, gemini_standin
):
    grounding = grounding_metadata(
        ("https://a.example/tides", "a.example"),
        ("https://b.example/moon", "b.example"),
        ("https://a.example/tides", "a.example"),
    )
    gemini_standin.enqueue(text_stream(["Tides ", "follow the moon."], grounding=grounding))

    events = await collect(gemini_provider.stream_chat(HELLO, model=MODEL, web_search=True))

    assert [e for e in events if isinstance(e, Source)] == [
        Source("source-1", "https://a.example/tides", "a.example"),
        Source("source-2", "https://b.example/moon", "b.example"),
    ]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Tides follow the moon."
    assert isinstance(events[-1], StreamFinish)
    assert gemini_standin.requests[0].body["tools"] == [{"googleSearch": {}}]


async def test_without_web_search_no_tool_is_offered(gemini_provider, gemini_standin):
    await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert "tools" not in gemini_standin.requests[0].body


# --- attachments ---------------------------------------------------------------------------------


async def test_files_go_inline_before_the_text_in_every_turn_that_has_them(
    gemini_provider, gemini_standin
):
    history = [
        ChatMessage("user", "What is this?", files=(FilePart("image/png", PNG, "att-1"),)),
        ChatMessage("assistant", "A picture."),
        ChatMessage("user", "And this?", files=(FilePart("application/pdf", PDF, "att-2"),)),
    ]

    await collect(gemini_provider.stream_chat(history, model=MODEL))

    [request] = gemini_standin.requests
    assert request.inline_data == [("image/png", PNG), ("application/pdf", PDF)]
    assert request.file_data == []
    first, _, last = request.contents
    assert [list(p) for p in first["parts"]] == [["inlineData"], ["text"]]
    assert [list(p) for p in last["parts"]] == [["inlineData"], ["text"]]
    assert last["parts"][1]["text"] == "And this?"


async def test_a_file_sent_with_every_turn_is_encoded_once(gemini_standin, monkeypatch):
    """A continued conversation sends its files again each turn: their base64 is kept
    serialised, and every request still carries the exact bytes."""
    encoded = []
    inline_part = wire.inline_part
    monkeypatch.setattr(wire, "inline_part", lambda f: encoded.append(f.key) or inline_part(f))
    provider = provider_on(gemini_standin)
    picture = FilePart("image/png", PNG, "att-1")
    turn = [ChatMessage("user", "What is this?", files=(picture,))]

    for _ in range(3):
        await collect(provider.stream_chat(turn, model=MODEL))
        turn += [ChatMessage("assistant", "A picture."), ChatMessage("user", "More?")]

    assert encoded == ["att-1"]
    requests = gemini_standin.requests_for("streamGenerateContent")
    assert [r.inline_data for r in requests] == [[("image/png", PNG)]] * 3
    assert [len(r.contents) for r in requests] == [1, 3, 5]


async def test_a_lone_surrogate_in_a_text_still_sends_the_kept_file(gemini_standin):
    """orjson refuses a lone surrogate; the standard library's encoding then carries the kept
    (serialised) inline part as the same JSON."""
    provider = provider_on(gemini_standin)
    picture = FilePart("image/png", PNG, "att-1")
    await collect(provider.stream_chat([ChatMessage("user", "a", files=(picture,))], model=MODEL))
    odd = [ChatMessage("user", "b \udc00", files=(picture,))]

    await collect(provider.stream_chat(odd, model=MODEL))

    second = gemini_standin.requests_for("streamGenerateContent")[1]
    assert second.inline_data == [("image/png", PNG)]
    assert second.contents[0]["parts"][1]["text"] == "b \udc00"


def test_kept_inline_parts_stay_within_their_bytes():
    size = len(wire.inline_part(FilePart("image/png", PNG, "x")).json)
    parts = wire.InlineParts(max_bytes=4 * size)  # four files of this size
    files = [FilePart("image/png", PNG, f"att-{i}") for i in range(5)]
    kept = [parts(f) for f in files]

    assert parts(files[-1]) is kept[-1]  # kept: the same serialised part
    assert parts(files[0]) is not kept[0]  # the oldest went first
    assert parts._bytes <= parts.max_bytes
    assert len(parts._parts) == 4
    big = FilePart("application/pdf", PNG * 2, "att-big")  # over a quarter: not kept
    assert parts(big) is not parts(big)


async def test_over_the_inline_limit_the_largest_files_go_through_the_files_api(gemini_standin):
    provider = provider_on(gemini_standin, inline_max_bytes=2000)
    small = FilePart("image/png", PNG[:300], "att-small")
    big = FilePart("application/pdf", PDF, "att-big", "report.pdf")
    question = [ChatMessage("user", "Compare them", files=(small, big))]

    await collect(provider.stream_chat(question, model=MODEL))
    await collect(provider.stream_chat(question, model=MODEL))

    uploads = [r for r in gemini_standin.requests if r.action == "upload"]
    assert len(uploads) == 2  # start + finalize, once: the second turn reused the uri
    [uploaded] = gemini_standin.files.values()
    assert (uploaded.data, uploaded.mime_type, uploaded.display_name) == (
        PDF,
        "application/pdf",
        "report.pdf",
    )
    for request in gemini_standin.requests_for("streamGenerateContent"):
        assert request.inline_data == [("image/png", PNG[:300])]
        assert request.file_data == [{"mimeType": "application/pdf", "fileUri": uploaded.uri}]
        assert list(request.contents[0]["parts"][1]) == ["fileData"]  # files first, in order


async def test_an_upload_is_not_reused_once_gemini_is_about_to_delete_it(gemini_standin):
    gemini_standin.file_lifetime_s = 30 * 60  # within the hour the provider keeps in reserve
    provider = provider_on(gemini_standin, inline_max_bytes=100)
    question = [ChatMessage("user", "Read it", files=(FilePart("application/pdf", PDF, "f"),))]

    await collect(provider.stream_chat(question, model=MODEL))
    await collect(provider.stream_chat(question, model=MODEL))

    assert len(gemini_standin.files) == 2
    second = gemini_standin.requests_for("streamGenerateContent")[1]
    assert second.file_data[0]["fileUri"] == list(gemini_standin.files)[1]


async def test_concurrent_turns_with_the_same_file_upload_it_once(gemini_standin):
    provider = provider_on(gemini_standin, inline_max_bytes=100)
    question = [ChatMessage("user", "Read it", files=(FilePart("application/pdf", PDF, "f"),))]

    await asyncio.gather(*(collect(provider.stream_chat(question, model=MODEL)) for _ in range(3)))

    assert len(gemini_standin.files) == 1
    uris = {r.file_data[0]["fileUri"] for r in gemini_standin.requests_for("streamGenerateContent")}
    assert uris == set(gemini_standin.files)


async def test_a_file_still_processing_is_used_once_active(gemini_standin):
    gemini_standin.processing_polls = 2  # the upload's answer and one GET say PROCESSING
    provider = provider_on(gemini_standin, inline_max_bytes=100)
    provider.backend.transport.file_poll_initial_s = 0.01
    question = [ChatMessage("user", "Listen", files=(FilePart("audio/mpeg", PDF, "a"),))]

    events = await collect(provider.stream_chat(question, model=MODEL))

    assert isinstance(events[-1], StreamFinish)
    assert len(gemini_standin.requests_for("getFile")) == 2
    [request] = gemini_standin.requests_for("streamGenerateContent")
    assert request.status == 200 and request.file_data[0]["mimeType"] == "audio/mpeg"


async def test_a_file_that_never_becomes_active_is_a_rejected_request(gemini_standin):
    gemini_standin.processing_polls = 1000
    provider = provider_on(gemini_standin, inline_max_bytes=100)
    provider.backend.transport.file_poll_initial_s = 0.01
    provider.backend.transport.file_poll_limit_s = 0.05
    question = [ChatMessage("user", "Listen", files=(FilePart("audio/mpeg", PDF, "a"),))]

    with pytest.raises(ModelRequestRejected, match="PROCESSING"):
        await collect(provider.stream_chat(question, model=MODEL))

    assert gemini_standin.requests_for("streamGenerateContent") == []
