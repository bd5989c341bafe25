"""core.liveness without any app: what it beats, what it sweeps, and its background task, driven
through kinds whose beat and sweep record their calls."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from core import lifecycle, liveness


class Recorder:
    """A kind's beat and sweep: records each call; `beaten` is set on the first beat that
    includes `watch`, `swept` on the first sweep."""

    def __init__(self, *, watch=None, sweep_result: int = 0, fail_beats: int = 0):
        self.beats: list[list] = []
        self.sweeps: list[datetime] = []
        self.watch = watch
        self.sweep_result = sweep_result
        self.fail_beats = fail_beats
        self.beaten = threading.Event()
        self.swept = threading.Event()

    def beat(self, ids: list) -> None:
        self.beats.append(sorted(ids))
        if self.fail_beats:
            self.fail_beats -= 1
            raise ConnectionError("database unavailable")
        if self.watch in ids:
            self.beaten.set()

    def sweep(self, stale_before: datetime) -> int:
        self.sweeps.append(stale_before)
        self.swept.set()
        return self.sweep_result


@pytest.fixture(autouse=True)
def own_registry(monkeypatch, settings):
    """Each test sees only the kinds it registers (not the apps' ones), and no task left over."""
    monkeypatch.setattr(liveness, "_kinds", {})
    monkeypatch.setattr(liveness, "_running", {})
    monkeypatch.setattr(liveness, "_task", None)
    monkeypatch.setattr(liveness, "_stopping", None)
    settings.STREAM_STALE_S = 30
    yield


def test_register_hooks_start_and_stop_into_the_lifespan(monkeypatch):
    monkeypatch.setattr(lifecycle, "_startup", [])  # as before any app registered a kind
    monkeypatch.setattr(lifecycle, "_shutdown", [])
    liveness.register("job", beat=Recorder().beat, sweep=Recorder().sweep)
    liveness.register("reply", beat=Recorder().beat, sweep=Recorder().sweep)
    assert lifecycle._startup == [liveness.start]
    assert lifecycle._shutdown == [liveness.stop]


def test_running_holds_an_id_while_its_block_runs():
    liveness.register("job", beat=Recorder().beat, sweep=Recorder().sweep)
    with liveness.running("job", 1):
        with liveness.running("job", 2):
            assert sorted(liveness.running_ids("job")) == [1, 2]
        with liveness.running("job", 1):  # the same id twice: running until both end
            pass
        assert liveness.running_ids("job") == [1]
    assert liveness.running_ids("job") == []


def test_running_ends_its_hold_when_the_work_fails():
    liveness.register("job", beat=Recorder().beat, sweep=Recorder().sweep)
    with pytest.raises(RuntimeError), liveness.running("job", 7):
        raise RuntimeError("the work failed")
    assert liveness.running_ids("job") == []


def test_running_an_unregistered_kind_is_an_error():
    with pytest.raises(LookupError), liveness.running("nobody-registered-this", 1):
        pass


async def test_beat_stamps_the_running_ids_of_each_kind_in_one_call():
    jobs, replies = Recorder(), Recorder()
    liveness.register("job", beat=jobs.beat, sweep=jobs.sweep)
    liveness.register("reply", beat=replies.beat, sweep=replies.sweep)
    with liveness.running("job", "a"), liveness.running("job", "b"):
        await liveness.beat()
    await liveness.beat()  # nothing runs any more: no call at all

    assert jobs.beats == [["a", "b"]]
    assert replies.beats == []


async def test_sweep_asks_each_kind_for_rows_older_than_stream_stale_s(settings):
    settings.STREAM_STALE_S = 45
    jobs, replies = Recorder(sweep_result=2), Recorder(sweep_result=1)
    liveness.register("job", beat=jobs.beat, sweep=jobs.sweep)
    liveness.register("reply", beat=replies.beat, sweep=replies.sweep)
    now = timezone.now()

    assert await liveness.sweep(now=now) == 3

    assert jobs.sweeps == replies.sweeps == [now - timedelta(seconds=45)]


async def test_tick_beats_before_it_sweeps():
    calls: list[str] = []
    liveness.register(
        "job",
        beat=lambda ids: calls.append(f"beat {ids}"),
        sweep=lambda before: calls.append("sweep") or 0,
    )
    with liveness.running("job", 5):
        await liveness.tick()
    # Beating first: a row this process runs is never stale at the moment it is swept.
    assert calls == ["beat [5]", "sweep"]


async def test_the_background_task_sweeps_at_start_then_beats_until_stopped(settings):
    settings.STREAM_STALE_S = 0.03  # a beat every 10 ms
    jobs = Recorder(watch="x")
    liveness.register("job", beat=jobs.beat, sweep=jobs.sweep)

    with liveness.running("job", "x"):
        await liveness.start()
        assert len(jobs.sweeps) == 1 and jobs.beats == []  # start() swept once, beat not yet
        assert await asyncio.to_thread(jobs.beaten.wait, 5)
        await liveness.stop()

    assert liveness._task is None
    beats = len(jobs.beats)
    assert beats >= 1 and len(jobs.sweeps) >= 2
    await liveness.tick()  # the task is gone: only this explicit tick calls the kind
    assert len(jobs.beats) == beats


async def test_the_background_task_outlives_a_failing_beat(settings):
    settings.STREAM_STALE_S = 0.03
    jobs = Recorder(watch="x", fail_beats=2)
    liveness.register("job", beat=jobs.beat, sweep=jobs.sweep)

    with liveness.running("job", "x"):
        await liveness.start()
        try:
            assert await asyncio.to_thread(jobs.beaten.wait, 5)
        finally:
            await liveness.stop()

    assert len(jobs.beats) >= 3  # two failed, then one went through


async def test_start_is_idempotent_on_one_loop(settings):
    settings.STREAM_STALE_S = 30
    jobs = Recorder()
    liveness.register("job", beat=jobs.beat, sweep=jobs.sweep)
    await liveness.start()
    task = liveness._task
    try:
        await liveness.start()
        assert liveness._task is task
        assert len(jobs.sweeps) == 1
    finally:
        await liveness.stop()
    assert task.done()


async def test_a_hanging_first_sweep_does_not_hold_up_start_up(monkeypatch, settings):
    """A database that hangs must not keep the server from starting: start() waits for the first
    sweep only so long, and the sweep finishes in the background."""
    settings.STREAM_STALE_S = 30
    monkeypatch.setattr(liveness, "STARTUP_SWEEP_WAIT_S", 0.05)
    release = threading.Event()
    entered = threading.Event()

    def hanging_sweep(stale_before):
        entered.set()
        release.wait(10)
        return 0

    liveness.register("job", beat=lambda ids: None, sweep=hanging_sweep)
    try:
        # returns although the sweep has not (the deadline fails the test if it waited for it)
        await asyncio.wait_for(liveness.start(), timeout=3)
        assert await asyncio.to_thread(entered.wait, 5)
        assert not release.is_set()
        assert liveness._task is not None and not liveness._task.done()
    finally:
        release.set()
        await liveness.stop()
