"""Encoders for the three stream formats the API speaks.

- `UIMessageStream`: the Vercel AI SDK UI message stream protocol v1 (what `useChat` reads).
- `SimpleStream`: the seed's own `data: {"content": ...}` frames.
- `TextStream`: plain text, the JSON text of an object as it arrives (what `useObject` reads).

Every method returns the bytes to send (empty when the format has no frame for that event)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.http import StreamingHttpResponse

_ascii_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (orjson: about 5x the standard library's speed on frames).
    What orjson refuses (a lone surrogate) is written with escapes instead."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _ascii_dumps(value).encode()


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(payload) + b"\n\n"


class StreamEncoder:
    content_type = "text/event-stream"
    headers: dict[str, str] = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

    def start(self, message_id: str, metadata: dict[str, Any] | None = None) -> bytes:
        return b""

    def text_start(self, text_id: str) -> bytes:
        return b""

    def text_delta(self, text_id: str, delta: str) -> bytes:
        raise NotImplementedError

    def text_end(self, text_id: str) -> bytes:
        return b""

    def reasoning_start(self, reasoning_id: str) -> bytes:
        return b""

    def reasoning_delta(self, reasoning_id: str, delta: str) -> bytes:
        return b""

    def reasoning_end(self, reasoning_id: str) -> bytes:
        return b""

    def source_url(self, source_id: str, url: str, title: str = "") -> bytes:
        return b""

    def data(self, name: str, data: Any, *, data_id: str | None = None) -> bytes:
        return b""

    def tool_input(self, call_id: str, tool_name: str, tool_input: dict[str, Any]) -> bytes:
        return b""

    def tool_output(self, call_id: str, output: dict[str, Any]) -> bytes:
        return b""

    def finish(self, reason: str, metadata: dict[str, Any] | None = None) -> bytes:
        return b""

    def error(self, message: str) -> bytes:
        return b""

    def done(self) -> bytes:
        return b""


class UIMessageStream(StreamEncoder):
    headers = {**StreamEncoder.headers, "x-vercel-ai-ui-message-stream": "v1"}

    def start(self, message_id, metadata=None):
        chunk: dict[str, Any] = {"type": "start", "messageId": message_id}
        if metadata:
            chunk["messageMetadata"] = metadata
        return _sse(chunk)

    def text_start(self, text_id):
        return _sse({"type": "text-start", "id": text_id})

    _delta_id: str | None = None
    _delta_prefix = b""

    def text_delta(self, text_id, delta):
        # The hot frame: its constant start is encoded once per text id; only the delta per chunk.
        if text_id != self._delta_id:
            self._delta_id = text_id
            self._delta_prefix = (
                b'data: {"type":"text-delta","id":' + _dumps(text_id) + b',"delta":'
            )
        return self._delta_prefix + _dumps(delta) + b"}\n\n"

    def text_end(self, text_id):
        return _sse({"type": "text-end", "id": text_id})

    def reasoning_start(self, reasoning_id):
        return _sse({"type": "reasoning-start", "id": reasoning_id})

    def reasoning_delta(self, reasoning_id, delta):
        return _sse({"type": "reasoning-delta", "id": reasoning_id, "delta": delta})

    def reasoning_end(self, reasoning_id):
        return _sse({"type": "reasoning-end", "id": reasoning_id})

    def source_url(self, source_id, url, title=""):
        chunk: dict[str, Any] = {"type": "source-url", "sourceId": source_id, "url": url}
        if title:
            chunk["title"] = title
        return _sse(chunk)

    def data(self, name, data, *, data_id=None):
        chunk: dict[str, Any] = {"type": f"data-{name}"}
        if data_id is not None:
            chunk["id"] = data_id
        chunk["data"] = data
        return _sse(chunk)

    def tool_input(self, call_id, tool_name, tool_input):
        return _sse(
            {
                "type": "tool-input-available",
                "toolCallId": call_id,
                "toolName": tool_name,
                "input": tool_input,
            }
        )

    def tool_output(self, call_id, output):
        return _sse({"type": "tool-output-available", "toolCallId": call_id, "output": output})

    def finish(self, reason, metadata=None):
        chunk: dict[str, Any] = {"type": "finish", "finishReason": reason}
        if metadata:
            chunk["messageMetadata"] = metadata
        return _sse(chunk)

    def error(self, message):
        return _sse({"type": "error", "errorText": message})

    def done(self):
        return b"data: [DONE]\n\n"


class SimpleStream(StreamEncoder):
    """The seed's format: `data: {"content": chunk}` … `data: [DONE]`; errors `data: {"error"}`."""

    def text_delta(self, text_id, delta):
        return _sse({"content": delta})

    def error(self, message):
        return _sse({"error": message})

    def done(self):
        return b"data: [DONE]\n\n"

    def from_ui(self, frames: bytes) -> bytes:
        """The same stream in this format, from UI message stream frames (one or several): a
        generation publishes one format, the UI stream; a client that asked for the simple one
        gets its text, errors and end."""
        out = []
        for frame in frames.split(b"\n\n"):
            if not frame.startswith(b"data: "):
                continue
            payload = frame[6:]
            if payload == b"[DONE]":
                out.append(self.done())
                continue
            chunk = json.loads(payload)
            kind = chunk.get("type")
            if kind == "text-delta":
                out.append(self.text_delta(chunk["id"], chunk["delta"]))
            elif kind == "error":
                out.append(self.error(chunk["errorText"]))
        return b"".join(out)


class TextStream(StreamEncoder):
    """Plain text: only the text itself (AI SDK's text stream, read by `useObject`)."""

    content_type = "text/plain; charset=utf-8"
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

    def text_delta(self, text_id, delta):
        return delta.encode("utf-8", "replace")  # a lone surrogate becomes "?", not an error


def streaming_response(
    frames: AsyncIterator[bytes], encoder: StreamEncoder, *, status: int = 200
) -> StreamingHttpResponse:
    """A response over an *async* iterator, so ASGI sends each frame as it is produced."""
    response = StreamingHttpResponse(frames, content_type=encoder.content_type, status=status)
    for name, value in encoder.headers.items():
        response[name] = value
    return response
