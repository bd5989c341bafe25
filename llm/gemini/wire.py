"""Gemini's REST JSON ⇄ our typed values. No I/O, no SDK types.

Requests: `contents` (roles "user"/"model", a message's files before its text),
`systemInstruction`, `generationConfig` (thought summaries, JSON mode) and `tools` (Google Search,
function declarations), as the Gemini API documents them (camelCase).

Responses: each streamed event (or a whole generateContent answer) is one GenerateContentResponse
as JSON. `StreamReader.read` turns an event into TextDelta / ReasoningDelta (parts with
`"thought": true`, never text) / Source (one per distinct `groundingMetadata.groundingChunks[].web`)
and keeps the finish reason, the usage and a blocked prompt's reason for the end."""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from ..errors import ContentBlocked
from ..types import (
    ChatMessage,
    FilePart,
    FinishReason,
    ReasoningDelta,
    Source,
    StreamEvent,
    TextDelta,
    ToolCall,
    Usage,
)

FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content-filter",
    "RECITATION": "content-filter",
    "BLOCKLIST": "content-filter",
    "PROHIBITED_CONTENT": "content-filter",
    "SPII": "content-filter",
    "IMAGE_SAFETY": "content-filter",
}
BLOCKING_FINISH = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"}

FilePartFor = Callable[[FilePart], "dict[str, Any] | InlinePart"]


# ---------------------------------------------------------------------------------------------
# Requests


class InlinePart:
    """A file's `inlineData` part, already serialised: `request_json` puts these bytes into the
    body as they are. The base64 of a history's files is most of a continued turn's request, and
    the same on every turn; kept serialised (`InlineParts`), it is neither encoded nor copied
    through a str and JSON's escaping scan again."""

    __slots__ = ("json",)

    def __init__(self, json: bytes) -> None:
        self.json = json


def inline_part(file: FilePart) -> InlinePart:
    return InlinePart(
        b'{"inlineData":{"mimeType":'
        + orjson.dumps(file.media_type)
        + b',"data":"'
        + base64.b64encode(file.data)
        + b'"}}'
    )


class InlineParts:
    """`inline_part` of each file, kept by `FilePart.key` (which names the same bytes for as long
    as it exists), least recently used out, at most `max_bytes` of JSON in all: a continued
    conversation sends its files again with every turn. Locked: a provider may serve more than
    one event loop."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._parts: OrderedDict[str, tuple[int, InlinePart]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __call__(self, file: FilePart) -> InlinePart:
        with self._lock:
            entry = self._parts.get(file.key)
            if entry is not None and entry[0] == len(file.data):
                self._parts.move_to_end(file.key)
                return entry[1]
        part = inline_part(file)
        size = len(part.json)
        if size > self.max_bytes // 4:  # one large file would empty the cache for itself
            return part
        with self._lock:
            old = self._parts.pop(file.key, None)
            if old is not None:
                self._bytes -= len(old[1].json)
            self._parts[file.key] = (len(file.data), part)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._parts.popitem(last=False)
                self._bytes -= len(dropped.json)
        return part


def file_data_part(uri: str, mime_type: str) -> dict[str, Any]:
    return {"fileData": {"mimeType": mime_type, "fileUri": uri}}


def inline_size(file: FilePart) -> int:
    """The bytes a file adds to a request when sent inline (base64)."""
    return -(-len(file.data) // 3) * 4


def text_content(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"text": text}]}


def contents_of(
    messages: Sequence[ChatMessage], file_part: FilePartFor = inline_part
) -> tuple[list[dict[str, Any]], str | None]:
    """(contents, system instruction text): system messages joined, `assistant` → "model", each
    message's files (as `file_part` renders them) before its text."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append(message.content)
            continue
        parts = [file_part(f) for f in message.files]
        if message.content or not parts:
            parts.append({"text": message.content})
        contents.append(
            {"role": "model" if message.role == "assistant" else "user", "parts": parts}
        )
    return contents, ("\n\n".join(system) if system else None)


def request_body(
    contents: list[dict[str, Any]],
    *,
    system: str | None = None,
    generation_config: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    tool_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if generation_config:
        body["generationConfig"] = generation_config
    if tools:
        body["tools"] = tools
    if tool_config:
        body["toolConfig"] = tool_config
    return body


def request_json(body: dict[str, Any]) -> bytes:
    """The body as JSON bytes, compact, with each `InlinePart` as it is. orjson, as the SDK's
    `json.dumps` is not compact and is slower; what orjson refuses (a lone surrogate in a text)
    by the standard library, as the SDK would send it."""
    try:
        return orjson.dumps(body, default=_fragment)
    except TypeError:
        return json.dumps(body, default=_parsed).encode()


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, InlinePart):
        return orjson.Fragment(value.json)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _parsed(value: Any) -> Any:
    if isinstance(value, InlinePart):
        return orjson.loads(value.json)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def thinking_config(include_thoughts: bool, budget: int | None) -> dict[str, Any] | None:
    config: dict[str, Any] = {}
    if include_thoughts:
        config["includeThoughts"] = True
    if budget is not None:
        config["thinkingBudget"] = budget
    return config or None


GOOGLE_SEARCH_TOOL = {"googleSearch": {}}


def function_tools(declarations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"functionDeclarations": declarations}]


def function_declaration(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": description, "parametersJsonSchema": schema}


def calling_mode(mode: str) -> dict[str, Any]:
    return {"functionCallingConfig": {"mode": mode}}


def function_response_part(call_id: str | None, name: str, output: dict[str, Any]) -> dict:
    response: dict[str, Any] = {"name": name, "response": output}
    if call_id:
        response["id"] = call_id
    return {"functionResponse": response}


# ---------------------------------------------------------------------------------------------
# Responses


def finish_of(name: str | None) -> FinishReason:
    return "other" if name is None else FINISH.get(name, "other")


def usage_of(metadata: dict[str, Any] | None) -> Usage:
    if not metadata:
        return Usage()
    prompt = metadata.get("promptTokenCount") or 0
    output = (metadata.get("candidatesTokenCount") or 0) + (metadata.get("thoughtsTokenCount") or 0)
    return Usage(prompt, output, metadata.get("totalTokenCount") or prompt + output)


def candidate_of(response: dict[str, Any]) -> dict[str, Any] | None:
    candidates = response.get("candidates")
    return candidates[0] if candidates else None


def parts_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    candidate = candidate_of(response)
    content = candidate.get("content") if candidate else None
    return (content or {}).get("parts") or []


def text_of(response: dict[str, Any]) -> str:
    """The answer's text (thought parts excluded)."""
    return "".join(p["text"] for p in parts_of(response) if p.get("text") and not p.get("thought"))


def finish_name(response: dict[str, Any]) -> str | None:
    candidate = candidate_of(response)
    return candidate.get("finishReason") if candidate else None


def check_blocked(response: dict[str, Any]) -> None:
    """ContentBlocked for a blocked prompt, or an answer stopped by safety with no text."""
    if not response.get("candidates"):
        reason = (response.get("promptFeedback") or {}).get("blockReason")
        if reason:
            raise ContentBlocked(f"Prompt blocked: {reason}")
        return
    reason = finish_name(response)
    if reason in BLOCKING_FINISH and not text_of(response):
        raise ContentBlocked(f"Answer blocked: {reason}")


def function_calls_of(response: dict[str, Any], step: int) -> list[tuple[ToolCall, str | None]]:
    """Each function call the model asked for, with the id Gemini gave it (None when it gave
    none: the ToolCall then has a made-up id, which is not sent back)."""
    calls = []
    for index, part in enumerate(p for p in parts_of(response) if p.get("functionCall")):
        call = part["functionCall"]
        given = call.get("id") or None
        tool_call = ToolCall(
            id=given or f"call_{step}_{index}",
            name=call.get("name") or "",
            args=dict(call.get("args") or {}),
        )
        calls.append((tool_call, given))
    return calls


def model_turn_of(response: dict[str, Any]) -> dict[str, Any]:
    """The model's turn as received (it carries thoughtSignature), to send back with the results."""
    candidate = candidate_of(response) or {}
    content = dict(candidate.get("content") or {})
    content["role"] = content.get("role") or "model"
    content.setdefault("parts", [])
    return content


class StreamReader:
    """Reads a stream's events in order: `read(event)` returns its events, `finish()`, `usage()`
    and `raise_if_blocked()` describe the end."""

    __slots__ = ("_blocked", "_content", "_finish", "_sources", "_usage")

    def __init__(self) -> None:
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._blocked: str | None = None
        self._content = False
        self._sources: dict[str, Source] = {}

    def read(self, event: dict[str, Any]) -> list[StreamEvent]:  # per chunk: keep it lean
        out: list[StreamEvent] = []
        candidates = event.get("candidates")
        if candidates:
            candidate = candidates[0]
            content = candidate.get("content")
            if content:
                for part in content.get("parts") or ():
                    text = part.get("text")
                    if text:
                        out.append(ReasoningDelta(text) if part.get("thought") else TextDelta(text))
            finish = candidate.get("finishReason")
            if finish is not None:
                self._finish = finish
            grounding = candidate.get("groundingMetadata")
            if grounding:
                out.extend(self._new_sources(grounding))
        else:
            feedback = event.get("promptFeedback")
            if feedback and feedback.get("blockReason"):
                self._blocked = feedback["blockReason"]
        usage = event.get("usageMetadata")
        if usage is not None:
            self._usage = usage
        if out:
            self._content = True
        return out

    def _new_sources(self, grounding: dict[str, Any]) -> list[Source]:
        found = []
        for chunk in grounding.get("groundingChunks") or ():
            web = chunk.get("web") if isinstance(chunk, dict) else None
            url = (web or {}).get("uri")
            if url and url not in self._sources:
                source = Source(f"source-{len(self._sources) + 1}", url, web.get("title") or "")
                self._sources[url] = source
                found.append(source)
        return found

    def raise_if_blocked(self) -> None:
        if self._blocked is not None and not self._content:
            raise ContentBlocked(f"Prompt blocked: {self._blocked}")

    def finish(self) -> FinishReason:
        return finish_of(self._finish)

    def usage(self) -> Usage:
        return usage_of(self._usage)
