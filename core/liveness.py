"""Liveness of running work: rows that say "running" are stamped while a live process runs them,
and rows whose process stopped stamping are closed by any other live process.

Work that runs for a while (a chat reply streaming, an agent run) is saved with a status such as
`running` before it is done. If its process dies (kill -9, OOM, a lost host), nothing would ever
change that status. So each kind of work registers two sync ORM functions:

* `beat(ids)`: stamp `heartbeat_at = now` on those rows (one UPDATE);
* `sweep(stale_before)`: mark the rows still running whose heartbeat is older than `stale_before`
  as interrupted, keeping what they hold, and return how many.

While an item runs, its code holds `running(kind, item_id)`. Every process runs one background
task (started on the ASGI lifespan `startup` event through `core.lifecycle`) that every
`STREAM_STALE_S / 3` seconds beats the ids running in this process, one UPDATE per kind, and sweeps.
The heartbeat depends only on the process being alive, not on the work making progress (a model may
think for a minute before its first token). A row is stale only when no process has stamped it for
`STREAM_STALE_S`, so another worker's restart never touches it; with several workers and hosts
every worker sweeps, and the sweep's UPDATE condition (still running, heartbeat still old) makes
doing so twice harmless. Heartbeats and the stale bound both come from the workers' clocks, which
must agree to well within STREAM_STALE_S (NTP does). This module knows no app: the apps bring
their rows through the two functions:

    # AppConfig.ready()
    liveness.register("chat.reply", beat=stamp_replies, sweep=close_stale_replies)
    # the running work
    with liveness.running("chat.reply", reply.id):
        ...

Written by hand rather than with a scheduler (Celery beat, APScheduler): one small periodic task on
the process's own event loop needs no broker or extra process to deploy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from core import lifecycle
from core.db import run_db

logger = logging.getLogger(__name__)

Beat = Callable[[list], None]
Sweep = Callable[[datetime], int]


@dataclass(frozen=True, slots=True)
class _Kind:
    beat: Beat
    sweep: Sweep


_kinds: dict[str, _Kind] = {}
# The ids of each kind running in this process. A Counter, so an id held twice at once (a nested
# or repeated `running`) stays running until both are done. Changed from the event loop and read
# by the beat; the lock makes `running` safe from worker threads too.
_running: dict[str, Counter] = {}
_lock = threading.Lock()
_task: asyncio.Task | None = None
STARTUP_SWEEP_WAIT_S = 2.0
_stopping: asyncio.Event | None = None


def register(kind: str, *, beat: Beat, sweep: Sweep) -> None:
    """Watch the rows of `kind` (from an `AppConfig.ready()`). Registering a kind again replaces
    its functions."""
    with _lock:
        _kinds[kind] = _Kind(beat, sweep)
        _running.setdefault(kind, Counter())
    lifecycle.on_startup(start)
    lifecycle.on_shutdown(stop)


@contextmanager
def running(kind: str, item_id: Hashable) -> Iterator[None]:
    """The item runs in this process meanwhile: its row is beaten until the block ends."""
    if kind not in _kinds:
        raise LookupError(f"liveness kind {kind!r} is not registered")
    with _lock:
        _running[kind][item_id] += 1
    try:
        yield
    finally:
        with _lock:
            ids = _running[kind]
            ids[item_id] -= 1
            if ids[item_id] <= 0:
                del ids[item_id]


def running_ids(kind: str) -> list:
    """The ids of `kind` running in this process now."""
    with _lock:
        return list(_running.get(kind, ()))


def stale_after() -> timedelta:
    return timedelta(seconds=settings.STREAM_STALE_S)


def interval_s() -> float:
    """How often the background task beats and sweeps: three beats fit in one stale period."""
    return settings.STREAM_STALE_S / 3


async def beat() -> None:
    """Stamp every item running in this process, one UPDATE per kind."""
    for kind, functions in list(_kinds.items()):
        ids = running_ids(kind)
        if ids:
            await run_db(functions.beat, ids)


async def sweep(*, now: datetime | None = None) -> int:
    """Close the rows of every kind whose heartbeat is older than STREAM_STALE_S; how many."""
    stale_before = (now or timezone.now()) - stale_after()
    closed = 0
    for kind, functions in list(_kinds.items()):
        count = await run_db(functions.sweep, stale_before)
        if count:
            logger.warning("Marked %d stale %s row(s) interrupted", count, kind)
        closed += count
    return closed


async def tick() -> int:
    """One iteration of the background task: beat, then sweep. Returns how many rows it closed."""
    await beat()
    return await sweep()


async def _loop(stopping: asyncio.Event, swept: asyncio.Event) -> None:
    try:
        await sweep()
    except Exception:
        logger.exception("Liveness sweep at start-up failed")
    finally:
        swept.set()
    while True:
        # Waiting on the stop event rather than sleeping, so that stop() ends the task at once.
        try:
            await asyncio.wait_for(stopping.wait(), timeout=interval_s())
            return
        except TimeoutError:
            pass
        try:
            await tick()
        except Exception:
            # A database that is down for a while must not end the heartbeat for good.
            logger.exception("Liveness beat or sweep failed; retrying in %.1f s", interval_s())


async def start() -> None:
    """Sweep once (rows left by processes that died while this one was down), then beat and sweep
    in the background until `stop()`. Waits for the first sweep at most `STARTUP_SWEEP_WAIT_S`:
    a database that hangs must not keep the server from starting (and /healthz from answering);
    the sweep then finishes in the background."""
    global _task, _stopping
    if _task is not None and not _task.done() and _task.get_loop() is asyncio.get_running_loop():
        return
    _stopping = asyncio.Event()
    swept = asyncio.Event()
    _task = asyncio.create_task(_loop(_stopping, swept), name="core.liveness")
    waiting = asyncio.ensure_future(swept.wait())
    try:
        await asyncio.wait({waiting}, timeout=STARTUP_SWEEP_WAIT_S)
    finally:
        waiting.cancel()


async def stop() -> None:
    """End the background task (the lifespan `shutdown` event)."""
    global _task, _stopping
    task, stopping = _task, _stopping
    _task = _stopping = None
    if task is None:
        return
    if stopping is not None:
        stopping.set()
    if task.get_loop() is not asyncio.get_running_loop():
        # Started on another event loop (one per test, say), which may be closed by now.
        with contextlib.suppress(RuntimeError):
            task.get_loop().call_soon_threadsafe(task.cancel)
        return
    try:
        await asyncio.wait_for(task, timeout=5)  # cancels the task when it takes longer
    except TimeoutError:
        logger.warning("Liveness task did not stop within 5 s; cancelled")
