"""Generations that outlive their request: one per conversation, resends that never bill twice,
resume, stop, disconnects, and replies never left `streaming`."""

import asyncio
import functools
import json
import os
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import AsyncClient
from django.utils import timezone

from chat.generation import sweep_stale_replies
from chat.models import Conversation, Message
from core import db
from tests.fixtures_gemini import TITLE_MODEL
from tests.gemini_standin import text_stream
from tests.polling import eventually_async
from tests.require import require
from usage.models import UsageRecord

from .streams import parse_sse, read_body, stream

#: The model calls of a conversation's first turn: its reply, then its title (chat.titles).
REPLY_AND_TITLE = ["gemini-2.5-flash", TITLE_MODEL]

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("gemini_provider_settings"),
]


def throttle_hop() -> list[str]:
    """The rate limit's count takes a thread hop when it is a Redis round trip; in the
    local-memory cache (no REDIS_URL) it is taken on the event loop."""
    from core.throttling import counted_in_process

    return [] if counted_in_process() else ["run_db(APIView.check_throttles)"]


@pytest.fixture
def client():
    return AsyncClient()


def post(client, headers, body, *, path="/api/chat/stream/", extra=None):
    return client.post(
        path,
        json.dumps(body),
        content_type="application/json",
        headers={"Accept": "text/event-stream", **headers, **(extra or {})},
    )


def deltas(frames):
    return "".join(f["delta"] for f in frames if isinstance(f, dict) and f["type"] == "text-delta")


# --- One generation per conversation ----------------------------------------------------------


async def test_a_second_message_while_a_reply_streams_is_409(client, auth_header, gemini_standin):
    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["Hel", "lo"], gate=gate))
    first = await post(client, auth_header, {"message": "Hi"})
    conversation = await Conversation.objects.aget()
    running = await Message.objects.aget(role="assistant")

    second = await post(
        client, auth_header, {"message": "And another", "conversation_id": str(conversation.id)}
    )
    regenerate = await post(
        client,
        auth_header,
        {"id": str(conversation.id), "messages": [], "trigger": "regenerate-message"},
    )
    gate.set()
    frames = parse_sse(await read_body(first))

    for response in (second, regenerate):
        assert response.status_code == 409
        assert json.loads(response.content)["error"] == {
            "code": "generation_in_progress",
            "message": "A reply is being generated in this conversation; wait for it or stop it.",
            "details": {"replyId": str(running.id)},
        }
    assert deltas(frames) == "Hello"
    assert [m.content async for m in conversation.messages.order_by("position")] == ["Hi", "Hello"]
    assert [r.model for r in gemini_standin.requests] == REPLY_AND_TITLE


async def test_regenerate_with_nothing_to_regenerate_is_400_and_stores_nothing(client, auth_header):
    response, body = await stream(
        client, auth_header, {"id": "chat-new", "messages": [], "trigger": "regenerate-message"}
    )
    assert response.status_code == 400
    assert body["error"]["code"] == "nothing_to_regenerate"
    assert await Conversation.objects.acount() == 0
    assert await Message.objects.acount() == 0


@pytest.mark.parametrize(
    "body",
    [
        {"message": 1e300},
        {"message": 12},
        {"message": ["a"]},
        {"message": "hi", "files": [{"mediaType": 5, "url": "data:,x"}]},
        {
            "id": "c1",
            "messages": [{"id": "m", "role": "user", "parts": [{"type": "text", "text": 7}]}],
        },
        {
            "id": 5,
            "messages": [{"id": "m", "role": "user", "parts": [{"type": "text", "text": "a"}]}],
        },
    ],
)
async def test_numbers_are_not_text(client, auth_header, body):
    response, payload = await stream(client, auth_header, body)
    assert response.status_code == 400
    assert payload["error"]["code"] == "invalid_request"
    assert await Message.objects.acount() == 0


# --- Resends ----------------------------------------------------------------------------------


def _require_postgres():
    require(
        connection.vendor == "postgresql",
        "needs PostgreSQL (DATABASE_URL=postgres://...): SQLite has no row locks",
    )


@pytest.mark.parametrize("continued", [False, True])
async def test_eight_simultaneous_resends_make_one_reply_one_call_one_bill(
    client, auth_header, user, gemini_standin, continued
):
    _require_postgres()
    body = {"message": "Once only"}
    if continued:
        conversation = await Conversation.objects.acreate(user=user, title="t")
        body["conversation_id"] = str(conversation.id)
    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["One ", "reply"], gate=gate))
    key = {"Idempotency-Key": "resend-1"}

    async def send():
        return await post(client, auth_header, body, extra=key)

    tasks = [asyncio.ensure_future(send()) for _ in range(8)]
    assert await gemini_standin.wait_for(lambda: len(gemini_standin.requests) >= 1)
    gate.set()
    responses = await asyncio.gather(*tasks)
    bodies = [parse_sse(await read_body(r)) for r in responses]

    assert [r.status_code for r in responses] == [200] * 8
    assert all(deltas(frames) == "One reply" for frames in bodies), bodies
    assert await Conversation.objects.acount() == 1
    assert [m.role async for m in Message.objects.order_by("position")] == ["user", "assistant"]
    assert [r.model for r in gemini_standin.requests] == REPLY_AND_TITLE
    assert await UsageRecord.objects.filter(endpoint="chat").acount() == 1
    assert await UsageRecord.objects.filter(endpoint="chat:title").acount() == 1


async def test_eight_simultaneous_new_messages_make_one_turn_and_seven_409s(
    client, auth_header, user, gemini_standin
):
    """Different messages sent at once to one conversation (each continued without a lock on
    PostgreSQL): one is saved and answered, the others are refused with 409 while its reply
    runs, and nothing of theirs is stored."""
    _require_postgres()
    conversation = await Conversation.objects.acreate(user=user, title="t")
    gate = threading.Event()
    # Every model call is held until the gate opens: a second generation could not finish early.
    gated = [text_stream(["One ", "reply"], gate=gate) for _ in range(8)]
    gemini_standin.enqueue_for(REPLY_AND_TITLE[0], *gated)

    async def send(i):
        body = {"message": f"Message {i}", "conversation_id": str(conversation.id)}
        return await post(client, auth_header, body)

    tasks = [asyncio.ensure_future(send(i)) for i in range(8)]
    # The reply is held until all eight are answered (a message sent after it completed would
    # rightly be answered too); two generations would both wait here. The test client returns a
    # streaming response before its body, so the answered one is done as soon as it starts.
    pending = set(tasks)
    while pending:
        done, pending = await asyncio.wait(pending, timeout=30, return_when="FIRST_COMPLETED")
        assert done, "no answer within 30 s"
    gate.set()
    responses = await asyncio.gather(*tasks)

    assert sorted(r.status_code for r in responses) == [200] + [409] * 7
    for response in responses:
        if response.status_code == 409:
            assert json.loads(response.content)["error"]["code"] == "generation_in_progress"
    [answered] = [r for r in responses if r.status_code == 200]
    assert deltas(parse_sse(await read_body(answered))) == "One reply"
    stored = [(m.role, m.position) async for m in Message.objects.order_by("position")]
    assert stored == [("user", 0), ("assistant", 1)]
    await conversation.arefresh_from_db()
    assert conversation.next_position == 2
    assert [r.model for r in gemini_standin.requests] == REPLY_AND_TITLE  # the reply, its title


async def test_a_resend_between_the_save_and_the_generation_start_joins_it(
    client, auth_header, gemini_standin, monkeypatch
):
    """The first request's turn is saved, its generation not started yet: the resend that finds
    the reply streaming waits for that generation in this process (it is not "elsewhere": 409)."""
    from chat import streams

    saved, resend_waiting = asyncio.Event(), asyncio.Event()
    release = asyncio.Event()
    start_generation, started_here = streams.start_generation, streams.started_here

    async def held_start(turn):
        saved.set()
        await release.wait()
        return await start_generation(turn)

    async def observed_wait(reply_id):
        resend_waiting.set()
        await started_here(reply_id)

    monkeypatch.setattr(streams, "start_generation", held_start)
    monkeypatch.setattr(streams, "started_here", observed_wait)
    gemini_standin.enqueue(text_stream(["One ", "reply"]))
    key = {"Idempotency-Key": "between-1"}

    first = asyncio.ensure_future(post(client, auth_header, {"message": "Hi"}, extra=key))
    await asyncio.wait_for(saved.wait(), 30)
    second = asyncio.ensure_future(post(client, auth_header, {"message": "Hi"}, extra=key))
    await asyncio.wait_for(resend_waiting.wait(), 30)
    release.set()
    responses = await asyncio.gather(first, second)

    assert [r.status_code for r in responses] == [200, 200]
    assert [deltas(parse_sse(await read_body(r))) for r in responses] == ["One reply"] * 2
    assert await Message.objects.acount() == 2


async def test_resent_first_message_of_a_new_chat_starts_one_conversation(
    client, auth_header, gemini_standin
):
    gemini_standin.enqueue(text_stream(["Hi ", "there"]))
    key = {"Idempotency-Key": "first-1"}
    bodies = []
    for _ in range(3):
        response = await post(client, auth_header, {"message": "Hello"}, extra=key)
        assert response.status_code == 200
        bodies.append(parse_sse(await read_body(response)))
    assert [deltas(b) for b in bodies] == ["Hi there"] * 3
    assert await Conversation.objects.acount() == 1
    assert await Message.objects.acount() == 2
    assert [r.model for r in gemini_standin.requests] == REPLY_AND_TITLE


async def test_a_resend_while_its_reply_runs_joins_that_generation(
    client, auth_header, gemini_standin
):
    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["Hel", "lo"], gate=gate))
    key = {"Idempotency-Key": "join-1"}
    first = await post(client, auth_header, {"message": "Hi"}, extra=key)
    again = await post(client, auth_header, {"message": "Hi"}, extra=key)
    gate.set()
    one, two = parse_sse(await read_body(first)), parse_sse(await read_body(again))
    assert one == two
    assert deltas(two) == "Hello"
    assert [r.model for r in gemini_standin.requests] == REPLY_AND_TITLE


# --- Resume and stop --------------------------------------------------------------------------


async def test_resume_is_204_when_nothing_runs_and_404_for_strangers(
    client, auth_header, user, other_user
):
    from conftest import bearer

    conversation = await Conversation.objects.acreate(user=user, title="t")
    for path in (
        f"/api/chat/stream/{conversation.id}/stream",
        f"/api/chat/conversations/{conversation.id}/stream/",
    ):
        response = await client.get(path, headers=auth_header)
        assert response.status_code == 204
        assert response.content == b""
        stranger = await client.get(path, headers={"Authorization": bearer(other_user)})
        assert stranger.status_code == 404


async def test_resume_gets_the_whole_reply_from_its_start_then_live(
    client, auth_header, gemini_standin
):
    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["Hel", "lo ", "world"], gate=gate))
    first = await post(
        client,
        auth_header,
        {
            "id": "chat-r",
            "messages": [{"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}],
        },
    )
    joined = await client.get("/api/chat/stream/chat-r/stream", headers=auth_header)
    assert joined.status_code == 200
    assert joined["Content-Type"] == "text/event-stream"
    gate.set()
    original, resumed = parse_sse(await read_body(first)), parse_sse(await read_body(joined))
    assert resumed == original
    assert resumed[0]["type"] == "start"
    assert resumed[-1] == "[DONE]"
    assert deltas(resumed) == "Hello world"
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.content) == ("complete", "Hello world")


async def test_stop_saves_the_partial_reply_interrupted_and_closes_upstream(
    client, auth_header, gemini_standin
):
    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["Partial ", "never"], gate=gate))
    first = await post(client, auth_header, {"message": "Hi"})
    conversation = await Conversation.objects.aget()

    stopped = await client.post(
        f"/api/chat/conversations/{conversation.id}/stop/", headers=auth_header
    )
    frames = parse_sse(await read_body(first))
    again = await client.post(
        f"/api/chat/conversations/{conversation.id}/stop/", headers=auth_header
    )
    gate.set()

    assert stopped.status_code == 200
    assert json.loads(stopped.content) == {"stopped": True}
    assert json.loads(again.content) == {"stopped": False}
    reply = await Message.objects.aget(role="assistant")
    assert (reply.status, reply.content) == ("interrupted", "Partial ")
    assert frames[-2:] == [{"type": "finish", "finishReason": "other"}, "[DONE]"]
    assert await gemini_standin.wait_for(lambda: gemini_standin.requests[0].finished is not None)
    assert gemini_standin.requests[0].disconnected
    assert await UsageRecord.objects.acount() == 0


# --- Never left streaming ---------------------------------------------------------------------


def test_sweep_interrupts_only_replies_whose_generation_stopped_beating(user):
    conversation = Conversation.objects.create(user=user, title="t")
    now = timezone.now()
    dead = Message.objects.create(
        conversation=conversation,
        position=0,
        role="assistant",
        status="streaming",
        content="checkpointed",
        heartbeat_at=now - timedelta(seconds=90),
    )
    other = Conversation.objects.create(user=user, title="u")
    alive = Message.objects.create(
        conversation=other,
        position=0,
        role="assistant",
        status="streaming",
        heartbeat_at=now - timedelta(seconds=5),
    )

    assert sweep_stale_replies(now - timedelta(seconds=30)) == 1

    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.content) == ("interrupted", "checkpointed")
    assert alive.status == "streaming"


def test_one_streaming_reply_per_conversation_is_a_database_rule(user):
    from django.db import IntegrityError, transaction

    conversation = Conversation.objects.create(user=user, title="t")
    Message.objects.create(
        conversation=conversation, position=0, role="assistant", status="streaming"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(
            conversation=conversation, position=1, role="assistant", status="streaming"
        )


async def test_trailing_slash_is_optional_and_never_a_redirect(client, auth_header, gemini_standin):
    gemini_standin.enqueue(text_stream(["ok"]))
    response = await post(client, auth_header, {"message": "Hi"}, path="/api/chat/stream")
    assert response.status_code == 200
    assert deltas(parse_sse(await read_body(response))) == "ok"


async def test_patch_system_prompt_reaches_the_model(client, auth_header, user, gemini_standin):
    conversation = await Conversation.objects.acreate(user=user, title="t")
    response = await client.patch(
        f"/api/chat/conversations/{conversation.id}/",
        json.dumps({"system_prompt": "Answer in French."}),
        content_type="application/json",
        headers=auth_header,
    )
    assert response.status_code == 200
    gemini_standin.enqueue(text_stream(["Bonjour"]))
    response, _ = await stream(
        client, auth_header, {"message": "Hi", "conversation_id": str(conversation.id)}
    )
    assert response.status_code == 200
    chat_request = gemini_standin.requests_for("streamGenerateContent")[-1]
    assert chat_request.system_instruction == "Answer in French."
    changed = await client.patch(
        f"/api/chat/conversations/{conversation.id}/",
        json.dumps({"system_prompt": "Answer in German."}),
        content_type="application/json",
        headers=auth_header,
    )
    assert changed.status_code == 200
    system = [m.content async for m in conversation.messages.filter(role="system")]
    assert system == ["Answer in German."]


# --- What a turn costs: statements and thread hops (only a regression changes these) -----------


class StatementList(list):
    full: list[str]


@pytest.fixture
def statements(monkeypatch):
    """Every SQL statement run, in order, by its first word: through Django's connections (in
    any thread) and on the event loop (`core.adb`), and each transaction's BEGIN and COMMIT:
    each one a round trip to the database. (psycopg sends BEGIN itself before a transaction's
    first statement: counted when Django turns autocommit off for it.)"""
    from django.db.backends import utils
    from django.db.backends.base.base import BaseDatabaseWrapper

    from core import adb

    seen = StatementList()
    full: list[str] = []
    lock = threading.Lock()
    original = utils.CursorWrapper._execute
    original_autocommit = BaseDatabaseWrapper.set_autocommit
    original_commit = BaseDatabaseWrapper.commit

    def record(word: str, sql: str = "") -> None:
        with lock:
            seen.append(word)
            full.append(sql or word)

    def counting(self, sql, params, *ignored_wrappers):
        record(sql.split()[0].upper(), sql)
        return original(self, sql, params, *ignored_wrappers)

    original_on_loop = adb._execute_on

    async def on_loop(cursor, statement):
        record(statement.sql.split()[0].upper(), statement.sql)
        return await original_on_loop(cursor, statement)

    def autocommit(self, autocommit, *args, **kwargs):
        if not autocommit and self.vendor == "postgresql":
            record("BEGIN")
        return original_autocommit(self, autocommit, *args, **kwargs)

    def commit(self):
        record("COMMIT")
        return original_commit(self)

    monkeypatch.setattr(utils.CursorWrapper, "_execute", counting)
    monkeypatch.setattr(BaseDatabaseWrapper, "set_autocommit", autocommit)
    monkeypatch.setattr(BaseDatabaseWrapper, "commit", commit)
    monkeypatch.setattr(adb, "_execute_on", on_loop)
    seen.full = full
    return seen


def one_statement(*words: str) -> list[str]:
    """Statements PostgreSQL runs as one (a data-modifying WITH); SQLite, as they are in a
    transaction."""
    if connection.vendor == "postgresql":
        return ["WITH"]
    if words[0] == "UPDATE":  # the reply's save and its usage: a transaction of their own
        return ["BEGIN", *words, "COMMIT"]
    return list(words)


def continued_start() -> list[str]:
    """What saves a new message in an existing conversation: the conversation (its user active),
    its messages, then the two new messages and the conversation's position. PostgreSQL: two
    statements (the conversation with its messages; the writes) and no transaction (each is
    atomic by itself); SQLite: a transaction."""
    if connection.vendor == "postgresql":
        return ["WITH", "WITH"]
    return ["BEGIN", "SELECT", "SELECT", "INSERT", "UPDATE", "COMMIT"]


async def test_statements_per_turn(client, auth_header, user, gemini_standin, statements):
    gemini_standin.enqueue(text_stream(["a", "b"]), text_stream(["c"]))
    response, _ = await stream(
        client, auth_header, {"message": "New"}, extra_headers={"Idempotency-Key": "k1"}
    )
    assert response.status_code == 200
    new_conversation = list(statements)
    statements.clear()
    conversation = await Conversation.objects.aget()
    statements.clear()
    body = {"message": "Next", "conversation_id": str(conversation.id)}
    await stream(client, auth_header, body)
    continued = list(statements)
    statements.clear()
    await stream(
        client, auth_header, body | {"message": "Next"}, extra_headers={"Idempotency-Key": "k1"}
    )
    resend_of_first = list(statements)

    reply_and_usage = one_statement("UPDATE", "INSERT")
    title_and_usage = (
        ["WITH"]
        if connection.vendor == "postgresql"
        else [
            "BEGIN",
            "INSERT",
            "UPDATE",
            "COMMIT",
        ]
    )
    if connection.vendor == "postgresql":
        # the conversation and both messages, if the user is active: one statement; then the
        # reply and its usage; then the title and its usage.
        start = ["WITH"]
    else:
        # in one transaction: the conversation by first-message key; the user check;
        # SAVEPOINT, INSERT conversation, INSERT both messages, RELEASE.
        start = ["BEGIN", "SELECT", "SELECT", "SAVEPOINT", "INSERT", "INSERT", "RELEASE", "COMMIT"]
    assert new_conversation == [*start, *reply_and_usage, *title_and_usage]
    # the conversation (its user active); its messages (history, running or resent message);
    # the two new messages and the conversation's position; then the reply and its usage.
    assert continued == [*continued_start(), *reply_and_usage]
    # the conversation; its messages (the resent one and its reply among them); the stored
    # reply's parts. Nothing written, and on PostgreSQL nothing locked.
    if connection.vendor == "postgresql":
        assert resend_of_first == ["WITH", "SELECT"]
    else:
        assert resend_of_first == ["BEGIN", "SELECT", "SELECT", "SELECT", "COMMIT"]


async def test_statements_per_continued_turn_do_not_grow_with_the_history(
    client, auth_header, user, gemini_standin, statements, thread_hops
):
    """A conversation of 4 messages and one of 80 (with files, reasoning and sources) are
    continued with the same statements, and the same SQL: nothing is read per message."""
    from asgiref.sync import sync_to_async

    from .histories import seed_conversations

    short, long = await sync_to_async(
        lambda: [seed_conversations([user], 1, n)[0][0] for n in (4, 80)]
    )()
    seen = {}
    for name, conversation_id in (("short", short), ("long", long)):
        gemini_standin.enqueue(text_stream(["ok"]))
        statements.clear()
        statements.full.clear()
        thread_hops.clear()
        response, _ = await stream(
            client, auth_header, {"message": "Next", "conversation_id": conversation_id}
        )
        assert response.status_code == 200
        seen[name] = (list(statements), list(statements.full))
        # The history's image is read in the turn's burst (SQLite), or, once the turn's
        # statements ran on the event loop (PostgreSQL), in a thread (`aread_file_parts`, whose
        # hops concurrent turns share): no query of its own.
        assert [hop for hop in thread_hops if hop.startswith("run_db")] == (
            [*throttle_hop(), "run_db(_read_each)"]
            if connection.vendor == "postgresql"
            else [*throttle_hop(), "run_db(start_turn_with_files)", "run_db(run_step)"]
        ), name
    # ... and the history's files (both carry one image, read once): PostgreSQL reads their
    # attachments with the history, SQLite with one more statement.
    files = [] if connection.vendor == "postgresql" else ["SELECT"]
    assert seen["short"][0] == [
        *continued_start(),
        *files,
        *one_statement("UPDATE", "INSERT"),
    ]
    assert seen["long"] == seen["short"]
    # The history of the long one reached the model whole: 80 stored messages and the new one.
    first_request = gemini_standin.requests[-1].body
    assert len(first_request["contents"]) == 81

    # The next turn finds the history's image in this process's recent files: no statement for
    # it, and the same bytes reach the model with the same turn.
    gemini_standin.enqueue(text_stream(["ok"]))
    statements.clear()
    await stream(client, auth_header, {"message": "Again", "conversation_id": long})
    assert list(statements) == [
        *continued_start(),
        *one_statement("UPDATE", "INSERT"),
    ]
    again = gemini_standin.requests[-1].body["contents"]
    assert len(again) == 83
    assert (
        again[0]["parts"][0]["inlineData"] == first_request["contents"][0]["parts"][0]["inlineData"]
    )


@pytest.fixture
def thread_hops(monkeypatch):
    """Every job handed to a thread pool (sync_to_async, run_db, run_in_executor), in order."""
    from concurrent.futures import ThreadPoolExecutor

    hops: list[str] = []
    original = ThreadPoolExecutor.submit

    def name(fn, args) -> str:
        while isinstance(fn, functools.partial):
            fn, args = fn.func, fn.args
        if getattr(fn, "__qualname__", "") == "Context.run" and args:
            return name(args[0], args[1:])
        if getattr(fn, "__name__", "") == "_call_then_release" and args:
            return f"run_db({name(args[0], ())})"
        if getattr(fn, "__qualname__", "") == "SyncToAsync.thread_handler" and len(args) > 4:
            return f"sync_to_async({name(args[4], ())})"
        return getattr(fn, "__qualname__", repr(fn))

    def counting(self, fn, /, *args, **kwargs):
        hops.append(name(fn, args))
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", counting)
    return hops


async def test_thread_hops_before_the_first_token(auth_header, gemini_standin, thread_hops):
    """The hops a chat turn makes before its first text reaches the client, and the threads it
    starts, through the ASGI application as uvicorn calls it."""
    from bench.turn_cost import turn
    from chatbackend.asgi import application, no_hop_when_requests_start

    # As at start-up (Django's sync test client connects close_old_connections again).
    no_hop_when_requests_start()
    gemini_standin.enqueue(text_stream(["warm"]))
    token = auth_header["Authorization"].removeprefix("Bearer ")
    await turn(application, token)  # warm-up: pools and clients made, files indexed
    # A database thread goes back to idle only after its last call's result reached the loop: a
    # hop made before that would start a second thread. Not what is measured here.
    executor = db._shared_executor()

    async def threads_idle() -> bool:
        return executor._idle_semaphore._value >= len(executor._threads)

    assert await eventually_async(threads_idle)

    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["first", " second"], gate=gate))
    thread_hops.clear()
    hops_at_first_text: list[str] = []
    started_threads = []
    original_start = threading.Thread.start

    def first_text():
        hops_at_first_text.extend(thread_hops)
        gate.set()

    def counting_start(thread):
        started_threads.append(thread.name)
        return original_start(thread)

    threading.Thread.start = counting_start
    try:
        await turn(application, token, first_text)
    finally:
        threading.Thread.start = original_start

    # No thread started for the request (its sync code shares a long-lived one).
    assert started_threads == []
    # The test settings' SERVESTATIC_AUTOREFRESH looks each path up in a thread; production
    # settings do not (their static files are indexed at start-up).
    hops = [hop for hop in hops_at_first_text if hop != "ServeStaticBase.find_file"]
    # The rate limit's count when it is a Redis round trip (a local-memory count is taken on the
    # loop) and, on SQLite, the turn's database burst. On PostgreSQL the turn's statements run on
    # the event loop. No middleware hook, no authentication, no signal receiver.
    throttle = throttle_hop()
    if connection.vendor == "postgresql":
        assert hops == throttle
    else:
        assert hops == [*throttle, "run_db(start_turn_with_files)"]
    # And to its end: on SQLite the reply's save and its title's. Closing the response
    # (request_finished) runs inline.
    hops = [hop for hop in thread_hops if hop != "ServeStaticBase.find_file"]
    if connection.vendor == "postgresql":
        assert hops == throttle
    else:
        assert hops == [*throttle, "run_db(start_turn_with_files)", *["run_db(run_step)"] * 2]


async def test_a_turn_without_rate_limits_makes_no_thread_hop_on_postgresql(
    auth_header, gemini_standin, thread_hops, settings
):
    """PostgreSQL, rate limits off (as the benchmarks run): a new conversation's turn, its
    reply's save and its title's run on the event loop, from the request to its last frame;
    and they build their statements without `django.db.connection`, which on the loop is a
    database wrapper made for each new task (the request's, the generation's)."""
    _require_postgres()
    from asgiref.sync import sync_to_async
    from django.db.backends.base.base import BaseDatabaseWrapper

    from bench.turn_cost import turn
    from chatbackend.asgi import application, no_hop_when_requests_start

    no_hop_when_requests_start()
    settings.CHAT_RATE_LIMIT = "0"
    token = auth_header["Authorization"].removeprefix("Bearer ")
    gemini_standin.enqueue(text_stream(["warm"]))
    await turn(application, token)
    gemini_standin.enqueue(text_stream(["Hello"]))
    thread_hops.clear()
    wrappers = []
    made = BaseDatabaseWrapper.__init__

    def counted(self, *args, **kwargs):
        wrappers.append(self)
        made(self, *args, **kwargs)

    BaseDatabaseWrapper.__init__ = counted
    try:
        await turn(application, token)
    finally:
        BaseDatabaseWrapper.__init__ = made
    assert [hop for hop in thread_hops if hop != "ServeStaticBase.find_file"] == []
    assert wrappers == []
    replies = Message.objects.filter(role="assistant").order_by("-created_at")
    reply = await sync_to_async(lambda: replies.first())()
    assert (reply.content, reply.status) == ("Hello", "complete")


def test_the_asgi_application_starts_requests_without_sync_receivers():
    """What `no_hop_when_requests_start` is for: the app as uvicorn imports it."""
    import subprocess
    import sys

    code = (
        "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'chatbackend.settings');"
        "import chatbackend.asgi; from django.core import signals;"
        "print(len(signals.request_started.receivers))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "DJANGO_DEBUG": "1", "LOG_LEVEL": "ERROR"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"


async def test_a_running_reply_is_beaten_while_the_model_says_nothing(
    client, auth_header, gemini_standin
):
    """The heartbeat comes from the process, not from new text: a reply whose model is silent is
    stamped alive by the worker's beat, and a sweep then leaves it alone."""
    from core import liveness

    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["Hel", "lo"], gate=gate))
    first = await post(client, auth_header, {"message": "Hi"})
    reply = await Message.objects.aget(role="assistant")
    assert reply.heartbeat_at is None

    await liveness.beat()
    await reply.arefresh_from_db()
    beaten_at = reply.heartbeat_at
    assert beaten_at is not None
    assert await liveness.sweep(now=beaten_at + timedelta(seconds=5)) == 0
    await reply.arefresh_from_db()
    assert reply.status == "streaming"

    gate.set()
    assert deltas(parse_sse(await read_body(first))) == "Hello"
    await reply.arefresh_from_db()
    assert reply.status == "complete"


def test_a_turn_another_turn_got_ahead_of_is_decided_again_under_the_lock(user, monkeypatch):
    """PostgreSQL continues a conversation without a lock: when another turn of it wrote between
    this turn's read and its write, the database refuses the write (one message per position,
    one streaming reply) and the turn is decided again on the locked path, which finds the
    other turn's reply running: a 409, and nothing of this turn stored."""
    _require_postgres()
    from chat import turns
    from core.errors import Conflict

    conversation = Conversation.objects.create(user=user, title="t", next_position=0)
    write = turns._reply_turn
    other: list[turns.Turn] = []

    def another_turn_writes_first(*args, **kwargs):
        if not other:  # the other turn's own write comes through here too
            other.append(None)
            other[0] = turns.start_turn(
                user_id=user.pk, text="Other", conversation_id=conversation.id
            )
        return (yield from write(*args, **kwargs))

    monkeypatch.setattr(turns, "_reply_turn", another_turn_writes_first)
    with pytest.raises(Conflict) as refused:
        turns.start_turn(user_id=user.pk, text="Mine", conversation_id=conversation.id)

    assert refused.value.code == "generation_in_progress"
    assert refused.value.details == {"replyId": str(other[0].reply_id)}
    stored = list(conversation.messages.order_by("position").values_list("role", "content"))
    assert stored == [("user", "Other"), ("assistant", "")]
    conversation.refresh_from_db()
    assert conversation.next_position == 2


async def test_on_the_event_loop_a_turn_another_got_ahead_of_is_decided_under_the_lock(
    user, monkeypatch
):
    """The same race as above, from the event loop (`astart_turn`, as the view calls it): the
    database refuses this turn's write, raised as Django's IntegrityError, and the locked path
    (in a thread) answers 409 with the other turn's reply; nothing of this turn is stored."""
    _require_postgres()
    from asgiref.sync import sync_to_async

    from chat import turns
    from core import sql
    from core.errors import Conflict

    conversation = await Conversation.objects.acreate(user=user, title="t", next_position=0)
    write = turns._reply_turn
    other: list[turns.Turn] = []

    def another_turn_writes_first(*args, **kwargs):
        if not other:  # the other turn's own write comes through here too
            other.append(None)
            other[0] = yield sql.Call(
                turns.start_turn,
                kwargs=dict(user_id=user.pk, text="Other", conversation_id=conversation.id),
            )
        return (yield from write(*args, **kwargs))

    monkeypatch.setattr(turns, "_reply_turn", another_turn_writes_first)
    with pytest.raises(Conflict) as refused:
        await turns.astart_turn(
            user_id=user.pk,
            text="Mine",
            files=[],
            regenerate=False,
            conversation_id=conversation.id,
            chat_id=None,
            client_message_id=None,
            web_search=False,
            reply_id=None,
        )

    assert refused.value.details == {"replyId": str(other[0].reply_id)}
    stored = await sync_to_async(
        lambda: list(conversation.messages.order_by("position").values_list("role", "content"))
    )()
    assert stored == [("user", "Other"), ("assistant", "")]


def test_a_new_message_in_a_conversation_is_saved_without_a_transaction(user, statements):
    """The common turn on PostgreSQL: two statements, no BEGIN or COMMIT (the guard for the
    round trips it saves); the messages and the conversation's position are all written."""
    _require_postgres()
    from chat import turns

    conversation = Conversation.objects.create(user=user, title="t", next_position=0)
    statements.clear()
    turn = turns.start_turn(
        user_id=user.pk, text="Hello", conversation_id=conversation.id, client_message_id="m1"
    )

    assert list(statements) == ["WITH", "WITH"]
    stored = list(conversation.messages.order_by("position").values_list("id", "role", "status"))
    assert stored == [
        (turn.user_message_id, "user", "complete"),
        (turn.reply_id, "assistant", "streaming"),
    ]
    conversation.refresh_from_db()
    assert conversation.next_position == 2


def test_what_starting_a_continued_turn_builds_grows_with_the_history_text_only(user):
    """The guard on what a turn builds: starting a continued turn makes the same model instances
    whatever the history's length (the conversation and the two new messages: no instance per
    stored message), and the memory it takes at its peak grows by at most three bytes per byte
    of the history's text (2.2-2.3 measured: the rows as read, and the history sharing their
    strings). Reading the assistants' parts (reasoning, sources) or building a model instance
    per message would pass that."""
    import collections
    import tracemalloc

    from django.db.models.signals import pre_init

    from chat import turns

    from .histories import seed_conversations

    built: collections.Counter = collections.Counter()

    def count(sender, **kwargs):
        built[sender.__name__] += 1

    def start(conversation_id: str, messages: int) -> tuple[int, int, dict]:
        """(history text bytes, peak bytes allocated, model instances built) of one turn's start,
        after one turn to warm the statements' caches."""
        turns.start_turn(user_id=user.pk, text="warm", conversation_id=conversation_id)
        Message.objects.filter(conversation_id=conversation_id, position__gte=messages).delete()
        Conversation.objects.filter(id=conversation_id).update(next_position=messages)
        text = sum(
            len(content)
            for content in Message.objects.filter(conversation_id=conversation_id).values_list(
                "content", flat=True
            )
        )
        built.clear()
        pre_init.connect(count, weak=False)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            turns.start_turn(user_id=user.pk, text="Next", conversation_id=conversation_id)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
            pre_init.disconnect(count)
        return text, peak, dict(built)

    [[short]], [[long]] = seed_conversations([user], 1, 4), seed_conversations([user], 1, 80)
    short_text, short_peak, short_built = start(short, 4)
    long_text, long_peak, long_built = start(long, 80)

    assert short_built == long_built == {"Conversation": 1, "Message": 2}
    assert long_text - short_text > 50_000
    assert long_peak - short_peak <= 3 * (long_text - short_text)


def test_a_history_read_with_its_attachments_sends_the_files_that_exist(user, statements):
    """PostgreSQL reads a continued turn's history attachments with its messages: files whose
    attachment is gone, or whose id is not one, are left out (as when they are read by id), and
    the rest are read from the storage with no statement of their own."""
    _require_postgres()
    from attachments.selectors import recent_files
    from attachments.services import create_attachment
    from attachments.tests import files
    from chat import turns

    kept = create_attachment(user=user, data=files.png(), media_type="image/png")
    gone = create_attachment(user=user, data=files.pdf(), media_type="application/pdf")
    gone_id = str(gone.id)
    gone.delete()
    conversation = Conversation.objects.create(user=user, title="t", next_position=2)
    file = {"type": "file", "mediaType": "image/png", "size": 1}
    parts = [
        file | {"attachmentId": "not-a-uuid"},
        file | {"attachmentId": gone_id},
        file | {"attachmentId": str(kept.id)},
        {"type": "text", "text": "Look"},
    ]
    Message.objects.create(
        conversation=conversation, position=0, role="user", content="Look", parts=parts
    )
    Message.objects.create(conversation=conversation, position=1, role="assistant", content="Seen")
    recent_files.clear()
    statements.clear()

    turn = turns.with_history_files(
        turns.start_turn(user_id=user.pk, text="And?", conversation_id=conversation.id)
    )

    assert list(statements) == ["WITH", "WITH"]
    assert set(turn.history.file_ids) == {"not-a-uuid", gone_id, str(kept.id)}
    assert {key: part.data for key, part in turn.files.items()} == {str(kept.id): files.png()}


def test_use_chats_first_message_is_saved_in_two_statements(user, statements):
    """useChat's first message names a chat id not seen yet: the unlocked read finds nothing,
    and one statement saves the conversation (with the chat id) and both messages. Its resend
    finds the conversation and takes the locked path (a resend), storing nothing more."""
    _require_postgres()
    from chat import turns

    statements.clear()
    turn = turns.start_turn(user_id=user.pk, text="Hi", chat_id="chat-1", client_message_id="m1")

    assert list(statements) == ["WITH", "WITH"]
    conversation = Conversation.objects.get()
    assert (conversation.id, conversation.client_chat_id) == (turn.conversation_id, "chat-1")
    assert conversation.messages.count() == 2

    resent = turns.start_turn(user_id=user.pk, text="Hi", chat_id="chat-1", client_message_id="m1")
    assert (resent.kind, resent.reply_id) == (turns.TurnKind.RUNNING, turn.reply_id)
    assert conversation.messages.count() == 2


def test_a_resend_whose_reply_is_deleted_meanwhile_gets_a_new_reply(user, monkeypatch):
    """PostgreSQL answers a resend from its unlocked read: when its stored reply is deleted
    between that read and reading the reply (a regenerate), the locked path decides again and
    writes the missing reply."""
    _require_postgres()
    from chat import turns

    conversation = Conversation.objects.create(user=user, title="t", next_position=0)
    first = turns.start_turn(
        user_id=user.pk, text="Hello", conversation_id=conversation.id, client_message_id="m1"
    )
    Message.objects.filter(id=first.reply_id).update(status="complete", content="Hi")
    resend = turns._resend
    deleted: list[bool] = []

    def reply_deleted_first(*args, **kwargs):
        if not deleted:
            deleted.append(Message.objects.filter(id=first.reply_id).delete()[0] == 1)
        return resend(*args, **kwargs)

    monkeypatch.setattr(turns, "_resend", reply_deleted_first)
    again = turns.start_turn(
        user_id=user.pk, text="Hello", conversation_id=conversation.id, client_message_id="m1"
    )

    assert deleted == [True]
    assert (again.kind, again.user_message_id) == (turns.TurnKind.GENERATE, first.user_message_id)
    stored = list(conversation.messages.order_by("position").values_list("id", "role", "status"))
    assert stored == [
        (first.user_message_id, "user", "complete"),
        (again.reply_id, "assistant", "streaming"),
    ]
