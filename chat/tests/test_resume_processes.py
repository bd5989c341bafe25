"""Generations outlive their request, across processes: two uvicorn workers A and B on one
PostgreSQL and one Redis, Gemini played by the stand-in (held after its first chunk by a gate).
A reply started on A is resumed on B by the Vercel AI SDK's own client
(`DefaultChatTransport.reconnectToStream`, tests/ai_sdk/resume_client.mjs), joined midway on B,
stopped from B; an idle chat answers 204; with CHAT_ON_DISCONNECT=cancel a process stops the reply
its client left."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chat.models import Conversation, Message
from conftest import bearer
from tests.fixtures_gemini import STANDIN_TITLE, TITLE_MODEL
from tests.gemini_standin import text_stream
from tests.live_server import ServerProcess, standin_server_env
from tests.polling import eventually
from tests.require import require, required_redis_url
from tests.sse import iter_frames
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

SDK_DIR = Path(__file__).resolve().parents[2] / "tests" / "ai_sdk"
#: This run's generations in Redis (GENERATION_KEY_PREFIX of both servers), removed at the end.
KEY_PREFIX = f"resume-test-{uuid.uuid4().hex[:12]}"
FIRST, SECOND, LAST = "The first part. ", "The second part. ", "The end."
WHOLE = FIRST + SECOND + LAST


# --- Environment ----------------------------------------------------------------------------------


def server_env(standin_url: str, **overrides: str) -> dict[str, str]:
    from django.db import connection

    require(
        connection.vendor == "postgresql",
        "needs PostgreSQL (DATABASE_URL): the two workers share one database server",
    )
    return standin_server_env(
        standin_url,
        REDIS_URL=required_redis_url(
            "two server processes share running replies only through Redis"
        ),
        GENERATION_KEY_PREFIX=KEY_PREFIX,
        **overrides,
    )


@pytest.fixture(scope="module")
def workers(
    django_db_setup, gemini_standin_server
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Workers A and B (CHAT_ON_DISCONNECT=continue), shared by this module's tests: each test has
    its own user, chat and reply, and waits for its reply to end."""
    env = server_env(gemini_standin_server.base_url, CHAT_ON_DISCONNECT="continue")
    a, b = ServerProcess(env), ServerProcess(env)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()
        import redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        keys = list(client.scan_iter(f"{KEY_PREFIX}:*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def gate(transactional_db):
    """Holds the stand-in's reply after its first chunk; released at teardown whatever happens.
    Then waits until no reply is left streaming: a worker saving one while the test's tables are
    flushed would deadlock the flush (and every later test would find the previous one's rows)."""
    event = threading.Event()
    yield event
    event.set()
    eventually(lambda: not Message.objects.filter(status=Message.Status.STREAMING).exists())


@pytest.fixture
def held_reply(gemini_standin, gate):
    """The stand-in's next reply: FIRST, then (once `gate` is set) SECOND and LAST."""
    gemini_standin.enqueue(text_stream([FIRST, SECOND, LAST], gate=gate))
    return gemini_standin


# --- Helpers --------------------------------------------------------------------------------------


def use_chat_post(client: httpx.Client, user, chat_id: str, text: str):
    """The request useChat's DefaultChatTransport sends for a new message."""
    return client.stream(
        "POST",
        "/api/chat/stream",
        json={
            "id": chat_id,
            "messages": [{"id": "m-1", "role": "user", "parts": [{"type": "text", "text": text}]}],
            "trigger": "submit-message",
        },
        headers={"Authorization": bearer(user)},
    )


def read_until_first_delta(frames: Iterator[Any]) -> list[Any]:
    """The frames up to and including the first text delta."""
    read = []
    for frame in frames:
        read.append(frame)
        if frame != "[DONE]" and frame["type"] == "text-delta":
            return read
    raise AssertionError(f"the stream ended before any text: {read}")


def deltas(frames: list[Any]) -> str:
    return "".join(f["delta"] for f in frames if f != "[DONE]" and f["type"] == "text-delta")


def wait_until_mirrored(reply_id: str) -> None:
    """Wait until the owning worker has announced the reply in Redis (its first flush, moments
    after the first frame): only then can another worker find it."""
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    live = f"{KEY_PREFIX}:{reply_id}:live"
    assert eventually(lambda: client.exists(live) == 1, timeout_s=5), f"{live} never written"


def model_request(standin):
    [request] = standin.requests_for("streamGenerateContent")
    return request


class ResumeClient:
    """tests/ai_sdk/resume_client.mjs in a process of its own; its output lines are read by a
    thread into a queue, so the test waits on them with a deadline."""

    def __init__(self, api: str, user, chat_id: str):
        require(
            shutil.which("node") is not None and (SDK_DIR / "node_modules" / "ai").exists(),
            "needs Node.js and the AI SDK: run `npm ci --prefix tests/ai_sdk`",
        )
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            ["node", "resume_client.mjs", api, bearer(user).removeprefix("Bearer "), chat_id],
            cwd=SDK_DIR,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, timeout_s: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"resume_client.mjs said nothing for {timeout_s}s") from None
        if line is None:
            self.process.wait(10)
            self._stderr.seek(0)
            raise AssertionError(f"resume_client.mjs ended early:\n{self._stderr.read().decode()}")
        return json.loads(line)

    def wait_for_chunk(self, predicate: Callable[[dict], bool], timeout_s: float = 20) -> None:
        """Return once the SDK has read a chunk that satisfies `predicate`."""
        while True:
            line = self._next(timeout_s)
            assert "chunk" in line, f"the stream ended first: {line}"
            if predicate(line["chunk"]):
                return

    def result(self, timeout_s: float = 20) -> dict[str, Any]:
        """The last line: {"resumed", "chunks", "message", "errors"}."""
        while "chunk" in (line := self._next(timeout_s)):
            pass
        assert self.process.wait(10) == 0
        return line

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._stderr.close()


@pytest.fixture
def resume_clients():
    """Starts resume_client.mjs processes; kills any left running at teardown."""
    started: list[ResumeClient] = []

    def start(api: str, user, chat_id: str) -> ResumeClient:
        client = ResumeClient(api, user, chat_id)
        started.append(client)
        return client

    yield start
    for client in started:
        client.close()


# --- 1. Resumed on another worker by the AI SDK ---------------------------------------------------


def test_a_reply_started_on_one_worker_is_resumed_on_the_other_by_the_ai_sdk(
    workers, held_reply, gate, user, resume_clients
):
    a, b = workers
    standin = held_reply
    with httpx.Client(base_url=a.url, timeout=10) as client:
        with use_chat_post(client, user, "resume-1", "Tell me everything") as response:
            assert response.status_code == 200
            seen_on_a = read_until_first_delta(iter_frames(response))
        # The client is gone (closed after its first delta); the model is still held.
    reply_id = seen_on_a[0]["messageId"]
    assert deltas(seen_on_a) == FIRST
    wait_until_mirrored(reply_id)

    sdk = resume_clients(f"{b.url}/api/chat/stream", user, "resume-1")
    # The SDK replays the reply from its start on B: the first delta, sent before it connected.
    sdk.wait_for_chunk(lambda chunk: chunk["type"] == "text-delta")
    assert model_request(standin).finished is None  # still held: the rest can only come live
    gate.set()
    result = sdk.result()

    assert result["errors"] == []
    assert result["resumed"] is True
    assert [c["type"] for c in result["chunks"]] == [
        "start",
        "text-start",
        "text-delta",
        "text-delta",
        "text-delta",
        "text-end",
        "data-title",
        "finish",
    ]
    assert [c["delta"] for c in result["chunks"] if c["type"] == "text-delta"] == [
        FIRST,
        SECOND,
        LAST,
    ]
    message = result["message"]
    assert (message["id"], message["role"]) == (reply_id, "assistant")
    part, title = message["parts"]
    assert (part["type"], part["state"]) == ("text", "done")
    # The title written on A reached the listener on B through Redis.
    assert title == {"type": "data-title", "data": {"title": STANDIN_TITLE}}

    # The text the SDK assembled is the reply stored, complete.
    reply = Message.objects.get(id=reply_id)
    assert (reply.status, reply.content) == (Message.Status.COMPLETE, part["text"])
    assert part["text"] == WHOLE
    assert message["metadata"]["conversationId"] == str(reply.conversation_id)
    assert Conversation.objects.get(id=reply.conversation_id).client_chat_id == "resume-1"
    # One model call, never cut: the drop did not stop it and B did not ask the model again.
    request = model_request(standin)
    assert request.chunks_sent == 3
    assert not request.disconnected


# --- 2. 204 when idle -------------------------------------------------------------------------


def test_a_chat_with_nothing_running_is_204_and_the_ai_sdk_resumes_nothing(
    workers, gemini_standin, user, other_user, resume_clients
):
    a, b = workers
    gemini_standin.enqueue(text_stream(["Done ", "already."]))
    with (
        httpx.Client(base_url=a.url, timeout=10) as client,
        use_chat_post(client, user, "idle-1", "Hi") as response,
    ):
        frames = list(iter_frames(response))
    assert frames[-1] == "[DONE]"
    conversation = Conversation.objects.get(client_chat_id="idle-1")
    assert conversation.messages.get(role="assistant").status == Message.Status.COMPLETE

    result = resume_clients(f"{b.url}/api/chat/stream", user, "idle-1").result()
    assert result == {"resumed": False, "chunks": [], "message": None, "errors": []}

    headers = {"Authorization": bearer(user)}
    for server in (a, b):
        for path in (
            "/api/chat/stream/idle-1/stream",
            f"/api/chat/conversations/{conversation.id}/stream/",
        ):
            response = httpx.get(f"{server.url}{path}", headers=headers, timeout=10)
            assert (response.status_code, response.content) == (204, b""), (server.url, path)
    assert [r.model for r in gemini_standin.requests] == ["gemini-2.5-flash", TITLE_MODEL]

    # Another user's chat is not theirs to resume: 404, which the SDK raises as an error.
    stranger = resume_clients(f"{b.url}/api/chat/stream", other_user, "idle-1").result()
    assert (stranger["resumed"], stranger["chunks"]) == (False, [])
    [error] = stranger["errors"]
    assert json.loads(error.removeprefix("Error: "))["error"]["code"] == "not_found"


# --- 3. Stop from the other worker ---------------------------------------------------------------


def test_stop_on_one_worker_stops_the_reply_running_on_the_other(workers, held_reply, gate, user):
    a, b = workers
    standin = held_reply
    headers = {"Authorization": bearer(user)}
    with (
        httpx.Client(base_url=a.url, timeout=10) as client,
        use_chat_post(client, user, "stop-1", "Tell me everything") as response,
    ):
        frames = iter_frames(response)
        seen = read_until_first_delta(frames)
        reply_id = seen[0]["messageId"]
        conversation_id = seen[0]["messageMetadata"]["conversationId"]
        wait_until_mirrored(reply_id)

        stopped = httpx.post(
            f"{b.url}/api/chat/conversations/{conversation_id}/stop/", headers=headers, timeout=10
        )
        assert (stopped.status_code, stopped.json()) == (200, {"stopped": True})
        # A's client, still reading, sees its reply end (the model is still held by the gate).
        rest = list(frames)

    assert rest == [
        {"type": "text-end", "id": f"text-{reply_id}"},
        {"type": "finish", "finishReason": "other"},
        "[DONE]",
    ]
    reply = Message.objects.get(id=reply_id)
    assert (reply.status, reply.content, reply.finish_reason) == (
        Message.Status.INTERRUPTED,
        FIRST,
        "other",
    )
    # The upstream request was closed, not left to finish.
    assert standin.wait_until(lambda: model_request(standin).finished is not None, timeout=10)
    request = model_request(standin)
    assert request.disconnected
    assert request.chunks_sent == 1
    assert UsageRecord.objects.count() == 0
    again = httpx.post(
        f"{b.url}/api/chat/conversations/{conversation_id}/stop/", headers=headers, timeout=10
    )
    assert again.json() == {"stopped": False}


# --- 4. A second listener joining midway ----------------------------------------------------------


def test_a_listener_joining_midway_on_the_other_worker_gets_the_whole_reply(
    workers, held_reply, gate, user
):
    a, b = workers
    headers = {"Authorization": bearer(user)}
    with (
        httpx.Client(base_url=a.url, timeout=10) as on_a,
        httpx.Client(base_url=b.url, timeout=10) as on_b,
        use_chat_post(on_a, user, "tabs-1", "Tell me everything") as first_tab,
    ):
        first_frames = iter_frames(first_tab)
        first_seen = read_until_first_delta(first_frames)
        reply_id = first_seen[0]["messageId"]
        conversation_id = first_seen[0]["messageMetadata"]["conversationId"]
        wait_until_mirrored(reply_id)

        with on_b.stream(
            "GET", f"/api/chat/conversations/{conversation_id}/stream/", headers=headers
        ) as second_tab:
            assert second_tab.status_code == 200
            assert second_tab.headers["content-type"].startswith("text/event-stream")
            second_frames = iter_frames(second_tab)
            second_seen = read_until_first_delta(second_frames)  # joined midway: from `start`
            gate.set()
            second_seen += list(second_frames)
        first_seen += list(first_frames)

    assert second_seen == first_seen
    assert first_seen[0]["type"] == "start"
    assert (first_seen[-2]["type"], first_seen[-2]["finishReason"]) == ("finish", "stop")
    assert first_seen[-1] == "[DONE]"
    assert deltas(second_seen) == WHOLE
    reply = Message.objects.get(id=reply_id)
    assert (reply.status, reply.content) == (Message.Status.COMPLETE, WHOLE)


# --- 5. CHAT_ON_DISCONNECT=cancel in a process ----------------------------------------------------


def test_with_cancel_a_worker_interrupts_the_reply_its_client_left(held_reply, user):
    standin = held_reply
    with ServerProcess(server_env(standin.base_url, CHAT_ON_DISCONNECT="cancel")) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            with use_chat_post(client, user, "cancel-1", "Tell me everything") as response:
                assert response.status_code == 200
                reply_id = read_until_first_delta(iter_frames(response))[0]["messageId"]
            # The client has left, the model is held: the worker cancels the upstream request.
            assert standin.wait_until(lambda: model_request(standin).disconnected, timeout=10), (
                server.log()
            )
            assert eventually(
                lambda: Message.objects.get(id=reply_id).status != Message.Status.STREAMING
            ), server.log()
            resumed = client.get(
                "/api/chat/stream/cancel-1/stream", headers={"Authorization": bearer(user)}
            )

    reply = Message.objects.get(id=reply_id)
    assert (reply.status, reply.content, reply.finish_reason) == (
        Message.Status.INTERRUPTED,
        FIRST,
        "other",
    )
    assert model_request(standin).chunks_sent == 1
    assert (resumed.status_code, resumed.content) == (204, b"")
    assert list(reply.conversation.messages.values_list("role", "content")) == [
        ("user", "Tell me everything"),
        ("assistant", FIRST),
    ]
