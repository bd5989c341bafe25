"""tests/sse.py reads our frames, and refuses what is not one, so that a stream test can fail."""

import httpx
import pytest

from tests.sse import DONE, iter_frames, parse_sse


def test_a_body_becomes_its_frames():
    body = 'data: {"type":"start","messageId":"m"}\n\ndata: {"content":"é"}\n\ndata: [DONE]\n\n'
    assert parse_sse(body.encode()) == [{"type": "start", "messageId": "m"}, {"content": "é"}, DONE]


@pytest.mark.parametrize(
    "body",
    [
        b'data: {"a":1}\n\ndata: {"b":2}',  # the last frame is not terminated
        b'data: {"a":1}\n\nevent: x\n\n',  # not a data frame
        b'data: {"a":1}\ndata: {"b":2}\n\n',  # two lines in one frame
        b"data: {not json}\n\n",
    ],
    ids=["unterminated", "not-data", "multi-line", "not-json"],
)
def test_a_malformed_body_fails(body):
    with pytest.raises((AssertionError, ValueError)):
        parse_sse(body)


def streamed(body: bytes) -> httpx.Response:
    return httpx.Response(200, stream=httpx.ByteStream(body))


def test_a_streamed_response_yields_its_frames():
    response = streamed(b'data: {"a":1}\n\ndata: [DONE]\n\n')
    assert list(iter_frames(response)) == [{"a": 1}, DONE]


def test_a_streamed_response_with_a_foreign_line_fails():
    response = streamed(b'data: {"a":1}\n\n: keep-alive\n\n')
    with pytest.raises(AssertionError, match="not an SSE data frame"):
        list(iter_frames(response))
