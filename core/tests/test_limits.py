"""Request bodies over the limit are refused before they are read whole, and chunked bodies are
read as bodies (issue 10, #10 and #16; core.limits.BodySizeLimit in chatbackend.asgi)."""

import json
import socket

import httpx
import pytest

from chat.models import Conversation
from conftest import bearer
from core.limits import BodySizeLimit, body_limit

MiB = 1024 * 1024


# --- the wrapper itself, driven as the ASGI server drives it ----------------------------------
class Client:
    """Plays the server's side of one request: body messages on demand, responses recorded."""

    def __init__(self, *chunks: bytes, disconnect_after=True):
        self.messages = [
            {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
            for i, chunk in enumerate(chunks)
        ]
        if disconnect_after:
            self.messages.append({"type": "http.disconnect"})
        self.received = 0
        self.sent: list[dict] = []

    async def receive(self):
        self.received += 1
        return self.messages.pop(0)

    async def send(self, message):
        self.sent.append(message)

    @property
    def status(self):
        return self.sent[0]["status"] if self.sent else None

    def json(self):
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


class App:
    """The wrapped application: records what it was given and reads the whole body."""

    def __init__(self):
        self.scope = None
        self.messages: list[dict] = []

    async def __call__(self, scope, receive, send):
        self.scope = scope
        while True:
            message = await receive()
            self.messages.append(message)
            if not message.get("more_body"):
                break
        self.after_body = await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def scope(path="/api/auth/token/", **headers):
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def limited(app, limit=1000):
    return BodySizeLimit(app, limit_for=lambda path: limit)


async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body():
    app, client = App(), Client(b"x" * 600, b"x" * 600)
    await limited(app)(scope(content_length="1200"), client.receive, client.send)

    assert client.status == 413
    assert client.received == 0
    assert app.scope is None
    assert dict(client.sent[0]["headers"])[b"connection"] == b"close"
    assert client.json() == {
        "error": {
            "code": "request_too_large",
            "message": "The request body is too large.",
            "details": {"limitBytes": 1000},
        }
    }


async def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit():
    app, client = App(), Client(*[b"x" * 400] * 10)
    await limited(app)(scope(transfer_encoding="chunked"), client.receive, client.send)

    assert client.status == 413
    assert client.received == 3  # 400, 800, 1200 > 1000: the other seven chunks are never read
    assert app.scope is None
    assert client.json()["error"]["code"] == "request_too_large"


async def test_a_chunked_body_within_the_limit_is_handed_on_whole_with_its_length():
    app, client = App(), Client(b'{"title": ', b'"Chunked"}')
    await limited(app)(
        scope(transfer_encoding="chunked", content_type="application/json"),
        client.receive,
        client.send,
    )

    assert client.status == 200
    headers = dict(app.scope["headers"])
    assert headers[b"content-length"] == b"20"
    assert b"transfer-encoding" not in headers
    assert headers[b"content-type"] == b"application/json"
    assert app.messages == [
        {"type": "http.request", "body": b'{"title": "Chunked"}', "more_body": False}
    ]
    # After the body, the app still hears the client leave (streaming views listen for it).
    assert app.after_body == {"type": "http.disconnect"}


async def test_a_declared_length_within_the_limit_passes_untouched():
    app, client = App(), Client(b"x" * 1000)
    request = scope(content_length="1000")
    await limited(app)(request, client.receive, client.send)
    assert client.status == 200
    assert app.scope is request
    assert app.messages[0]["body"] == b"x" * 1000


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        ("/api/chat/stream/", "CHAT_MAX_REQUEST_BYTES"),
        ("/api/chat/stream", "CHAT_MAX_REQUEST_BYTES"),
        ("/api/chat/attachments/", "CHAT_MAX_REQUEST_BYTES"),
        ("/api/chat/conversations/", "MAX_REQUEST_BYTES"),
        ("/api/chat/streamy/", "MAX_REQUEST_BYTES"),
        ("/api/auth/token/", "MAX_REQUEST_BYTES"),
        ("/api/agents/sequential/", "MAX_REQUEST_BYTES"),
    ],
)
def test_the_limit_of_each_path(settings, path, setting):
    settings.MAX_REQUEST_BYTES = 111
    settings.CHAT_MAX_REQUEST_BYTES = 222
    assert body_limit(path) == getattr(settings, setting)


# --- through a real uvicorn server ------------------------------------------------------------
def chunks(total: int, sent: list[int], size: int = 64 * 1024):
    """A body of `total` bytes sent chunked (httpx does for a generator); `sent` counts them."""
    while sent[0] < total:
        piece = min(size, total - sent[0])
        sent[0] += piece
        yield b"x" * piece


@pytest.mark.django_db(transaction=True)
def test_a_chunked_post_of_a_title_creates_that_title(live_server_url, user):
    def body():
        yield b'{"title": "Sent'
        yield b' in chunks"}'

    response = httpx.post(
        f"{live_server_url}/api/chat/conversations/",
        content=body(),
        headers={"Authorization": bearer(user), "Content-Type": "application/json"},
    )

    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "Sent in chunks"
    assert list(Conversation.objects.values_list("title", flat=True)) == ["Sent in chunks"]


def test_a_50_mib_declared_body_is_refused_before_any_of_it_is_sent(live_server_url):
    host, port = live_server_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):  # the server answers, then closes: no body sent at all
            answer += chunk

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_a_50_mib_chunked_body_is_refused_without_being_received_whole(live_server_url):
    sent = [0]
    response = httpx.post(
        f"{live_server_url}/api/auth/token/",
        content=chunks(50 * MiB, sent),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )

    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "request_too_large",
        "message": "The request body is too large.",
        "details": {"limitBytes": MiB},
    }
    # The limit is 1 MiB; what else left the client sat in socket buffers when the server closed.
    assert sent[0] < 16 * MiB


@pytest.mark.django_db(transaction=True)
def test_the_chat_stream_accepts_a_body_over_the_json_limit(live_server_url, user):
    """2 MiB: over MAX_REQUEST_BYTES, within CHAT_MAX_REQUEST_BYTES. The view sees it (and refuses
    a message that long for its own reason), where any other endpoint answers 413."""
    body = json.dumps({"message": "x" * (2 * MiB)})
    headers = {"Authorization": bearer(user), "Content-Type": "application/json"}

    stream = httpx.post(f"{live_server_url}/api/chat/stream/", content=body, headers=headers)
    other = httpx.post(f"{live_server_url}/api/chat/conversations/", content=body, headers=headers)

    assert stream.status_code == 400
    assert stream.json()["error"]["code"] == "invalid_request"
    assert other.status_code == 413
    assert other.json()["error"]["code"] == "request_too_large"


async def test_the_413_is_readable_by_the_frontend(settings):
    """django-cors-headers never sees this response: the wrapper adds the header itself."""
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    allowed, other = Client(), Client()
    await limited(App())(
        scope(content_length="5000", origin="https://app.example"), allowed.receive, allowed.send
    )
    await limited(App())(
        scope(content_length="5000", origin="https://evil.example"), other.receive, other.send
    )

    assert (
        dict(allowed.sent[0]["headers"])[b"access-control-allow-origin"] == b"https://app.example"
    )
    assert b"access-control-allow-origin" not in dict(other.sent[0]["headers"])
