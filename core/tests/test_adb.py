"""Statements on the event loop (`core.adb`): what they read and raise is what Django's
connection reads and raises, and their connections go when their loop goes."""

import asyncio
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection
from django.utils import timezone

from chat.models import Conversation, Message
from core import adb, lifecycle, sql
from tests.polling import eventually
from tests.require import require

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres():
    require(
        connection.vendor == "postgresql",
        "needs PostgreSQL (DATABASE_URL=postgres://...): SQLite's statements run in threads",
    )


def backends_that_ran(marker: str) -> int:
    """The database's sessions whose last statement was `SELECT '<marker>'`, from a connection
    of Django's (not the loop's pool)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
            [f"SELECT '{marker}'"],
        )
        return cursor.fetchone()[0]


def seeded() -> Conversation:
    user = get_user_model().objects.create_user("adb", password="pw-123456789")
    conversation = Conversation.objects.create(user=user, title="t", next_position=1)
    Message.objects.create(
        conversation=conversation,
        position=0,
        role="user",
        content="Hi",
        parts=[{"type": "text", "text": "Hi"}],
    )
    return conversation


def test_a_statement_on_the_loop_reads_what_djangos_connection_reads():
    """jsonb as its text (the turn parses it with orjson), UUIDs as UUIDs, timestamps aware in
    the connection's time zone: the same row, whichever runs the statement."""
    conversation = seeded()
    statement = sql.Statement(
        f"SELECT id, conversation_id, parts, created_at FROM {Message._meta.db_table}"
        " WHERE conversation_id = %s",
        [conversation.id],
        fetch=True,
    )

    on_loop = asyncio.run(adb.execute(statement))

    assert on_loop == sql.execute(statement)
    (message_id, conversation_id, parts, created_at) = on_loop[0]
    assert isinstance(message_id, uuid.UUID) and conversation_id == conversation.id
    assert parts == '[{"text": "Hi", "type": "text"}]'
    assert created_at.utcoffset() == timezone.now().utcoffset()


def test_a_constraint_a_statement_on_the_loop_breaks_raises_djangos_integrity_error():
    """What the turn's unlocked path catches to hand the turn to the locked path."""
    conversation = seeded()
    duplicate = Message(
        conversation=conversation, position=0, role="user", content="Again", parts=[]
    )

    with pytest.raises(IntegrityError, match="unique_message_position"):
        asyncio.run(adb.execute(sql.insert_statement([duplicate])))

    assert list(conversation.messages.values_list("content", flat=True)) == ["Hi"]


def test_the_pool_of_a_loop_is_closed_when_the_loop_shuts_down():
    """Every loop that closes (asyncio.run, uvicorn's, asgiref's async_to_sync, pytest's)
    cancels its tasks and then shuts its async generators down: the pool's connections go with
    it, although its tasks were cancelled first."""

    from asgiref.sync import sync_to_async

    loop = None

    async def main():
        nonlocal loop
        await adb.execute(sql.Statement("SELECT 'closed-with-its-loop'"))
        assert await sync_to_async(backends_that_ran)("closed-with-its-loop") == 1
        loop = asyncio.get_running_loop()
        assert loop in adb._pools

    asyncio.run(main())

    assert loop not in adb._pools
    # The server's session ends once it read the connection's end: soon, not at once.
    assert eventually(lambda: backends_that_ran("closed-with-its-loop") == 0)


async def test_the_pool_is_closed_at_the_lifespans_shutdown():
    """Registered as a shutdown hook (after the others have run, so replies stopped at shutdown
    are saved through it first): its connections are closed while the loop still runs."""
    from asgiref.sync import sync_to_async

    await adb.execute(sql.Statement("SELECT 'closed-at-shutdown'"))
    assert await sync_to_async(backends_that_ran)("closed-at-shutdown") == 1
    assert lifecycle._shutdown[0] is adb.close  # registered first: runs last

    await adb.close()

    assert asyncio.get_running_loop() not in adb._pools
    assert await sync_to_async(eventually)(lambda: backends_that_ran("closed-at-shutdown") == 0)


async def test_a_connection_the_server_ended_is_not_lent_again():
    """The statement that finds its connection ended fails (as the ORM's would); the pool drops
    that connection, and the next statement gets a new one."""
    from asgiref.sync import sync_to_async
    from django.db import OperationalError

    (pid,) = (await adb.execute(sql.Statement("SELECT pg_backend_pid()", fetch=True)))[0]

    def end_session():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

    await sync_to_async(end_session)()

    with pytest.raises(OperationalError):
        await adb.execute(sql.Statement("SELECT 1", fetch=True))
    (new_pid,) = (await adb.execute(sql.Statement("SELECT pg_backend_pid()", fetch=True)))[0]
    assert new_pid != pid


async def test_a_connections_statements_share_its_cursor(monkeypatch):
    """A cursor keeps the dumper it found for each parameter type: the pool lends each
    connection with its one cursor, not a new cursor (and new look-ups) per statement."""
    import psycopg

    made = []
    cursor_of = psycopg.AsyncConnection.cursor

    def counted(self, *args, **kwargs):
        made.append(cursor_of(self, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(psycopg.AsyncConnection, "cursor", counted)
    await adb.close()
    await adb.execute(sql.Statement("SELECT 1"))  # connects (and sets it up: a cursor or two)
    made.clear()

    for n in range(5):
        assert await adb.execute(sql.Statement("SELECT %s", [n], fetch=True)) == [(n,)]

    assert made == []


def pid_steps(log: list):
    """Steps that read their connection's backend pid three times."""
    for _ in range(3):
        ((pid,),) = yield sql.Statement("SELECT pg_backend_pid()", fetch=True)
        log.append(pid)
    return "done"


async def test_a_sequences_statements_wait_for_a_connection_once(monkeypatch):
    """A turn's statements run on one connection, held from the first to the last: lent per
    statement, a burst of turns queued every second statement behind every first one."""
    await adb.close()
    pool = await adb._pool()
    acquired = []
    acquire = pool.acquire

    async def counted():
        acquired.append(await acquire())
        return acquired[-1]

    monkeypatch.setattr(pool, "acquire", counted)
    pids: list[int] = []

    assert await adb.run(pid_steps(pids)) == "done"

    assert len(acquired) == 1 and len(set(pids)) == 1
    assert len(pool.idle) == 1  # given back at the end


async def test_a_burst_of_sequences_is_served_in_the_order_it_came(settings):
    """Turns that arrive together finish their statements one turn after another, so the first
    ones reach the model first (TTFT p50 under a burst): with statements lent one at a time,
    each turn's second statement waited behind every other turn's first."""
    settings.DB_LOOP_POOL_MAX_SIZE = 1
    await adb.close()
    order: list[str] = []

    def turn(name: str):
        for step in range(3):
            yield sql.Statement("SELECT %s", [f"{name}{step}"], fetch=True)
            order.append(f"{name}{step}")
        return name

    assert await asyncio.gather(*(adb.run(turn(name)) for name in "abc")) == ["a", "b", "c"]

    assert order == ["a0", "a1", "a2", "b0", "b1", "b2", "c0", "c1", "c2"]


async def test_a_sequence_gives_its_connection_back_for_a_call_and_after_an_error():
    """A call runs in a database thread (the connection is not held meanwhile); an error may
    have broken the connection: the next statement gets one that works."""
    from django.db import OperationalError

    await adb.close()
    pool = await adb._pool()
    seen: dict = {}

    def during_call():
        seen["idle"] = len(pool.idle)

    def steps():
        ((first,),) = yield sql.Statement("SELECT pg_backend_pid()", fetch=True)
        yield sql.Call(during_call)
        try:
            yield sql.Statement("SELECT pg_terminate_backend(pg_backend_pid())", fetch=True)
        except OperationalError:
            seen["error"] = True
        ((last,),) = yield sql.Statement("SELECT pg_backend_pid()", fetch=True)
        return first, last

    first, last = await adb.run(steps())

    assert seen == {"idle": 1, "error": True}
    assert last != first  # the session ended; a new connection served the last statement


async def test_a_statement_waits_for_a_free_connection_no_longer_than_the_pools_timeout(
    settings,
):
    """DB_LOOP_POOL_MAX_SIZE connections at most: a statement beyond them waits for one, then
    fails as Django's OperationalError (the reply's save tries again; a turn's start is a 503)."""
    from django.db import OperationalError

    settings.DB_LOOP_POOL_MAX_SIZE = 1
    await adb.close()
    pool = await adb._pool()
    pool.timeout = 0.05
    held = await pool.acquire()  # the only one
    try:
        with pytest.raises(OperationalError, match="no database connection free"):
            await adb.execute(sql.Statement("SELECT 1"))
    finally:
        await pool.release(held)
    assert await adb.execute(sql.Statement("SELECT 1", fetch=True)) == [(1,)]


async def test_a_database_that_does_not_answer_is_djangos_operational_error(monkeypatch):
    """A server that accepts the connection and then says nothing (a failover, a full host): the
    statement fails after the pool's timeout as Django's OperationalError, which the API answers
    with a 503 and the reply's save tries again; not a TimeoutError (a 500)."""
    import socket

    from django.db import OperationalError

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    params = adb._connect_kwargs()
    monkeypatch.setattr(adb, "_connect_kwargs", lambda: {**params, "port": silent.getsockname()[1]})
    await adb.close()
    pool = await adb._pool()
    pool.timeout = 0.2
    try:
        with pytest.raises(OperationalError, match="could not connect to the database within"):
            await adb.execute(sql.Statement("SELECT 1"))
    finally:
        silent.close()
        await adb.close()
