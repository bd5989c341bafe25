"""Hundreds of concurrent streams on a pool of 10 PostgreSQL connections (and the event loop's 4,
`core.adb`): a stream holds a connection only for its short writes, never while it waits on the
model."""

import asyncio
import threading
import time
import uuid

import httpx
import pytest
from django.db import connection

from chat.models import Message
from conftest import bearer
from tests.gemini_standin import pacing, text_stream
from tests.live_server import ServerProcess, database_url_for_subprocess, production_env
from tests.require import require
from tests.sse import aiter_frames

STREAMS = 300
POOL_SIZE = 10
LOOP_POOL_SIZE = 4


def other_connections() -> int:
    """Connections that are not the server's: the test process's own pool (it keeps some open,
    up to its max size, after earlier tests), and the sampler's."""
    pool = connection.settings_dict.get("OPTIONS", {}).get("pool") or {}
    return int(pool.get("max_size", 10) if isinstance(pool, dict) else 10) + 1


def require_postgresql() -> None:
    require(
        connection.vendor == "postgresql",
        "needs PostgreSQL (DATABASE_URL=postgres://...): the pool is PostgreSQL's",
    )


class ConnectionSampler:
    """Counts the database's backends every few milliseconds from a thread, with its own
    connection to the `postgres` maintenance database (so it does not count itself)."""

    def __init__(self, database: str, application_name: str):
        import psycopg

        params = connection.get_connection_params()
        params.pop("pool", None)
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        params["dbname"] = "postgres"
        self.conn = psycopg.connect(**params, autocommit=True)
        self.database = database
        self.application_name = application_name
        self.peak_total = 0
        self.peak_server = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = (
            "SELECT count(*), count(*) FILTER (WHERE application_name = %s) "
            "FROM pg_stat_activity WHERE datname = %s"
        )
        while not self._stop.is_set():
            total, server = self.conn.execute(
                query, (self.application_name, self.database)
            ).fetchone()
            self.peak_total = max(self.peak_total, total)
            self.peak_server = max(self.peak_server, server)
            self.samples += 1
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.conn.close()


async def one_stream(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list:
    async with client.stream(
        "POST", "/api/chat/stream/", json={"message": f"question {n}"}, headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        return [frame async for frame in aiter_frames(response)]


async def run_streams(url: str, headers: dict[str, str]) -> list:
    limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=STREAMS + 10)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        return await asyncio.gather(
            *(one_stream(client, headers, n) for n in range(STREAMS)), return_exceptions=True
        )


@pytest.mark.django_db(transaction=True)
def test_300_concurrent_streams_share_a_pool_of_10_connections(gemini_standin, user, capsys):
    require_postgresql()
    # Each reply: first chunk after 0.3 s, then 9 more 50 ms apart (~0.75 s waiting on the model).
    gemini_standin.handler = pacing(first_delay_s=0.3, chunk_interval_s=0.05, n_chunks=10)
    app_name = f"chatbackend-pool-test-{uuid.uuid4().hex[:8]}"
    env = production_env(
        DATABASE_URL=database_url_for_subprocess(),
        DB_POOL_MIN_SIZE="2",
        DB_POOL_MAX_SIZE=str(POOL_SIZE),
        DB_LOOP_POOL_MAX_SIZE=str(LOOP_POOL_SIZE),
        PGAPPNAME=app_name,  # libpq's default application_name: tells the server's connections
        AI_PROVIDER="gemini",
        GEMINI_API_KEY="test-key",
        GEMINI_BASE_URL=gemini_standin.base_url,
        LOG_LEVEL="WARNING",
    )
    database = connection.settings_dict["NAME"]
    headers = {"Authorization": bearer(user)}

    with ServerProcess(env, extra_args=("--log-level", "warning")) as server:
        with ConnectionSampler(database, app_name) as sampler:
            started = time.monotonic()
            results = asyncio.run(run_streams(server.url, headers))
            wall = time.monotonic() - started
        log = server.log()

    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} failed, first: {failures[0]!r}\n{log[-3000:]}"
    finished = [frames for frames in results if frames[-2:][0].get("type") == "finish"]
    assert len(finished) == STREAMS
    assert all(frames[-1] == "[DONE]" for frames in results)
    replies = Message.objects.filter(role=Message.Role.ASSISTANT)
    assert replies.count() == STREAMS
    assert replies.filter(status=Message.Status.COMPLETE).count() == STREAMS
    assert sampler.samples > 10
    with capsys.disabled():
        print(
            f"\n{STREAMS} streams, pool {POOL_SIZE}: all complete in {wall:.1f} s; peak "
            f"connections: server {sampler.peak_server}, database total {sampler.peak_total} "
            f"({sampler.samples} samples)"
        )
    assert sampler.peak_server <= POOL_SIZE + LOOP_POOL_SIZE
    assert sampler.peak_total <= POOL_SIZE + LOOP_POOL_SIZE + other_connections()


async def hold_streams(url: str, headers: dict[str, str], count: int, standin, gate) -> list:
    """Open `count` streams, wait until every one has its first text (all of them now wait on the
    model at once), then let the model finish them all."""
    everyone_started = asyncio.Event()
    started = 0

    async def held_stream(n: int) -> list:
        nonlocal started
        async with client.stream(
            "POST", "/api/chat/stream/", json={"message": f"q{n}"}, headers=headers
        ) as response:
            assert response.status_code == 200, await response.aread()
            frames = []
            async for frame in aiter_frames(response):
                frames.append(frame)
                if frame != "[DONE]" and frame["type"] == "text-delta" and len(frames) == 3:
                    started += 1
                    if started == count:
                        everyone_started.set()
            return frames

    async def release_when_all_wait() -> None:
        await asyncio.wait_for(everyone_started.wait(), 30)
        assert standin.in_flight == count  # every model call is open at the same time
        gate.set()

    limits = httpx.Limits(max_connections=count + 5, max_keepalive_connections=count + 5)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        results = await asyncio.gather(
            release_when_all_wait(), *(held_stream(n) for n in range(count))
        )
    return results[1:]


@pytest.mark.django_db(transaction=True)
def test_streams_waiting_on_the_model_hold_no_connection(gemini_standin, user):
    """20 streams all waiting on the model at once, on a pool of 2 and an event loop's pool of 1:
    had any of them kept its connection while waiting, the next would have waited for one (and
    timed out)."""
    require_postgresql()
    gate = threading.Event()
    gemini_standin.handler = lambda request: text_stream(["first ", "second"], gate=gate)
    env = production_env(
        DATABASE_URL=database_url_for_subprocess(),
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE="2",
        DB_LOOP_POOL_MAX_SIZE="1",
        DB_POOL_TIMEOUT_S="5",
        AI_PROVIDER="gemini",
        GEMINI_API_KEY="test-key",
        GEMINI_BASE_URL=gemini_standin.base_url,
    )
    try:
        with ServerProcess(env) as server:
            results = asyncio.run(
                hold_streams(server.url, {"Authorization": bearer(user)}, 20, gemini_standin, gate)
            )
    finally:
        gate.set()

    assert all(frames[-1] == "[DONE]" for frames in results)
    replies = Message.objects.filter(role=Message.Role.ASSISTANT)
    assert set(replies.values_list("status", "content")) == {
        (Message.Status.COMPLETE, "first second")
    }
    assert replies.count() == 20


@pytest.mark.django_db(transaction=True)
def test_requests_refused_before_streaming_give_their_connection_back(user):
    """Authentication reads the user (a connection); a 400 or 429 then ends the request without
    any `run_db`: Django's request_finished must return that connection, or a pool of 2 runs dry."""
    require_postgresql()
    env = production_env(
        DATABASE_URL=database_url_for_subprocess(),
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE="2",
        DB_POOL_TIMEOUT_S="3",
        CHAT_RATE_LIMIT="3/h",
        CACHE_KEY_PREFIX=f"pool-test-{uuid.uuid4().hex}",
    )
    headers = {"Authorization": bearer(user)}

    async def requests(url: str) -> tuple[list[int], list[int]]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            refused = [
                (await client.post("/api/chat/stream/", json={}, headers=headers)).status_code
                for _ in range(6)
            ]
            reads = await asyncio.gather(
                *(client.get("/api/usage/", headers=headers) for _ in range(20))
            )
        return refused, [response.status_code for response in reads]

    with ServerProcess(env) as server:
        refused, reads = asyncio.run(requests(server.url))

    assert refused == [400, 400, 400, 429, 429, 429]
    assert reads == [200] * 20
