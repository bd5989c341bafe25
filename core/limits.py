"""Request body limits, applied by an ASGI wrapper before Django reads a byte of the body.

Django's ASGI handler reads the whole body (into a temporary file) before it creates the request,
and only `request.body` compares its size with `DATA_UPLOAD_MAX_MEMORY_SIZE`: a 50 MiB body was
received in full before its 413. `BodySizeLimit` answers first:

- a declared `Content-Length` over the limit: 413 at once, nothing read;
- a chunked body (`Transfer-Encoding: chunked`, no length): read until it passes the limit, then
  413 without reading the rest. A chunked body within the limit is handed on with a
  `Content-Length` header: DRF reads a body only when `CONTENT_LENGTH` says there is one
  (`rest_framework.request.Request._load_stream`), so chunked bodies were parsed as empty (a
  chunked POST of a title created "New conversation").

The 413 is the API's JSON error (`request_too_large`) with `Connection: close`, so that the server
stops receiving the rest of the body rather than reading it to throw away.

The rule (`body_limit`): `CHAT_MAX_REQUEST_BYTES` (default 32 MiB) for the paths that carry files,
the chat stream (attachments as data: URLs) and the attachment upload, with or without a trailing
slash and below them; `MAX_REQUEST_BYTES` (default 1 MiB) everywhere else."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

Scope = dict[str, Any]
Message = dict[str, Any]

#: Paths (and everything below them) whose bodies may carry files: CHAT_MAX_REQUEST_BYTES.
FILE_BODY_PATHS = ("/api/chat/stream", "/api/chat/attachments")


def body_limit(path: str) -> int:
    """The largest request body accepted on `path`, in bytes."""
    if any(path == prefix or path.startswith(prefix + "/") for prefix in FILE_BODY_PATHS):
        return settings.CHAT_MAX_REQUEST_BYTES
    return settings.MAX_REQUEST_BYTES


class BodySizeLimit:
    """ASGI middleware: refuses HTTP request bodies over `body_limit(path)` with a 413 before they
    are read whole, and gives chunked bodies a `Content-Length` (see the module's docstring)."""

    def __init__(self, app, *, limit_for=body_limit):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        chunked = declared = None
        for name, value in scope["headers"]:
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length":
                declared = value
        if chunked:
            return await self._buffered(scope, receive, send, limit)
        if declared is not None and _int(declared) > limit:
            return await _refuse(scope, send, limit)
        # A declared length within the limit (the server delivers no more than it) or no body.
        return await self.app(scope, receive, send)

    async def _buffered(self, scope: Scope, receive, send, limit: int) -> None:
        # Hand-written rather than left to Django: Django buffers the whole body anyway before
        # the view runs (ASGIHandler.read_body), but without a limit and without a length.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before its body was complete: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _refuse(scope, send, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        headers = [
            (name, value)
            for name, value in scope["headers"]
            if name not in (b"transfer-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(body)).encode("latin-1")))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, for streaming views

        await self.app(dict(scope, headers=headers), replay, send)


def _int(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        return 0  # the server's HTTP parser refuses an invalid Content-Length before this


async def _refuse(scope: Scope, send, limit: int) -> None:
    # Imported here: chatbackend.asgi imports this module before Django is set up.
    from .errors import error_body

    body = json.dumps(
        error_body(
            "request_too_large",
            "The request body is too large.",
            {"limitBytes": limit},
        )
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"connection", b"close"),
    ]
    # django-cors-headers does not see this response: without its header a browser on
    # FRONTEND_URL could not read the error.
    origin = dict(scope["headers"]).get(b"origin", b"").decode("latin-1")
    if origin and origin in settings.CORS_ALLOWED_ORIGINS:
        headers += [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"origin"),
        ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
