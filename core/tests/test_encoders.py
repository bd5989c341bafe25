"""core.encoders: the exact bytes of every frame of the three stream formats."""

import pytest

from core.encoders import SimpleStream, TextStream, UIMessageStream, streaming_response
from tests.sse import parse_sse

# --- UI message stream (the Vercel AI SDK's protocol v1) --------------------------------------


@pytest.fixture
def ui() -> UIMessageStream:
    return UIMessageStream()


def test_start_with_and_without_metadata(ui):
    assert ui.start("msg-1") == b'data: {"type":"start","messageId":"msg-1"}\n\n'
    assert ui.start("msg-1", {"conversationId": "c-7"}) == (
        b'data: {"type":"start","messageId":"msg-1","messageMetadata":{"conversationId":"c-7"}}\n\n'
    )
    assert ui.start("msg-1", {}) == b'data: {"type":"start","messageId":"msg-1"}\n\n'


def test_text_start_delta_end(ui):
    assert ui.text_start("t1") == b'data: {"type":"text-start","id":"t1"}\n\n'
    assert ui.text_delta("t1", "Hello") == (
        b'data: {"type":"text-delta","id":"t1","delta":"Hello"}\n\n'
    )
    assert ui.text_end("t1") == b'data: {"type":"text-end","id":"t1"}\n\n'


def test_text_delta_keeps_unicode_as_utf8_and_escapes_json(ui):
    assert ui.text_delta("t1", "café ☕ 日本 🙂") == (
        'data: {"type":"text-delta","id":"t1","delta":"café ☕ 日本 🙂"}\n\n'.encode()
    )
    # Quotes, backslashes and newlines are JSON escapes: a frame never spans two lines.
    assert ui.text_delta("t1", 'say "hi"\\\n\n') == (
        b'data: {"type":"text-delta","id":"t1","delta":"say \\"hi\\"\\\\\\n\\n"}\n\n'
    )
    assert ui.text_delta("t1", "") == b'data: {"type":"text-delta","id":"t1","delta":""}\n\n'


def test_a_lone_surrogate_is_escaped_not_an_error(ui):
    # A model's JSON may carry "\\ud800"; the frame stays valid JSON (then ASCII with escapes).
    assert ui.text_delta("t1", "a\ud800é") == (
        b'data: {"type":"text-delta","id":"t1","delta":"a\\ud800\\u00e9"}\n\n'
    )
    assert SimpleStream().text_delta("t1", "\udfff") == b'data: {"content":"\\udfff"}\n\n'
    assert ui.data("result", {"x": "\ud800"}) == (
        b'data: {"type":"data-result","data":{"x":"\\ud800"}}\n\n'
    )


def test_text_delta_prefix_follows_the_text_id(ui):
    # The constant start of the frame is cached per text id: switching ids must switch it.
    frames = [
        ui.text_delta("a", "1"),
        ui.text_delta("a", "2"),
        ui.text_delta("b", "3"),
        ui.text_delta("a", "4"),
        ui.text_delta('q"x', "5"),
    ]
    assert frames == [
        b'data: {"type":"text-delta","id":"a","delta":"1"}\n\n',
        b'data: {"type":"text-delta","id":"a","delta":"2"}\n\n',
        b'data: {"type":"text-delta","id":"b","delta":"3"}\n\n',
        b'data: {"type":"text-delta","id":"a","delta":"4"}\n\n',
        b'data: {"type":"text-delta","id":"q\\"x","delta":"5"}\n\n',
    ]


def test_text_delta_prefix_is_not_shared_between_streams():
    first, second = UIMessageStream(), UIMessageStream()
    first.text_delta("first-id", "x")
    assert second.text_delta("second-id", "y") == (
        b'data: {"type":"text-delta","id":"second-id","delta":"y"}\n\n'
    )


def test_reasoning_start_delta_end(ui):
    assert ui.reasoning_start("r1") == b'data: {"type":"reasoning-start","id":"r1"}\n\n'
    assert ui.reasoning_delta("r1", "Weighing ünits…") == (
        'data: {"type":"reasoning-delta","id":"r1","delta":"Weighing ünits…"}\n\n'.encode()
    )
    assert ui.reasoning_end("r1") == b'data: {"type":"reasoning-end","id":"r1"}\n\n'


def test_reasoning_does_not_disturb_the_text_delta_prefix(ui):
    ui.text_delta("t1", "a")
    ui.reasoning_delta("r1", "thinking")
    assert ui.text_delta("t1", "b") == b'data: {"type":"text-delta","id":"t1","delta":"b"}\n\n'


def test_source_url_with_and_without_title(ui):
    assert ui.source_url("s1", "https://example.com/a?b=1&c=2") == (
        b'data: {"type":"source-url","sourceId":"s1","url":"https://example.com/a?b=1&c=2"}\n\n'
    )
    assert ui.source_url("s2", "https://example.org/", "Exemple — été") == (
        'data: {"type":"source-url","sourceId":"s2","url":"https://example.org/",'
        '"title":"Exemple — été"}\n\n'.encode()
    )


def test_data_parts(ui):
    assert ui.data("step", {"name": "plan", "status": "running"}) == (
        b'data: {"type":"data-step","data":{"name":"plan","status":"running"}}\n\n'
    )
    assert ui.data("step", {"n": 1}, data_id="s-1") == (
        b'data: {"type":"data-step","id":"s-1","data":{"n":1}}\n\n'
    )
    assert ui.data("result", ["é", None, 2.5, True]) == (
        'data: {"type":"data-result","data":["é",null,2.5,true]}\n\n'.encode()
    )


def test_tool_input_and_output(ui):
    assert ui.tool_input("call-1", "calculator", {"expression": "2^3"}) == (
        b'data: {"type":"tool-input-available","toolCallId":"call-1","toolName":"calculator",'
        b'"input":{"expression":"2^3"}}\n\n'
    )
    assert ui.tool_output("call-1", {"result": 8}) == (
        b'data: {"type":"tool-output-available","toolCallId":"call-1","output":{"result":8}}\n\n'
    )


def test_finish_with_and_without_metadata(ui):
    assert ui.finish("stop") == b'data: {"type":"finish","finishReason":"stop"}\n\n'
    assert ui.finish("length", {"usage": {"outputTokens": 3}}) == (
        b'data: {"type":"finish","finishReason":"length",'
        b'"messageMetadata":{"usage":{"outputTokens":3}}}\n\n'
    )


def test_error_and_done(ui):
    assert ui.error("The model is überlastet") == (
        'data: {"type":"error","errorText":"The model is überlastet"}\n\n'.encode()
    )
    assert ui.done() == b"data: [DONE]\n\n"


def test_a_whole_ui_stream_reads_back_frame_by_frame(ui):
    body = b"".join(
        [
            ui.start("m"),
            ui.text_start("t"),
            ui.text_delta("t", "Hé"),
            ui.text_delta("t", "llo"),
            ui.text_end("t"),
            ui.finish("stop"),
            ui.done(),
        ]
    )
    assert parse_sse(body) == [
        {"type": "start", "messageId": "m"},
        {"type": "text-start", "id": "t"},
        {"type": "text-delta", "id": "t", "delta": "Hé"},
        {"type": "text-delta", "id": "t", "delta": "llo"},
        {"type": "text-end", "id": "t"},
        {"type": "finish", "finishReason": "stop"},
        "[DONE]",
    ]


# --- Simple stream (`data: {"content": ...}`) --------------------------------------------------


def test_simple_stream_frames():
    simple = SimpleStream()
    assert simple.start("m", {"conversationId": "c"}) == b""
    assert simple.text_start("t") == b""
    assert simple.text_delta("t", "Olá 👋") == 'data: {"content":"Olá 👋"}\n\n'.encode()
    assert simple.text_delta("other", 'a"b') == b'data: {"content":"a\\"b"}\n\n'
    assert simple.text_end("t") == b""
    assert simple.reasoning_start("r") + simple.reasoning_delta("r", "x") == b""
    assert simple.reasoning_end("r") + simple.source_url("s", "https://example.com/") == b""
    assert simple.data("step", {"n": 1}) == b""
    assert simple.tool_input("c", "calculator", {}) == b""
    assert simple.tool_output("c", {}) == b""
    assert simple.finish("stop", {"usage": {}}) == b""
    assert simple.error("quota exceeded") == b'data: {"error":"quota exceeded"}\n\n'
    assert simple.done() == b"data: [DONE]\n\n"


def test_simple_stream_frames_from_ui_frames():
    ui, simple = UIMessageStream(), SimpleStream()
    published = b"".join(
        [
            ui.start("m", {"conversationId": "c"}),
            ui.reasoning_start("r"),
            ui.reasoning_delta("r", "hmm"),
            ui.reasoning_end("r"),
            ui.text_start("t"),
            ui.text_delta("t", "Grüß "),
            ui.text_delta("t", "dich"),
            ui.source_url("s", "https://example.com/"),
            ui.text_end("t"),
            ui.error("upstream failed"),
            ui.finish("error"),
            ui.done(),
        ]
    )
    assert simple.from_ui(published) == (
        'data: {"content":"Grüß "}\n\ndata: {"content":"dich"}\n\n'
        'data: {"error":"upstream failed"}\n\ndata: [DONE]\n\n'.encode()
    )
    # One frame at a time (as a listener receives them) gives the same bytes.
    frames = [block + b"\n\n" for block in published.split(b"\n\n")[:-1]]
    assert b"".join(simple.from_ui(frame) for frame in frames) == simple.from_ui(published)
    assert simple.from_ui(ui.start("m")) == b""


# --- Text stream (plain text, what `useObject` reads) -----------------------------------------


def test_text_stream_is_only_the_text():
    text = TextStream()
    assert text.start("m") == b""
    assert text.text_start("t") == b""
    assert text.text_delta("t", '{"city": "Zürich"') == '{"city": "Zürich"'.encode()
    assert text.text_delta("t", "}\n") == b"}\n"
    assert text.text_end("t") == b""
    assert text.reasoning_start("r") + text.reasoning_delta("r", "x") == b""
    assert text.reasoning_end("r") + text.source_url("s", "https://example.com/") == b""
    assert text.data("step", {}) == b""
    assert text.finish("stop") == b""
    assert text.error("boom") == b""
    assert text.done() == b""


# --- Responses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoder", "content_type", "protocol", "body"),
    [
        (
            UIMessageStream(),
            "text/event-stream",
            "v1",
            b'data: {"type":"text-delta","id":"t","delta":"a"}\n\n'
            b'data: {"type":"text-delta","id":"t","delta":"\xc3\xa9"}\n\n',
        ),
        (
            SimpleStream(),
            "text/event-stream",
            None,
            b'data: {"content":"a"}\n\ndata: {"content":"\xc3\xa9"}\n\n',
        ),
        (TextStream(), "text/plain; charset=utf-8", None, b"a\xc3\xa9"),
    ],
    ids=["ui", "simple", "text"],
)
async def test_streaming_response_headers_and_body(encoder, content_type, protocol, body):
    async def frames():
        yield encoder.text_delta("t", "a")
        yield encoder.text_delta("t", "é")

    response = streaming_response(frames(), encoder, status=201)

    assert response.status_code == 201
    assert response["Content-Type"] == content_type
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert response.get("x-vercel-ai-ui-message-stream") == protocol
    assert b"".join([chunk async for chunk in response.streaming_content]) == body


def test_text_stream_writes_a_lone_surrogate_as_a_replacement_not_an_error():
    assert TextStream().text_delta("t", "a\ud800b") == b"a?b"
