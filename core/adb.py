"""The chat turn's statements run on the event loop itself (PostgreSQL), not in a thread.

Why: `core.db.run_db` runs a burst of ORM code in a database thread. Under load every round trip
from such a thread is a hand-off of the GIL with the event loop (the thread waits for the
database without it, then waits for the loop to give it back): at 200 concurrent streams the
three statements of a continued turn cost 1.6-2.4 ms of CPU in those threads, a third of the
turn (docs/benchmarks.md, "the fourth round"). psycopg's async connection sends a statement and
waits for its answer on the loop (a reader callback), with no thread and no hand-off.

What runs here: only the hot path's hand-written statements (`core.sql.Statement`), each atomic
by itself (autocommit): Django's ORM and its transactions are sync-only and stay in `run_db`.
SQLite has no async driver: `available()` is False there, and callers keep `run_db`.

Connections: a small pool per event loop (a connection belongs to the loop that made it:
uvicorn's worker has one loop; tests and asgiref's `async_to_sync` make one per call), made
with Django's own connection parameters (the same adapters: jsonb read as text, timestamps in
the connection's time zone; client-side binding, as Django's cursors). It lends a connection
to a sequence of statements (`run`: a turn's read and write) or to one (`execute`), with the one
cursor it keeps for that connection (a cursor's adapters keep the dumper found for each
parameter type: a new cursor per statement looked them all up again), holds
`DB_LOOP_POOL_MAX_SIZE` at most (a sequence waits `DB_POOL_TIMEOUT_S` for one), keeps
those given back, drops the broken ones, and closes them when its loop shuts down
(`loop.shutdown_asyncgens()`, which asyncio.run, uvicorn, asgiref and pytest-asyncio all call
before closing a loop) or at the lifespan's shutdown.

Why by hand: psycopg_pool's `AsyncConnectionPool` connects in worker tasks that swallow
cancellation (its `CLIENT_EXCEPTIONS` include `CancelledError`); a loop that closes cancels every
task first, and when one of them was connecting, the loop's close waited for it forever (seen
with `asyncio.run`). This pool has no task of its own: a statement connects in its own task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import psycopg
from django.conf import settings
from django.db import connection
from django.db.utils import DatabaseErrorWrapper
from psycopg.pq import TransactionStatus

from . import sql
from .db import run_db
from .sql import R, Statement, Step, Steps

IDLE = TransactionStatus.IDLE
#: The pool of each running loop.
_pools: dict[asyncio.AbstractEventLoop, _LoopPool] = {}
#: psycopg's errors raised as Django's (IntegrityError, OperationalError, ...), as the ORM does.
_django_errors = DatabaseErrorWrapper(SimpleNamespace(Database=psycopg))


def available() -> bool:
    """Whether statements can run on the loop: the database is PostgreSQL."""
    return sql.db().vendor == "postgresql"


def _connect_kwargs() -> dict:
    params = connection.get_connection_params()
    server_side_binding = connection.settings_dict["OPTIONS"].get("server_side_binding")
    params["cursor_factory"] = (
        psycopg.AsyncCursor if server_side_binding is True else psycopg.AsyncClientCursor
    )
    params["autocommit"] = True
    return params


async def _configure(conn: psycopg.AsyncConnection) -> None:
    """What Django does to each new connection (`_configure_connection`): its time zone, its
    role."""
    zone = connection.timezone_name
    if zone and conn.info.parameter_status("TimeZone") != zone:
        await conn.execute(connection.ops.set_time_zone_sql(), [zone])
    if role := connection.settings_dict["OPTIONS"].get("assume_role"):
        await conn.execute(connection.ops.compose_sql("SET ROLE %s", [role]))


class _LoopPool:
    """The connections of one event loop (see the module's docstring), lent as their cursors."""

    def __init__(self, size: int, timeout: float):
        self.idle: list[psycopg.AsyncCursor] = []
        self.free = asyncio.Semaphore(size)
        self.timeout = timeout
        self.closed = False

    async def acquire(self) -> psycopg.AsyncCursor:
        """The cursor of a connection of the pool, once one is free (an idle one, or a new
        one). Give it back with `release`."""
        if self.free.locked():  # all lent: wait, no longer than the timeout
            try:
                async with asyncio.timeout(self.timeout):
                    await self.free.acquire()
            except TimeoutError:
                raise psycopg.OperationalError(
                    f"no database connection free on this event loop after {self.timeout:g} s"
                ) from None
        else:  # returns at once: no timer to arm and cancel (~20 µs a statement)
            await self.free.acquire()
        try:
            return self.idle.pop() if self.idle else (await self._connect()).cursor()
        except BaseException:
            self.free.release()
            raise

    async def release(self, cursor: psycopg.AsyncCursor) -> None:
        conn = cursor.connection
        try:
            if self.closed or conn.closed or conn.broken or conn.info.transaction_status != IDLE:
                await conn.close()  # it cannot serve the next statement
            else:
                self.idle.append(cursor)
        finally:
            self.free.release()

    async def _connect(self) -> psycopg.AsyncConnection:
        try:
            async with asyncio.timeout(self.timeout):
                conn = await psycopg.AsyncConnection.connect(**_connect_kwargs())
                try:
                    await _configure(conn)
                except BaseException:
                    await conn.close()
                    raise
        except TimeoutError:  # a server that does not answer: a fault like one that refuses
            raise psycopg.OperationalError(
                f"could not connect to the database within {self.timeout:g} s"
            ) from None
        return conn

    async def close(self) -> None:
        self.closed = True
        idle, self.idle = self.idle, []
        for cursor in idle:
            await cursor.connection.close()


async def _keep(loop: asyncio.AbstractEventLoop, pool: _LoopPool) -> AsyncIterator[None]:
    """Closes `pool` when its loop shuts down its async generators, as every loop does before
    it closes."""
    try:
        yield
    finally:
        if _pools.get(loop) is pool:
            del _pools[loop]
        await pool.close()


async def _pool() -> _LoopPool:
    """This loop's pool, made on first use."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        django_pool = connection.settings_dict["OPTIONS"].get("pool")
        timeout = django_pool.get("timeout", 30.0) if isinstance(django_pool, dict) else 30.0
        pool = _pools[loop] = _LoopPool(settings.DB_LOOP_POOL_MAX_SIZE, timeout)
        keeper = _keep(loop, pool)
        await anext(keeper)  # now the loop's: closed with it
        pool.keeper = keeper  # lives as long as its pool
    return pool


async def close() -> None:
    """Close this loop's pool, if it has one (a shutdown hook: `core.lifecycle.on_shutdown`)."""
    pool = _pools.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()


async def execute(statement: Statement):
    """Run `statement` on a connection of this loop's pool: its rows when it `fetch`es, else
    the number of rows it changed. Raises Django's database errors."""
    pool = _pools.get(asyncio.get_running_loop()) or await _pool()
    with _django_errors:
        cursor = await pool.acquire()
        try:
            return await _execute_on(cursor, statement)
        finally:
            await pool.release(cursor)


async def _execute_on(cursor: psycopg.AsyncCursor, statement: Statement):
    await cursor.execute(statement.sql, statement.params)
    if statement.fetch:
        return await cursor.fetchall()
    return cursor.rowcount


async def run_step(step: Step):
    """Run one step from the loop: a statement here (PostgreSQL), anything else in a database
    thread (`core.db.run_db`)."""
    if type(step) is Statement and available():
        return await execute(step)
    return await run_db(sql.run_step, step)


async def run(steps: Steps[R]) -> R:
    """`core.sql.run` from the loop: each statement here, each call in a database thread. Not
    PostgreSQL: all of them in one database thread.

    The statements run one after another on one connection, held from the first to the last
    (given back for a call, and after an error, which may have broken it): a turn's two
    statements then wait for a connection once, and a burst of turns is served in the order it
    came. Lent per statement, every turn's second statement queued behind every other turn's
    first: all of them reached the model at about the same time, late (TTFT p50 at 200 streams
    was the whole burst's database work, not half of it). Measured served (docs/benchmarks.md,
    the eighth round): TTFT p50 at 200 streams 20-25 % lower with a history, for 4-7 % more
    CPU a turn at 20 and 50 messages (the streams no longer all run at once, so each loop
    iteration serves fewer) and a longer tail (TTFT p99 +6-14 %)."""
    if not available():
        return await run_db(sql.run, steps)
    pool = _pools.get(asyncio.get_running_loop()) or await _pool()
    cursor: psycopg.AsyncCursor | None = None

    async def give_back() -> None:
        nonlocal cursor
        if cursor is not None:
            held, cursor = cursor, None  # not given back twice, even if closing it fails
            await pool.release(held)

    done, step = sql.advance(steps)
    try:
        while not done:
            try:
                if type(step) is Statement:
                    with _django_errors:
                        if cursor is None:
                            cursor = await pool.acquire()
                        result = await _execute_on(cursor, step)
                else:
                    await give_back()  # not held while a database thread runs the call
                    result = await run_db(sql.run_step, step)
            except Exception as exc:  # noqa: BLE001 - the steps' to handle
                await give_back()  # the error may have broken it
                done, step = sql.advance(steps, error=exc)
            else:
                done, step = sql.advance(steps, result)
    finally:
        await give_back()
    return step
