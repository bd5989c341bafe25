"""Running a pattern: `start_run` saves the run, `execute` runs its workflow to the end and closes
the run (complete, error or interrupted), and `run_events` runs it as a task and yields its events
as they happen, cancelling it when the consumer goes away (a client disconnect).

While a run executes, it is registered with `core.liveness` under `RUN_KIND`: its row's heartbeat
is stamped every few seconds, and if this process dies the run is marked interrupted by any other
live process (see `agents.apps`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from core import liveness
from core.db import run_db
from llm import LLMError, get_provider

from . import services
from .context import RunContext, TaskEnded, Workflow
from .events import RunCompleted, RunError, RunEvent, RunFailed
from .models import AgentRun

logger = logging.getLogger(__name__)

RUN_KIND = "agents.run"


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: str
    result: dict[str, Any] | None = None
    error: RunError | None = None


async def start_run(*, user_id: int, pattern: str, input: dict[str, Any]) -> RunContext:
    """Save a new run and return its context (nothing runs yet)."""
    run = await run_db(services.create_run, user_id=user_id, pattern=pattern, input=input)
    return RunContext(
        run_id=run.id, user_id=user_id, pattern=pattern, input=input, provider=get_provider()
    )


async def execute(ctx: RunContext, workflow: Workflow) -> RunOutcome:
    """Run `workflow` to its end and close the run. A step failure ends it with status `error`
    (finished steps kept); cancellation (a client disconnect) saves it `interrupted` and
    propagates."""
    with liveness.running(RUN_KIND, ctx.run_id):
        return await _execute(ctx, workflow)


async def _execute(ctx: RunContext, workflow: Workflow) -> RunOutcome:
    try:
        result = await workflow(ctx)
    except asyncio.CancelledError:
        await run_db(services.finish_run, run_id=ctx.run_id, status=AgentRun.Status.INTERRUPTED)
        raise
    except Exception as exc:
        if not isinstance(exc, LLMError):
            logger.exception("Agent run %s (%s) failed", ctx.run_id, ctx.pattern)
        error = RunError.from_exception(exc)
        await run_db(
            services.finish_run,
            run_id=ctx.run_id,
            status=AgentRun.Status.ERROR,
            error=error.message,
        )
        ctx.emit(RunFailed(error))
        return RunOutcome(AgentRun.Status.ERROR, error=error)
    output = result.model_dump(mode="json")
    await run_db(
        services.finish_run,
        run_id=ctx.run_id,
        status=AgentRun.Status.COMPLETE,
        final_output=output,
    )
    ctx.emit(RunCompleted(output, ctx.usage))
    return RunOutcome(AgentRun.Status.COMPLETE, result=output)


async def run_events(ctx: RunContext, workflow: Workflow) -> AsyncIterator[RunEvent]:
    """Run `workflow` as a task and yield its events as they happen, ending with RunCompleted or
    RunFailed. Concurrent steps emit into one queue, so events arrive in the order they happened.
    If the consumer stops early (the client went away), the run is cancelled and saved
    `interrupted`."""
    task = asyncio.create_task(execute(ctx, workflow))
    task.add_done_callback(lambda _: ctx.events.put_nowait(TaskEnded()))
    ended = False
    try:
        while True:
            event = await ctx.events.get()
            if isinstance(event, TaskEnded):
                task.result()  # raises what killed the task, if anything did
                return
            ended = isinstance(event, RunCompleted | RunFailed)
            yield event
            if ended:
                return
    finally:
        if not task.done():
            if not ended:
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
