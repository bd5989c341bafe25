"""The Gemini transport: the SDK's private API client surface we rely on, aiohttp underneath with
our connection limit, request counting, response closing and timeouts, and no pydantic response
built per streamed chunk."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import threading

import aiohttp
import pytest
from google import genai
from google.genai import _api_client, types

from llm import ChatMessage, ModelUnavailable, TextDelta, build_provider
from llm.gemini.transport import shared_ssl_context
from tests.fixtures_gemini import standin_llm_settings
from tests.gemini_standin import error_reply, text_reply, text_stream

MODEL = "gemini-2.5-flash"
HELLO = [ChatMessage("user", "Hello")]
SDK_SHAPE = (
    "google-genai's private API client changed shape: llm/gemini/transport.py calls "
    "`api_client._build_request(method, path, request_dict, http_options)`, sets the request's "
    "`.data` to bytes, awaits `api_client._async_request(http_request, http_options, stream=True)` "
    "and reads the SSE body from the aiohttp response in the result's `response_stream` (raw JSON "
    "lines through `_RawJsonLineBuffer().add_line()/.flush()`); with `stream=False` it reads the "
    "answer's text as `response_stream[0]`. Re-check "
    "transport.py against the installed SDK before changing the google-genai pin in "
    "requirements.txt."
)


def provider_on(standin, **options):
    return build_provider(standin_llm_settings(standin.base_url, fallback=None, **options))


async def collect(stream):
    return [event async for event in stream]


# --- the SDK surface ------------------------------------------------------------------------------


def test_the_api_client_methods_we_call_keep_their_signature():
    client = _api_client.BaseApiClient
    expected = {
        "_build_request": ["self", "http_method", "path", "request_dict", "http_options"],
        "_async_request": ["self", "http_request", "http_options", "stream"],
    }
    for name, parameters in expected.items():
        method = getattr(client, name, None)
        assert method is not None, f"{SDK_SHAPE} (missing: BaseApiClient.{name})"
        assert list(inspect.signature(method).parameters) == parameters, SDK_SHAPE
    buffer = _api_client._RawJsonLineBuffer()
    assert [buffer.add_line('{"error": {'), buffer.add_line('"code": 500}}')] == [
        None,
        '{"error": {"code": 500}}',
    ], SDK_SHAPE
    assert buffer.flush() == "", SDK_SHAPE
    assert "data" in inspect.signature(_api_client.HttpRequest).parameters, SDK_SHAPE
    assert "aiohttp_client" in types.HttpOptions.model_fields, SDK_SHAPE


async def test_a_streamed_request_sends_bytes_and_yields_one_json_text_per_event(gemini_standin):
    gemini_standin.enqueue(text_stream(["a", "b"]))
    client = genai.Client(api_key="k", http_options={"base_url": gemini_standin.base_url})
    api_client = client.aio._api_client
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}

    request = api_client._build_request(
        "post", f"models/{MODEL}:streamGenerateContent?alt=sse", dict(body), None
    )
    request.data = json.dumps(body).encode()
    response = await api_client._async_request(request, None, stream=True)
    assert isinstance(response.response_stream, aiohttp.ClientResponse), SDK_SHAPE
    sse = (await response.response_stream.read()).decode()
    events = [json.loads(line[6:]) for line in sse.splitlines() if line[:6] == "data: "]

    assert [e["candidates"][0]["content"]["parts"][0]["text"] for e in events] == ["a", "b"], (
        SDK_SHAPE
    )
    assert gemini_standin.requests[0].body == body, SDK_SHAPE
    await client.aio.aclose()


async def test_a_single_request_sends_bytes_and_reads_the_answer_text(gemini_standin):
    gemini_standin.enqueue(text_reply("ok"))
    client = genai.Client(api_key="k", http_options={"base_url": gemini_standin.base_url})
    api_client = client.aio._api_client
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}

    request = api_client._build_request("post", f"models/{MODEL}:generateContent", dict(body), None)
    request.data = json.dumps(body).encode()
    response = await api_client._async_request(request, None, stream=False)

    answer = json.loads(response.response_stream[0])
    assert answer["candidates"][0]["content"]["parts"][0]["text"] == "ok", SDK_SHAPE
    assert gemini_standin.requests[0].body == body, SDK_SHAPE
    await client.aio.aclose()


# --- no pydantic response per chunk ------------------------------------------------------------


@pytest.fixture
def responses_built(monkeypatch):
    """Counts GenerateContentResponse objects the SDK builds (the real constructors still run)."""
    count = {"n": 0}
    cls = types.GenerateContentResponse
    from_response = cls._from_response.__func__
    init = cls.__init__

    def counting_from_response(klass, *args, **kwargs):
        count["n"] += 1
        return from_response(klass, *args, **kwargs)

    def counting_init(self, *args, **kwargs):
        count["n"] += 1
        init(self, *args, **kwargs)

    monkeypatch.setattr(cls, "_from_response", classmethod(counting_from_response))
    monkeypatch.setattr(cls, "__init__", counting_init)
    return count


async def test_the_chat_stream_builds_no_sdk_response_per_chunk(
    gemini_provider, gemini_standin, responses_built
):
    gemini_standin.enqueue(text_stream([f"w{i} " for i in range(20)]))

    events = await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert len([e for e in events if isinstance(e, TextDelta)]) == 20
    assert responses_built["n"] == 0


async def test_the_counter_sees_the_sdks_own_streaming_path(gemini_standin, responses_built):
    """The guard above can fail: the SDK's generate_content_stream builds one per chunk."""
    gemini_standin.enqueue(text_stream([f"w{i} " for i in range(20)]))
    client = genai.Client(api_key="k", http_options={"base_url": gemini_standin.base_url})

    async for _chunk in await client.aio.models.generate_content_stream(model=MODEL, contents="hi"):
        pass

    assert responses_built["n"] >= 20
    await client.aio.aclose()


@pytest.fixture
def json_work(monkeypatch):
    """Counts what the SDK's own per-event path does: the standard library's json.dumps/loads
    (it parses each event, then dumps it again) and its SdkHttpResponse wrapper (pydantic)."""
    count = {"dumps": 0, "loads": 0, "wrappers": 0}
    dumps, loads = _api_client.json.dumps, _api_client.json.loads
    wrapper_init = types.HttpResponse.__init__

    def counting(name, fn):
        def call(*args, **kwargs):  # the json module is shared: count the SDK's calls only
            if sys._getframe(1).f_globals.get("__name__") == _api_client.__name__:
                count[name] += 1
            return fn(*args, **kwargs)

        return call

    def counting_wrapper(self, *args, **kwargs):
        count["wrappers"] += 1
        wrapper_init(self, *args, **kwargs)

    monkeypatch.setattr(_api_client.json, "dumps", counting("dumps", dumps))
    monkeypatch.setattr(_api_client.json, "loads", counting("loads", loads))
    monkeypatch.setattr(types.HttpResponse, "__init__", counting_wrapper)
    return count


async def test_each_streamed_event_is_parsed_once_and_never_dumped_again(
    gemini_provider, gemini_standin, json_work
):
    """One orjson parse per event in our transport; the request body is dumped by orjson too:
    the SDK's json module and per-event wrapper are not used on the stream at all."""
    gemini_standin.enqueue(text_stream([f"w{i} " for i in range(20)]))

    events = await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert len([e for e in events if isinstance(e, TextDelta)]) == 20
    assert json_work == {"dumps": 0, "loads": 0, "wrappers": 0}


async def test_the_json_counter_sees_the_sdks_own_per_event_work(gemini_standin, json_work):
    """The guard above can fail: the SDK's async_request_streamed does all three per event."""
    gemini_standin.enqueue(text_stream([f"w{i} " for i in range(20)]))
    client = genai.Client(api_key="k", http_options={"base_url": gemini_standin.base_url})
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}

    items = await client.aio._api_client.async_request_streamed(
        "post", f"models/{MODEL}:streamGenerateContent?alt=sse", body, None
    )
    async for _item in items:
        pass

    assert json_work["dumps"] >= 20 and json_work["loads"] >= 20 and json_work["wrappers"] >= 20
    await client.aio.aclose()


# --- aiohttp, the way we set it up -------------------------------------------------------------


async def test_aiohttp_is_the_transport_with_our_limit_and_ssl_context(gemini_standin):
    provider = provider_on(gemini_standin, max_connections=7)
    other = provider_on(gemini_standin)

    await collect(provider.stream_chat(HELLO, model=MODEL))

    transport = provider.backend.transport
    api_client = transport.client()._api_client
    assert api_client._use_aiohttp()
    session = transport.session()
    assert isinstance(session, aiohttp.ClientSession) and not session.closed
    assert session.connector.limit == 7
    assert api_client._async_client_session_request_args["ssl"] is shared_ssl_context()
    other_client = other.backend.transport.client()._api_client
    assert other_client._async_client_session_request_args["ssl"] is shared_ssl_context()
    await provider.aclose()
    assert session.closed


async def test_streams_beyond_the_connection_limit_wait_for_a_free_connection(gemini_standin):
    provider = provider_on(gemini_standin, max_connections=2)
    gates = [threading.Event() for _ in range(3)]
    gemini_standin.enqueue(*(text_stream(["first ", "rest"], gate=g) for g in gates))
    streams = [provider.stream_chat(HELLO, model=MODEL) for _ in range(3)]

    firsts = [asyncio.ensure_future(anext(s)) for s in streams]
    two_open = await gemini_standin.wait_for(
        lambda: sum(r.chunks_sent == 1 for r in gemini_standin.requests) == 2
    )
    gates[0].set()
    gates[1].set()
    gates[2].set()
    await asyncio.gather(*firsts)
    rest = [await collect(s) for s in streams]

    assert two_open
    first, second, third = gemini_standin.requests
    assert third.started >= min(first.finished, second.finished)
    assert all(TextDelta("rest") in events for events in rest)


async def test_requests_are_counted_per_call_retries_included(
    gemini_provider, gemini_standin, call_logs
):
    gemini_standin.enqueue(error_reply(503), error_reply(503), text_stream(["ok"]))

    await collect(gemini_provider.stream_chat(HELLO, model=MODEL))
    await gemini_provider.generate_text("again", model=MODEL)

    assert [(r.operation, r.attempts) for r in call_logs()] == [
        ("stream_chat", 3),
        ("generate_text", 1),
    ]


async def test_a_stream_may_outlast_the_timeout_while_each_read_is_within_it(gemini_standin):
    provider = provider_on(gemini_standin, timeout_s=0.3, max_retries=0)
    gemini_standin.enqueue(text_stream([f"{i} " for i in range(6)], between_delay=0.1))

    events = await collect(provider.stream_chat(HELLO, model=MODEL))

    assert len([e for e in events if isinstance(e, TextDelta)]) == 6
    request = gemini_standin.requests[0]
    assert request.finished - request.started > 0.3


async def test_a_read_that_stalls_past_the_timeout_is_model_unavailable(gemini_standin):
    provider = provider_on(gemini_standin, timeout_s=0.2, max_retries=0)
    gemini_standin.enqueue(text_stream(["one ", "two"], between_delay=1.0))
    received = []

    with pytest.raises(ModelUnavailable):
        async for event in provider.stream_chat(HELLO, model=MODEL):
            received.append(event)

    assert received == [TextDelta("one ")]
    assert await gemini_standin.wait_for(lambda: gemini_standin.requests[0].disconnected)


# --- splitting the SSE body -----------------------------------------------------------------------


class FakeBody:
    """An aiohttp response whose body arrives in the given pieces."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = list(pieces)
        self.content = self
        self.headers: dict[str, str] = {}
        self.released = self.closed = False

    async def readany(self) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    def release(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


def wire_stream(pieces: list[bytes]):
    from types import SimpleNamespace

    from llm.gemini.transport import WireStream

    body = FakeBody(pieces)
    return WireStream(SimpleNamespace(response_stream=body), []), body


SSE = 'data: {"a": "é…"}\r\n\r\ndata: {"b": 2}\r\n\r\n'.encode()


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(SSE)])
async def test_events_split_anywhere_across_reads_come_whole(size):
    """An event may arrive in any number of reads, cut anywhere (in a UTF-8 character too)."""
    stream, body = wire_stream([SSE[i : i + size] for i in range(0, len(SSE), size)])

    assert [event async for event in stream] == [{"a": "é…"}, {"b": 2}]
    assert body.released and not body.closed  # read to its end: back to the pool


async def test_an_event_of_several_data_lines_and_one_without_its_blank_line():
    stream, _ = wire_stream([b'data: {"a":\ndata: 1}\n\ndata: {"b": 2}'])

    assert [event async for event in stream] == [{"a": 1}, {"b": 2}]


async def test_an_error_sent_as_raw_json_lines_is_the_sdks_error_for_it():
    """Without SSE framing, an error body comes line by line (GEMINI_WIRE.md §4.3)."""
    raw = b'{\n  "error": {\n    "code": 503,\n    "message": "overloaded",\n'
    stream, _ = wire_stream([raw, b'    "status": "UNAVAILABLE"\n  }\n}\n'])

    with pytest.raises(ModelUnavailable, match="503 UNAVAILABLE: overloaded"):
        await anext(stream)


async def test_closing_a_stream_before_its_end_closes_its_response():
    stream, body = wire_stream([SSE[:10], SSE[10:]])
    await stream.aclose()

    assert body.closed and not body.released
    assert [event async for event in stream] == []
