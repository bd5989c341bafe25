"""A local stand-in for Gemini's REST API, for tests and benchmarks.

A real HTTP/1.1 server on 127.0.0.1 (its own asyncio loop in a background thread) that speaks the
wire format the google-genai SDK uses (3.4.0, as pinned in requirements.txt):

* ``POST /{v1,v1beta,v1alpha}/models/{model}:streamGenerateContent?alt=sse`` — SSE frames
  ``data: {json}\\r\\n\\r\\n``, no ``[DONE]``; every chunk carries content parts, ``responseId``,
  ``modelVersion`` and cumulative ``usageMetadata``; ``finishReason`` (and a reply's
  ``groundingMetadata``) only on the last chunk. Thought parts are ``{"text", "thought": true}``.
* ``:generateContent``.
* The Files API's resumable upload as the SDK speaks it (``client.aio.files.upload``):
  ``POST /upload/{version}/files`` with ``X-Goog-Upload-Command: start`` answers with an
  ``x-goog-upload-url``; ``POST`` there with ``upload, finalize`` answers ``{"file": {...}}``
  (``uri``, ``mimeType``, ``expirationTime`` 48 h on, ``state``); ``GET /{version}/files/{id}``
  answers the file. A file is ``PROCESSING`` for its first ``processing_polls`` answers, then
  ``ACTIVE``. Uploaded files are kept in ``.files`` (by uri); a request whose ``fileData`` names an
  unknown uri gets a 400.
* Errors: non-200 with ``{"error": {"code", "message", "status", "details"?}}`` as
  ``application/json``; mid-stream errors as a ``data: {"error": {...}}`` frame.
* Requires the ``x-goog-api-key`` header (403 without it).

Usage::

    with GeminiStandIn() as standin:
        standin.enqueue(error_reply(429, retry_delay="1s"), text_stream(["Hel", "lo"]))
        client = genai.Client(api_key="k", http_options={"base_url": standin.base_url})
        ...
        assert [r.model for r in standin.requests] == ["gemini-2.5-flash"] * 2

What a request gets, in order: the first reply queued for its model (``enqueue_for``), else its
model's handler (``handle_model``), else the first reply in the shared queue (``enqueue``), else
``handler(request)`` if it returns a Reply, else a deterministic default (a few text chunks; for
JSON mode an object built from the request's ``responseSchema``).

Every request is recorded in ``.requests`` (thread-safe snapshots of live records): method,
path, model, action, headers, json body (``inline_data`` and ``file_data`` list the files it
carried), ``disconnected`` (the client went away before the reply
finished), ``dropped`` (the stand-in cut the connection on purpose), started/finished timestamps.
Use ``wait_until`` (sync) or ``await wait_for`` (async) to wait for a condition without sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from llm.structured import example_from_schema
from llm.tokens import estimate_tokens

__all__ = [
    "DEFAULT_SIGNATURE",
    "GeminiStandIn",
    "Reply",
    "StandInRequest",
    "UploadedFile",
    "blocked_reply",
    "error_reply",
    "function_call_reply",
    "grounding_metadata",
    "json_reply",
    "pacing",
    "text_reply",
    "text_stream",
    "thought_stream",
]

logger = logging.getLogger("tests.gemini_standin")

#: The thoughtSignature function_call_reply attaches (URL-safe base64, as the SDK re-encodes it).
DEFAULT_SIGNATURE = base64.urlsafe_b64encode(b"stand-in thought signature 0001").decode()

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    400: "Request contains an invalid argument.",
    403: "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API.",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_PATH_RE = re.compile(
    r"^(?P<prefix>.*?)/(?:(?P<version>v1|v1beta|v1alpha)/)?models/(?P<model>[^/:]+):(?P<action>\w+)$"
)
_ACTIONS = {"streamGenerateContent", "generateContent"}
_UPLOAD_START_RE = re.compile(r"^(?P<prefix>.*?)/upload/(?:v1|v1beta|v1alpha)/files$")
_UPLOAD_SESSION_RE = re.compile(r"^/upload-session/(?P<session>[\w-]+)$")
_FILE_RE = re.compile(r"^(?P<prefix>.*?)/(?:v1|v1beta|v1alpha)/(?P<name>files/[\w-]+)$")
#: How long the Files API keeps an upload.
FILE_LIFETIME_S = 48 * 3600


# ---------------------------------------------------------------------------------------------
# Replies


@dataclass
class Reply:
    """How the stand-in answers one request. Build one with the helpers below.

    ``chunks`` holds the content parts of each streamed chunk; a non-streaming generateContent
    gets them merged into one candidate. ``error`` (a Google error object) without
    ``error_after`` is an HTTP error status; with ``error_after=n`` it is a mid-stream error frame
    after n chunks. ``drop_after=n`` closes the TCP connection after n chunks; ``truncate_after=n``
    sends n chunks and the first half of the next one, then closes the connection (a chunked body
    cut in the middle of an event). ``gate`` makes the stand-in wait for the event after sending
    the first ``gate_after`` chunks (default 1; non-streaming: before answering).
    ``first_delay`` is waited before anything is sent (the whole reply, for non-streaming
    calls), ``between_delay`` between chunks. ``grounding`` is the candidate's
    ``groundingMetadata`` on the last chunk. A handler that raises gets the request a 400 that
    names the exception."""

    chunks: list[list[dict[str, Any]]] = field(default_factory=list)
    finish: str | None = "STOP"
    finish_message: str | None = None
    usage: dict[str, Any] | None = None
    prompt_feedback: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    first_delay: float = 0.0
    between_delay: float = 0.0
    error_after: int | None = None
    #: The mid-stream error as the real front end writes it: a raw, pretty-printed JSON object
    #: after the events (GEMINI_WIRE.md §4.3), not a `data:` event.
    raw_error: bool = False
    drop_after: int | None = None
    truncate_after: int | None = None
    gate: threading.Event | None = None
    gate_after: int = 1
    grounding: dict[str, Any] | None = None


def _error_object(
    code: int, status: str | None, message: str | None, details: list[dict[str, Any]] | None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": int(code),
        "message": message or _MESSAGES.get(code, "Error."),
        "status": status or _STATUS_NAMES.get(code, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return error


def text_stream(
    chunks: Iterable[str],
    *,
    finish: str | None = "STOP",
    usage: dict[str, Any] | None = None,
    first_delay: float = 0.0,
    between_delay: float = 0.0,
    error_after: int | None = None,
    error: tuple[int, str, str] = (503, "UNAVAILABLE", _MESSAGES[503]),
    raw_error: bool = False,
    gate: threading.Event | None = None,
    gate_after: int = 1,
    drop_after: int | None = None,
    truncate_after: int | None = None,
    grounding: dict[str, Any] | None = None,
    thoughts: Iterable[str] = (),
) -> Reply:
    """A streamed text reply, one chunk per string. ``error_after=n``: after n chunks send the
    ``error`` (code, status, message) as a mid-stream ``data: {"error": ...}`` frame (with
    ``raw_error``, as a raw pretty-printed JSON object, the real front end's way).
    ``drop_after=n``: close the connection after n chunks. ``truncate_after=n``: send n chunks and
    half of the next one, then close the connection. ``gate``: hold every chunk after the first
    ``gate_after`` (default 1) until the event is set. ``usage``: the final usageMetadata
    (estimated if None). ``grounding``: groundingMetadata on the last chunk (see
    ``grounding_metadata``). ``thoughts``: thought-summary chunks streamed before the text."""
    return Reply(
        chunks=[[{"text": t, "thought": True}] for t in thoughts] + [[{"text": c}] for c in chunks],
        grounding=grounding,
        finish=finish,
        usage=usage,
        first_delay=first_delay,
        between_delay=between_delay,
        error_after=error_after,
        error=_error_object(*error, None) if error_after is not None else None,
        raw_error=raw_error,
        gate=gate,
        gate_after=gate_after,
        drop_after=drop_after,
        truncate_after=truncate_after,
    )


def thought_stream(thoughts: Iterable[str], chunks: Iterable[str], **options: Any) -> Reply:
    """Thought summaries (``{"text", "thought": true}`` parts, one chunk each), then the text."""
    return text_stream(chunks, thoughts=thoughts, **options)


def grounding_metadata(
    *pages: tuple[str, str], queries: Iterable[str] = ("stand-in query",)
) -> dict[str, Any]:
    """A Google Search grounding: ``pages`` are (uri, title), cited by one support each."""
    return {
        "webSearchQueries": list(queries),
        "groundingChunks": [{"web": {"uri": uri, "title": title}} for uri, title in pages],
        "groundingSupports": [
            {
                "segment": {"startIndex": 0, "endIndex": 10, "text": "stand-in"},
                "groundingChunkIndices": [i],
            }
            for i in range(len(pages))
        ],
        "searchEntryPoint": {"renderedContent": "<div>stand-in search</div>"},
    }


def text_reply(
    text: str,
    *,
    finish: str | None = "STOP",
    usage: dict[str, Any] | None = None,
    delay: float = 0.0,
    thought: str | None = None,
) -> Reply:
    """One text answer (one chunk when streamed). ``thought`` adds a thought part before it."""
    parts: list[dict[str, Any]] = []
    if thought is not None:
        parts.append({"text": thought, "thought": True})
    parts.append({"text": text})
    return Reply(chunks=[parts], finish=finish, usage=usage, first_delay=delay)


def json_reply(
    obj: Any,
    *,
    pieces: int = 1,
    delay: float = 0.0,
    between_delay: float = 0.0,
    usage: dict[str, Any] | None = None,
) -> Reply:
    """A JSON-mode answer: ``obj`` dumped (or a str sent verbatim, to send invalid JSON). When
    streamed it is cut into ``pieces`` chunks of text."""
    text = obj if isinstance(obj, str) else json.dumps(obj, indent=1)
    pieces = max(1, min(pieces, len(text) or 1))
    size = -(-len(text) // pieces) if text else 1
    cuts = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    return Reply(
        chunks=[[{"text": c}] for c in cuts],
        usage=usage,
        first_delay=delay,
        between_delay=between_delay,
    )


def function_call_reply(
    name: str,
    args: dict[str, Any] | None = None,
    *,
    signature: str | None = DEFAULT_SIGNATURE,
    more: Iterable[tuple[str, dict[str, Any]]] = (),
    text: str | None = None,
    delay: float = 0.0,
    usage: dict[str, Any] | None = None,
) -> Reply:
    """The model asks for a function call (with a thoughtSignature, as Gemini 2.5+/3 sends).
    ``more`` adds further parallel calls (name, args) without signatures."""
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"text": text})
    first: dict[str, Any] = {"functionCall": {"name": name, "args": args or {}}}
    if signature:
        first["thoughtSignature"] = signature
    parts.append(first)
    for extra_name, extra_args in more:
        parts.append({"functionCall": {"name": extra_name, "args": extra_args}})
    return Reply(
        chunks=[parts],
        finish="STOP",
        finish_message="Model generated function call(s).",
        usage=usage,
        first_delay=delay,
    )


def error_reply(
    code: int,
    status: str | None = None,
    message: str | None = None,
    *,
    retry_delay: str | None = None,
    details: list[dict[str, Any]] | None = None,
    delay: float = 0.0,
) -> Reply:
    """An HTTP error with Google's error body. ``retry_delay`` (e.g. "47s") adds a RetryInfo
    detail, as Gemini's 429s carry."""
    details = list(details or [])
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
        if message is None and code == 429:
            message = f"{_MESSAGES[429]} Please retry in {retry_delay}."
    return Reply(error=_error_object(code, status, message, details), first_delay=delay)


def blocked_reply(reason: str = "SAFETY", *, delay: float = 0.0) -> Reply:
    """The prompt was blocked: no candidates, only promptFeedback.blockReason."""
    return Reply(
        chunks=[],
        finish=None,
        prompt_feedback={
            "blockReason": reason,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
            ],
        },
        first_delay=delay,
    )


def pacing(
    first_delay_s: float = 0.5,
    chunk_interval_s: float = 0.03,
    n_chunks: int = 20,
    *,
    words_per_chunk: int = 3,
) -> Callable[[StandInRequest], Reply]:
    """A handler with realistic timing for benchmarks: ``standin.handler = pacing(...)``. The
    first chunk after ``first_delay_s``, then ``n_chunks - 1`` more every ``chunk_interval_s``."""
    words = "the quick model streams a plausible answer to every question it is asked".split()
    chunks = [
        " ".join(words[(i * words_per_chunk + j) % len(words)] for j in range(words_per_chunk))
        + " "
        for i in range(n_chunks)
    ]
    reply = text_stream(chunks, first_delay=first_delay_s, between_delay=chunk_interval_s)

    def handler(request: StandInRequest) -> Reply:
        return reply

    return handler


# ---------------------------------------------------------------------------------------------
# Recorded requests


@dataclass
class StandInRequest:
    """One request the stand-in received. ``json`` is the parsed body (None if not JSON)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    api_version: str | None = None
    model: str | None = None
    action: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    status: int | None = None
    disconnected: bool = False
    dropped: bool = False
    chunks_sent: int = 0
    _prompt_tokens: int | None = field(default=None, repr=False, compare=False)

    @property
    def body(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def contents(self) -> list[dict[str, Any]]:
        return list(self.body.get("contents") or [])

    @property
    def roles(self) -> list[str | None]:
        return [c.get("role") for c in self.contents]

    @property
    def system_instruction(self) -> str | None:
        si = self.body.get("systemInstruction") or self.body.get("system_instruction")
        if not si:
            return None
        return "".join(p.get("text", "") for p in si.get("parts") or [])

    @property
    def generation_config(self) -> dict[str, Any]:
        return dict(self.body.get("generationConfig") or self.body.get("generation_config") or {})

    @property
    def last_user_text(self) -> str:
        for content in reversed(self.contents):
            if content.get("role", "user") == "user":
                texts = [p["text"] for p in content.get("parts") or [] if "text" in p]
                if texts:
                    return "".join(texts)
        return ""

    def parts(self, key: str) -> list[Any]:
        """Every part value under `key` ("text", "functionCall", "functionResponse", ...)."""
        return [
            p[key]
            for c in self.contents
            for p in c.get("parts") or []
            if isinstance(p, dict) and key in p
        ]

    @property
    def function_responses(self) -> list[dict[str, Any]]:
        return self.parts("functionResponse")

    @property
    def inline_data(self) -> list[tuple[str, bytes]]:
        """(media type, bytes) of each inlineData part, in order (either spelling, either
        base64 alphabet, as the API accepts them)."""
        found = []
        for blob in self.parts("inlineData") + self.parts("inline_data"):
            mime = blob.get("mimeType") or blob.get("mime_type") or ""
            data = str(blob.get("data") or "")
            found.append((mime, base64.b64decode(data.replace("-", "+").replace("_", "/"))))
        return found

    @property
    def file_data(self) -> list[dict[str, str]]:
        """Each fileData part as {"mimeType", "fileUri"}, in order."""
        return [
            {
                "mimeType": ref.get("mimeType") or ref.get("mime_type") or "",
                "fileUri": ref.get("fileUri") or ref.get("file_uri") or "",
            }
            for ref in self.parts("fileData") + self.parts("file_data")
        ]

    def prompt_tokens(self) -> int:
        """The stand-in's token estimate for this request's text (computed once)."""
        if self._prompt_tokens is None:
            self._prompt_tokens = estimate_tokens(self.all_text())
        return self._prompt_tokens

    def all_text(self) -> str:
        text = " ".join(str(t) for t in self.parts("text"))
        return f"{self.system_instruction or ''} {text}".strip()


@dataclass
class UploadedFile:
    """A file uploaded through the stand-in's Files API."""

    name: str
    uri: str
    mime_type: str
    display_name: str
    data: bytes
    expires_at: float  # time.time()
    #: How many more answers say PROCESSING before the file is ACTIVE.
    processing_polls: int = 0


# ---------------------------------------------------------------------------------------------
# The HTTP server


class _Connection(asyncio.Protocol):
    """One client connection: HTTP/1.1 with keep-alive, requests handled one at a time."""

    def __init__(self, standin: GeminiStandIn):
        self.standin = standin
        self.buf = bytearray()
        self.closed = False
        self.current: StandInRequest | None = None
        self._data_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._paused = False

    # protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()
        self.closed_fut: asyncio.Future[None] = self.loop.create_future()
        self.standin._connections.add(self)
        task = self.loop.create_task(self._serve())
        self.standin._tasks.add(task)
        task.add_done_callback(self.standin._tasks.discard)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._wake("_data_waiter")

    def eof_received(self) -> bool:
        self._gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        self.standin._connections.discard(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake("_drain_waiter")

    # helpers
    def _wake(self, name: str) -> None:
        waiter = getattr(self, name)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        setattr(self, name, None)

    def _gone(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.closed_fut.done():
            self.closed_fut.set_result(None)
        self._wake("_data_waiter")
        self._wake("_drain_waiter")
        record = self.current
        if record is not None and record.finished is None and not record.dropped:
            self.standin._update(record, disconnected=True)

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._paused and not self.closed:
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter

    async def pause(self, seconds: float) -> bool:
        """Wait, waking early if the client leaves. True if the client is still there."""
        if seconds > 0 and not self.closed:
            if seconds <= 0.25:  # cheap path for chunk pacing; a disconnect is recorded anyway
                await asyncio.sleep(seconds)
            else:
                await asyncio.wait([self.closed_fut], timeout=seconds)
        return not self.closed

    async def wait_gate(self, gate: threading.Event) -> bool:
        while not gate.is_set():
            if not await self.pause(0.002):
                return False
        return not self.closed

    def abort(self) -> None:
        self.closed = True
        if not self.closed_fut.done():
            self.closed_fut.set_result(None)
        self.transport.abort()

    # request loop
    async def _read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        while True:
            parsed = _parse_request(self.buf)
            if parsed is not None:
                request, used = parsed
                del self.buf[:used]
                return request
            if self.closed:
                return None
            self._data_waiter = self.loop.create_future()
            await self._data_waiter

    async def _serve(self) -> None:
        try:
            while not self.closed:
                request = await self._read_request()
                if request is None:
                    break
                method, target, headers, body = request
                await self.standin._handle(self, method, target, headers, body)
                if headers.get("connection", "").lower() == "close":
                    break
        except asyncio.CancelledError:
            pass
        except Exception:  # a stand-in bug: make it visible, keep serving others
            logger.exception("gemini stand-in failed on a request")
        finally:
            self.current = None
            if not self.transport.is_closing():
                self.transport.close()


def _parse_request(buf: bytearray) -> tuple[tuple[str, str, dict[str, str], bytes], int] | None:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1")
    lines = head.split("\r\n")
    method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        pos = start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0] or b"0", 16)
            pos = line_end + 2
            if size == 0:
                trailer_end = buf.find(b"\r\n", pos)
                if trailer_end < 0:
                    return None
                return (method, target, headers, bytes(body)), trailer_end + 2
            if len(buf) < pos + size + 2:
                return None
            body += buf[pos : pos + size]
            pos += size + 2
    length = int(headers.get("content-length") or 0)
    if len(buf) < start + length:
        return None
    return (method, target, headers, bytes(buf[start : start + length])), start + length


def _dumps(obj: Any) -> str:
    # ensure_ascii escapes U+2028/U+2029 too, which older SDKs split lines on.
    return json.dumps(obj, separators=(",", ":"))


def _http_head(
    status: int, content_type: str, length: int | None, extra: dict[str, str] | None = None
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        f"Content-Type: {content_type}",
        "Vary: Origin, X-Origin, Referer",
        "Server: gemini-standin",
        *(f"{name}: {value}" for name, value in (extra or {}).items()),
    ]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class GeminiStandIn:
    """The stand-in server. ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1", port: int = 0):
        #: When set, requests with another key get Gemini's 400 API_KEY_INVALID.
        self.api_key = api_key
        self.host = host
        self.port = port
        #: Fallback for dynamic replies: fn(request) -> Reply | None (None: the default reply).
        self.handler: Callable[[StandInRequest], Reply | None] | None = None
        self._lock = threading.Condition(threading.Lock())
        self._queue: collections.deque[Reply] = collections.deque()
        self._by_model: dict[str, collections.deque[Reply]] = {}
        self._model_handlers: dict[str, Callable[[StandInRequest], Reply]] = {}
        self._requests: list[StandInRequest] = []
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        #: Files uploaded through the Files API, by uri, and how long they are kept.
        self.files: dict[str, UploadedFile] = {}
        self.file_lifetime_s = FILE_LIFETIME_S
        #: Answers (the upload's and each GET's) that say PROCESSING before a file is ACTIVE.
        self.processing_polls = 0
        self._upload_sessions: dict[str, dict[str, Any]] = {}

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> GeminiStandIn:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[Exception] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(
                        lambda: _Connection(self), self.host, self.port, backlog=4096
                    )
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except OSError as exc:  # pragma: no cover - port in use etc.
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="gemini-standin", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for conn in list(self._connections):
                conn.transport.abort()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=2)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> GeminiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # scripting ---------------------------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        """Replies for the next requests, first in first out (any model)."""
        with self._lock:
            self._queue.extend(replies)

    def enqueue_for(self, model: str, *replies: Reply) -> None:
        """Replies for the next requests to `model` only; these win over `enqueue`."""
        with self._lock:
            self._by_model.setdefault(model.removeprefix("models/"), collections.deque()).extend(
                replies
            )

    def handle_model(self, model: str, handler: Callable[[StandInRequest], Reply]) -> None:
        """Every request to `model` that finds no reply queued for it (`enqueue_for`) gets
        `handler(request)`, never a reply from the shared queue: e.g. the chat's title model, so
        that its calls leave the replies queued for the chat alone."""
        with self._lock:
            self._model_handlers[model.removeprefix("models/")] = handler

    def pending(self) -> int:
        """How many queued replies are still unused."""
        with self._lock:
            return len(self._queue) + sum(len(q) for q in self._by_model.values())

    def reset(self) -> None:
        """Forget queued replies, the handler and recorded requests (between tests)."""
        with self._lock:
            self._queue.clear()
            self._by_model.clear()
            self._model_handlers.clear()
            self._requests.clear()
            self.handler = None
            self.api_key = None
            self.files.clear()
            self.file_lifetime_s = FILE_LIFETIME_S
            self.processing_polls = 0
            self._upload_sessions.clear()

    # observing ---------------------------------------------------------------------------------
    @property
    def requests(self) -> list[StandInRequest]:
        """The requests received so far, oldest first (the records update live)."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, action: str) -> list[StandInRequest]:
        return [r for r in self.requests if r.action == action]

    @property
    def in_flight(self) -> int:
        """Requests being answered right now."""
        return self._in_flight

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until predicate() is true (re-checked on every stand-in event). For sync code;
        in async tests use `await wait_for(...)` so the client's loop keeps running."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._lock:
                self._lock.wait(min(remaining, 0.05))
        return True

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the condition, not for I/O
    ) -> bool:
        """Wait (async) until predicate() is true, re-checked on every stand-in event."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._async_waiters.add(entry)
        try:
            deadline = loop.time() + timeout
            while not predicate():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                event.clear()
                if predicate():
                    return True
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    return predicate()
            return True
        finally:
            with self._lock:
                self._async_waiters.discard(entry)

    # internals ---------------------------------------------------------------------------------
    def _notify(self) -> None:
        # called with the lock held
        self._lock.notify_all()
        for loop, event in list(self._async_waiters):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed
                self._async_waiters.discard((loop, event))

    def _update(self, record: StandInRequest, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(record, key, value)
            self._notify()

    def _next_reply(self, record: StandInRequest) -> Reply | None:
        with self._lock:
            own = self._by_model.get(record.model or "")
            if own:
                return own.popleft()
            model_handler = self._model_handlers.get(record.model or "")
            if model_handler is None and self._queue:
                return self._queue.popleft()
        if model_handler is not None:
            return model_handler(record)
        handler = self.handler
        if handler is not None:
            reply = handler(record)
            if reply is not None:
                return reply
        return None

    async def _handle(
        self, conn: _Connection, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> None:
        url = urlsplit(target)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        match = _PATH_RE.match(url.path)
        upload = _UPLOAD_START_RE.match(url.path) or _UPLOAD_SESSION_RE.match(url.path)
        record = StandInRequest(
            method=method,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers=headers,
            json=body,
            api_version=match["version"] if match else None,
            model=match["model"] if match else None,
            action=match["action"]
            if match
            else "upload"
            if upload
            else "getFile"
            if _FILE_RE.match(url.path)
            else None,
        )
        conn.current = record
        with self._lock:
            self._requests.append(record)
            self._in_flight += 1
            self._notify()
        status = 200
        try:
            key = headers.get("x-goog-api-key") or record.query.get("key")
            session = _UPLOAD_SESSION_RE.match(url.path)
            if method == "POST" and session is not None:  # the upload URL carries its own grant
                status = await self._upload_chunk(conn, session["session"], headers, raw)
            elif method == "POST" and _UPLOAD_START_RE.match(url.path) and key:
                status = await self._upload_start(conn, headers, body)
            elif method == "GET" and (file_match := _FILE_RE.match(url.path)) and key:
                status = await self._get_file(conn, file_match["name"])
            elif method != "POST" or match is None or record.action not in _ACTIONS:
                status = await self._send_error(conn, _error_object(404, None, None, None))
            elif not key:
                status = await self._send_error(conn, _error_object(403, None, None, None))
            elif self.api_key is not None and key != self.api_key:
                status = await self._send_error(
                    conn,
                    _error_object(
                        400,
                        None,
                        "API key not valid. Please pass a valid API key.",
                        [
                            {
                                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                "reason": "API_KEY_INVALID",
                                "domain": "googleapis.com",
                            }
                        ],
                    ),
                )
            elif not isinstance(body, dict):
                status = await self._send_error(
                    conn, _error_object(400, None, "Invalid JSON payload received.", None)
                )
            elif unknown := [f for f in record.file_data if f["fileUri"] not in self.files]:
                message = f"File {unknown[0]['fileUri']} does not exist or you have no access."
                status = await self._send_error(conn, _error_object(400, None, message, None))
            elif busy := [f for f in record.file_data if self.files[f["fileUri"]].processing_polls]:
                message = f"The file {busy[0]['fileUri']} is not in an ACTIVE state."
                status = await self._send_error(conn, _error_object(400, None, message, None))
            else:
                try:
                    reply = self._next_reply(record) or self._default_reply(record)
                except Exception as exc:  # a broken test handler: say so, don't hang up
                    logger.exception("gemini stand-in handler failed")
                    reply = error_reply(400, message=f"stand-in handler raised {exc!r}")
                if record.action == "streamGenerateContent":
                    status = await self._send_stream(conn, record, reply)
                else:
                    status = await self._send_generate(conn, record, reply)
        finally:
            conn.current = None
            with self._lock:
                self._in_flight -= 1
                if record.finished is None:
                    record.finished = time.monotonic()
                if record.status is None and status:
                    record.status = status
                self._notify()

    def _complete(self, conn: _Connection, status: int) -> None:
        """Record the reply as finished just before its last bytes go out, so a client that has
        read the whole reply always finds the record complete."""
        if conn.current is not None and conn.current.finished is None:
            self._update(conn.current, status=status, finished=time.monotonic())

    async def _send_error(self, conn: _Connection, error: dict[str, Any]) -> int:
        payload = json.dumps({"error": error}, indent=2).encode()
        status = int(error["code"])
        self._complete(conn, status)
        conn.write(_http_head(status, "application/json; charset=UTF-8", len(payload)) + payload)
        await conn.drain()
        return status

    async def _send_json(
        self, conn: _Connection, obj: Any, headers: dict[str, str] | None = None
    ) -> int:
        payload = json.dumps(obj, indent=2).encode()
        self._complete(conn, 200)
        head = _http_head(200, "application/json; charset=UTF-8", len(payload), headers)
        conn.write(head + payload)
        await conn.drain()
        return 200

    async def _upload_start(self, conn: _Connection, headers: dict[str, str], body: Any) -> int:
        """Files API, step 1: a resumable upload session for the announced file."""
        if headers.get("x-goog-upload-command") != "start":
            return await self._send_error(conn, _error_object(400, None, None, None))
        file = (body or {}).get("file") or {}
        session = f"s{next(self._ids)}"
        with self._lock:
            self._upload_sessions[session] = {
                "mime_type": headers.get("x-goog-upload-header-content-type")
                or file.get("mimeType")
                or "application/octet-stream",
                "size": int(headers.get("x-goog-upload-header-content-length") or 0),
                "display_name": file.get("displayName") or file.get("display_name") or "",
                "data": bytearray(),
            }
        url = f"{self.base_url}/upload-session/{session}"
        return await self._send_json(
            conn, {}, {"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"}
        )

    async def _upload_chunk(
        self, conn: _Connection, session: str, headers: dict[str, str], raw: bytes
    ) -> int:
        """Files API, step 2: the bytes (the SDK sends them in 8 MiB chunks), then finalize."""
        with self._lock:
            state = self._upload_sessions.get(session)
        if state is None:
            return await self._send_error(conn, _error_object(404, None, None, None))
        state["data"] += raw
        if "finalize" not in headers.get("x-goog-upload-command", ""):
            return await self._send_json(conn, {}, {"X-Goog-Upload-Status": "active"})
        name = f"files/standin-{session}"
        expires = time.time() + self.file_lifetime_s
        uploaded = UploadedFile(
            name=name,
            uri=f"{self.base_url}/v1beta/{name}",
            mime_type=state["mime_type"],
            display_name=state["display_name"],
            data=bytes(state["data"]),
            expires_at=expires,
            processing_polls=self.processing_polls,
        )
        with self._lock:
            self._upload_sessions.pop(session, None)
            self.files[uploaded.uri] = uploaded
        file = self._file_json(uploaded)
        return await self._send_json(conn, {"file": file}, {"X-Goog-Upload-Status": "final"})

    def _file_json(self, uploaded: UploadedFile) -> dict[str, Any]:
        """The File resource as the API answers it (one PROCESSING answer used up, if any)."""
        with self._lock:
            processing = uploaded.processing_polls > 0
            if processing:
                uploaded.processing_polls -= 1
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {
            "name": uploaded.name,
            "displayName": uploaded.display_name,
            "mimeType": uploaded.mime_type,
            "sizeBytes": str(len(uploaded.data)),
            "createTime": now,
            "updateTime": now,
            "expirationTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(uploaded.expires_at)),
            "sha256Hash": base64.b64encode(b"stand-in").decode(),
            "uri": uploaded.uri,
            "state": "PROCESSING" if processing else "ACTIVE",
            "source": "UPLOADED",
        }

    async def _get_file(self, conn: _Connection, name: str) -> int:
        with self._lock:
            uploaded = next((f for f in self.files.values() if f.name == name), None)
        if uploaded is None:
            return await self._send_error(conn, _error_object(404, None, None, None))
        return await self._send_json(conn, self._file_json(uploaded))

    def _usage(
        self, record: StandInRequest, reply: Reply, upto: int, output_chars: int
    ) -> dict[str, Any]:
        """Cumulative usage after `upto` chunks holding `output_chars` characters of text (the
        reply's own usage on the last chunk)."""
        if reply.usage is not None and upto >= len(reply.chunks):
            return reply.usage
        prompt = (reply.usage or {}).get("promptTokenCount") or record.prompt_tokens()
        out = output_chars // 4 + 1 if output_chars else 0
        return {
            "promptTokenCount": prompt,
            "candidatesTokenCount": out,
            "totalTokenCount": prompt + out,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }

    def _response(
        self,
        record: StandInRequest,
        reply: Reply,
        parts: list[dict[str, Any]] | None,
        last: bool,
        upto: int,
        output_chars: int,
        response_id: str,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if parts is not None:
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            if last and reply.finish:
                candidate["finishReason"] = reply.finish
                if reply.finish_message:
                    candidate["finishMessage"] = reply.finish_message
            if last and reply.grounding is not None:
                candidate["groundingMetadata"] = reply.grounding
            candidate["index"] = 0
            out["candidates"] = [candidate]
        if reply.prompt_feedback is not None:
            out["promptFeedback"] = reply.prompt_feedback
        out["usageMetadata"] = self._usage(record, reply, upto, output_chars)
        out["modelVersion"] = record.model
        out["responseId"] = response_id
        return out

    async def _send_stream(self, conn: _Connection, record: StandInRequest, reply: Reply) -> int:
        if not await conn.pause(reply.first_delay):
            return 0
        if reply.error is not None and reply.error_after is None:
            return await self._send_error(conn, reply.error)
        record.status = 200
        conn.write(_http_head(200, "text/event-stream", None))
        response_id = f"standin-{next(self._ids)}"
        chunks: list[list[dict[str, Any]] | None] = list(reply.chunks)
        if not chunks:
            chunks = [None if reply.prompt_feedback is not None else [{"text": ""}]]
        count = len(chunks)
        output_chars = 0
        for i, parts in enumerate(chunks):
            if reply.drop_after is not None and i >= reply.drop_after:
                break
            if reply.error_after is not None and i >= reply.error_after:
                break
            if reply.truncate_after is not None and i >= reply.truncate_after:
                break
            if i > 0:
                if (
                    i == reply.gate_after
                    and reply.gate is not None
                    and not await conn.wait_gate(reply.gate)
                ):
                    return 200
                if not await conn.pause(reply.between_delay):
                    return 200
            if parts:
                output_chars += sum(len(p.get("text") or "") for p in parts if not p.get("thought"))
            body = self._response(
                record, reply, parts, i == count - 1, i + 1, output_chars, response_id
            )
            frame = _dumps(body)
            data = f"data: {frame}\r\n\r\n".encode()
            record.chunks_sent += 1  # before the write: the client may look as soon as it reads
            conn.write(b"%x\r\n%s\r\n" % (len(data), data))
            await conn.drain()
            if conn.closed:
                return 200
        if reply.truncate_after is not None and reply.truncate_after < count:
            body = self._response(
                record, reply, chunks[reply.truncate_after], False, 0, output_chars, response_id
            )
            data = f"data: {_dumps(body)}\r\n\r\n".encode()
            conn.write(b"%x\r\n%s" % (len(data), data[: len(data) // 2]))
            await conn.drain()
        if reply.drop_after is not None or reply.truncate_after is not None:
            self._update(record, dropped=True, status=200, finished=time.monotonic())
            conn.abort()
            return 200
        self._complete(conn, 200)
        if reply.error_after is not None and reply.error is not None:
            if reply.raw_error:
                data = json.dumps({"error": reply.error}, indent=2).replace("\n", "\r\n")
                data = (data + "\r\n").encode()
            else:
                data = f"data: {_dumps({'error': reply.error})}\r\n\r\n".encode()
            conn.write(b"%x\r\n%s\r\n" % (len(data), data))
        conn.write(b"0\r\n\r\n")
        await conn.drain()
        return 200

    async def _send_generate(self, conn: _Connection, record: StandInRequest, reply: Reply) -> int:
        if not await conn.pause(reply.first_delay):
            return 0
        if reply.gate is not None and not await conn.wait_gate(reply.gate):
            return 0
        if reply.drop_after is not None:
            self._update(record, dropped=True, finished=time.monotonic())
            conn.abort()
            return 0
        if reply.error is not None:
            return await self._send_error(conn, reply.error)
        merged: list[dict[str, Any]] = []
        for parts in reply.chunks:
            for part in parts:
                prev = merged[-1] if merged else None
                if prev is not None and set(prev) == {"text"} and set(part) == {"text"}:
                    merged[-1] = {"text": prev["text"] + part["text"]}
                else:
                    merged.append(dict(part))
        parts_out = merged if (merged or reply.prompt_feedback is None) else None
        if parts_out is not None and not parts_out:
            parts_out = [{"text": ""}]
        response_id = f"standin-{next(self._ids)}"
        chars = sum(len(p.get("text") or "") for p in merged if not p.get("thought"))
        body = self._response(record, reply, parts_out, True, len(reply.chunks), chars, response_id)
        return await self._send_json(conn, body)

    def _default_reply(self, record: StandInRequest) -> Reply:
        config = record.generation_config
        mime = config.get("responseMimeType") or config.get("response_mime_type")
        schema = (
            config.get("responseSchema")
            or config.get("response_schema")
            or config.get("responseJsonSchema")
            or config.get("response_json_schema")
        )
        if mime == "application/json":
            obj = example_from_schema(schema) if isinstance(schema, dict) else {}
            return json_reply(obj, pieces=3)
        words = record.last_user_text.split()[:8]
        text = (
            f"This is the stand-in's reply to: {' '.join(words)}. "
            "It arrives in a few chunks, like a real model's answer."
        )
        pieces = text.split(" ")
        size = -(-len(pieces) // 4)
        chunks = [" ".join(pieces[i : i + size]) + " " for i in range(0, len(pieces), size)]
        chunks[-1] = chunks[-1].rstrip()
        return text_stream(chunks)
