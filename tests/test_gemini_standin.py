"""The Gemini stand-in itself (the test double, not the product): its wire format read raw
without the SDK, its scripting, its Files API, and its load."""

from __future__ import annotations

import asyncio
import json
import time

import httpx2
import pytest

from llm import ModelRequestRejected
from llm.tests.schemas import Review
from tests.gemini_standin import (
    GeminiStandIn,
    error_reply,
    grounding_metadata,
    pacing,
    text_stream,
    thought_stream,
)

HEADERS = {"x-goog-api-key": "test-key", "content-type": "application/json"}
BODY = {"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}]}


def frames(raw: bytes) -> list[dict]:
    text = raw.decode()
    assert text.endswith("\r\n\r\n")
    events = text.split("\r\n\r\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    return [json.loads(e.removeprefix("data: ")) for e in events]


async def test_sse_stream_shape(gemini_standin):
    gemini_standin.enqueue(text_stream(["Hello ", "world", "!\u2028"]))
    url = f"{gemini_standin.base_url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"

    async with httpx2.AsyncClient() as client:
        response = await client.post(url, headers=HEADERS, json=BODY)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert b"\xe2\x80\xa8" not in response.content  # U+2028 escaped
    chunks = frames(response.content)
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == [
        "Hello ",
        "world",
        "!\u2028",
    ]
    assert ["finishReason" in c["candidates"][0] for c in chunks] == [False, False, True]
    assert len({c["responseId"] for c in chunks}) == 1
    assert {c["modelVersion"] for c in chunks} == {"gemini-2.5-flash"}
    outputs = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert outputs == sorted(outputs)
    [request] = gemini_standin.requests
    assert (request.api_version, request.action, request.last_user_text) == (
        "v1beta",
        "streamGenerateContent",
        "Hello there",
    )


async def test_errors_use_googles_shape(gemini_standin):
    gemini_standin.enqueue(error_reply(429, retry_delay="47s"))
    url = f"{gemini_standin.base_url}/v1/models/m:generateContent"

    async with httpx2.AsyncClient() as client:
        limited = await client.post(url, headers=HEADERS, json=BODY)
        anonymous = await client.post(url, json=BODY)

    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("application/json")
    error = limited.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["details"][-1]["retryDelay"] == "47s"
    assert anonymous.status_code == 403
    assert anonymous.json()["error"]["status"] == "PERMISSION_DENIED"


async def test_mid_stream_error_frame_has_error_first(gemini_standin):
    gemini_standin.enqueue(text_stream(["a", "b"], error_after=1))
    url = f"{gemini_standin.base_url}/v1/models/m:streamGenerateContent?alt=sse"

    async with httpx2.AsyncClient() as client:
        response = await client.post(url, headers=HEADERS, json=BODY)

    last = response.content.decode().split("\r\n\r\n")[-2]
    assert last.startswith('data: {"error":{"code":503,')


def test_wait_until_and_reset():
    with GeminiStandIn() as standin:
        standin.enqueue(text_stream(["x"]))
        response = httpx2.post(
            f"{standin.base_url}/v1/models/m:generateContent", headers=HEADERS, json=BODY
        )
        assert response.json()["candidates"][0]["content"]["parts"] == [{"text": "x"}]
        assert standin.wait_until(lambda: standin.requests[0].finished is not None)
        standin.reset()
        assert standin.requests == [] and standin.pending() == 0


async def test_a_thousand_concurrent_paced_streams(gemini_standin):
    """Raw asyncio connections (an HTTP client library would be the bottleneck here)."""
    gemini_standin.handler = pacing(first_delay_s=0.5, chunk_interval_s=0.05, n_chunks=10)
    body = json.dumps(BODY).encode()
    request = (
        "POST /v1/models/m:streamGenerateContent?alt=sse HTTP/1.1\r\nHost: standin\r\n"
        f"x-goog-api-key: k\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    peak = 0

    async def one() -> int:
        nonlocal peak
        reader, writer = await asyncio.open_connection("127.0.0.1", gemini_standin.port)
        writer.write(request)
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            more = await reader.read(65536)
            if not more:
                break
            data += more
            peak = max(peak, gemini_standin.in_flight)
        writer.close()
        return data.count(b"data: ")

    started = time.monotonic()
    counts = await asyncio.gather(*(one() for _ in range(1000)))
    elapsed = time.monotonic() - started

    assert counts == [10] * 1000
    assert peak >= 900  # they really were open at the same time
    assert elapsed < 10


async def test_thoughts_come_first_and_grounding_rides_on_the_last_chunk(gemini_standin):
    grounding = grounding_metadata(("https://a.example/", "A"), ("https://b.example/", "B"))
    gemini_standin.enqueue(thought_stream(["Thinking."], ["Answer ", "here."], grounding=grounding))
    url = f"{gemini_standin.base_url}/v1/models/m:streamGenerateContent?alt=sse"

    async with httpx2.AsyncClient() as client:
        response = await client.post(url, headers=HEADERS, json=BODY)

    chunks = frames(response.content)
    parts = [c["candidates"][0]["content"]["parts"][0] for c in chunks]
    assert parts == [{"text": "Thinking.", "thought": True}, {"text": "Answer "}, {"text": "here."}]
    assert [("groundingMetadata" in c["candidates"][0]) for c in chunks] == [False, False, True]
    web = [g["web"] for g in chunks[-1]["candidates"][0]["groundingMetadata"]["groundingChunks"]]
    assert web == [
        {"uri": "https://a.example/", "title": "A"},
        {"uri": "https://b.example/", "title": "B"},
    ]


async def test_inline_data_and_file_data_are_recorded(gemini_standin):
    async with httpx2.AsyncClient() as client:
        start = await client.post(
            f"{gemini_standin.base_url}/upload/v1beta/files",
            headers={
                **HEADERS,
                "x-goog-upload-protocol": "resumable",
                "x-goog-upload-command": "start",
                "x-goog-upload-header-content-length": "5",
                "x-goog-upload-header-content-type": "application/pdf",
            },
            json={"file": {"displayName": "doc.pdf"}},
        )
        final = await client.post(
            start.headers["x-goog-upload-url"],
            headers={"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"},
            content=b"%PDF-",
        )
        uri = final.json()["file"]["uri"]
        body = {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}},
                        {"inline_data": {"mime_type": "text/plain", "data": "aGk-"}},
                        {"fileData": {"mimeType": "application/pdf", "fileUri": uri}},
                        {"text": "What are these?"},
                    ],
                }
            ]
        }
        answered = await client.post(
            f"{gemini_standin.base_url}/v1/models/m:generateContent", headers=HEADERS, json=body
        )
        unknown = await client.post(
            f"{gemini_standin.base_url}/v1/models/m:generateContent",
            headers=HEADERS,
            json={"contents": [{"parts": [{"fileData": {"fileUri": "https://nowhere/f"}}]}]},
        )

    assert final.headers["x-goog-upload-status"] == "final"
    assert final.json()["file"]["state"] == "ACTIVE"
    assert gemini_standin.files[uri].data == b"%PDF-"
    assert gemini_standin.files[uri].display_name == "doc.pdf"
    assert answered.status_code == 200
    request = gemini_standin.requests_for("generateContent")[0]
    assert request.inline_data == [("image/png", b"\x89PNG"), ("text/plain", b"hi>")]
    assert request.file_data == [{"mimeType": "application/pdf", "fileUri": uri}]
    assert unknown.status_code == 400


async def test_a_broken_handler_is_a_readable_rejection(gemini_provider, gemini_standin):
    def handler(request):
        raise KeyError("oops")

    gemini_standin.handler = handler

    with pytest.raises(ModelRequestRejected, match="stand-in handler raised"):
        await gemini_provider.generate_text("hi", model="gemini-2.5-flash")


async def test_the_default_json_reply_fits_the_requested_schema(gemini_provider, gemini_standin):
    result = await gemini_provider.generate_object(Review, "Review this", model="gemini-2.5-flash")

    assert isinstance(result.object, Review)
    assert 1 <= result.object.findings[0].score <= 10
