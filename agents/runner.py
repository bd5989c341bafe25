"""The machinery every agent pattern shares, written once.

A pattern is an async function of a `RunContext`. It calls named steps on it (`text`, `object`,
`tool_loop`, and `final` for the streamed result) and may run steps `concurrently`. Each step is
timed, saved (an `AgentStep` row when it starts, updated when it ends), cached, accounted in usage,
and announced as `RunEvent`s on the context's queue. `execute` runs a pattern to its end and closes
the run (complete, error or interrupted); `run_events` runs it as a task and yields its events as
they happen, cancelling it when the consumer goes away (a client disconnect)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from pydantic import BaseModel, ValidationError

from core.db import run_db
from llm import (
    LLMError,
    LLMProvider,
    ModelOutputInvalid,
    ObjectDelta,
    ObjectResult,
    Tool,
    ToolCallFinished,
    ToolCallStarted,
    ToolLoopFinished,
    Usage,
    get_provider,
)
from usage.services import record_usage

from . import services
from .models import AgentRun, AgentStep

logger = logging.getLogger(__name__)

SchemaT = TypeVar("SchemaT", bound=BaseModel)
T = TypeVar("T")

MAX_STEP_NAME = AgentStep._meta.get_field("name").max_length


# --- What a run tells its listener, in order -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class StepStarted:
    step_id: str
    name: str
    model: str


@dataclass(frozen=True, slots=True)
class StepFinished:
    step_id: str
    name: str
    status: str  # "complete" | "error"
    output: Any
    duration_ms: int
    usage: Usage
    cached: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True)
class ToolInput:
    call_id: str
    tool_name: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolOutput:
    call_id: str
    output: dict[str, Any]
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ResultDelta:
    """The next piece of the final object's JSON text. `restart`: the model's first answer was
    invalid and is being retried; the text so far is void and starts again with this piece."""

    text: str
    restart: bool = False


@dataclass(frozen=True, slots=True)
class ResultDone:
    """The final object's JSON text is complete."""


@dataclass(frozen=True, slots=True)
class RunCompleted:
    result: dict[str, Any]
    usage: Usage


@dataclass(frozen=True, slots=True)
class RunFailed:
    error: RunError


RunEvent = (
    StepStarted
    | StepFinished
    | ToolInput
    | ToolOutput
    | ResultDelta
    | ResultDone
    | RunCompleted
    | RunFailed
)


@dataclass(frozen=True, slots=True)
class RunError:
    """Why a run failed, fit to show the client."""

    code: str
    message: str
    status: int

    @classmethod
    def from_exception(cls, exc: BaseException) -> RunError:
        if isinstance(exc, LLMError):
            return cls(exc.code, exc.safe_message, exc.status)
        return cls("agent_failed", "The agent run failed unexpectedly.", 500)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    status: str
    result: dict[str, Any] | None = None
    error: RunError | None = None


# --- Steps -------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Step:
    id: uuid.UUID
    name: str
    model: str
    output: Any = None
    usage: Usage = field(default_factory=Usage)
    cached: bool = False

    def done(self, output: Any, usage: Usage, model: str) -> None:
        self.output, self.usage, self.model = output, usage, model or self.model

    def hit(self, output: Any) -> None:
        self.output, self.cached = output, True


def step_cache_key(**material: Any) -> str:
    digest = hashlib.sha256(
        json.dumps(material, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()
    return f"agents:step:{digest}"


Workflow = Callable[["RunContext"], Awaitable[BaseModel]]


class RunContext:
    """One run in progress: its input, its models, and the step functions patterns call."""

    def __init__(
        self,
        *,
        run_id: uuid.UUID,
        user_id: int,
        pattern: str,
        input: dict[str, Any],
        provider: LLMProvider,
    ):
        self.run_id = run_id
        self.user_id = user_id
        self.pattern = pattern
        self.input = input
        self.provider = provider
        self.fast: str = settings.GEMINI_MODEL_FAST
        self.complex: str = settings.GEMINI_MODEL_COMPLEX
        self.usage = Usage()
        self.events: asyncio.Queue[RunEvent | _TaskEnded] = asyncio.Queue()
        self._positions = itertools.count(1)

    def emit(self, event: RunEvent) -> None:
        self.events.put_nowait(event)

    # The one place a step is timed, saved, accounted and announced.
    @asynccontextmanager
    async def _step(self, name: str, model: str) -> AsyncIterator[_Step]:
        name = name[:MAX_STEP_NAME]
        step = _Step(id=uuid.uuid4(), name=name, model=model)
        position = next(self._positions)
        started = time.monotonic()
        await run_db(
            services.start_step,
            run_id=self.run_id,
            step_id=step.id,
            position=position,
            name=name,
            model=model,
            started_at=timezone.now(),
        )
        self.emit(StepStarted(str(step.id), name, model))
        try:
            yield step
        except Exception as exc:
            error = RunError.from_exception(exc)
            duration_ms = _elapsed_ms(started)
            await run_db(
                services.finish_step,
                step_id=step.id,
                status=AgentStep.Status.ERROR,
                error=error.message,
                duration_ms=duration_ms,
                usage=step.usage,
                cached=False,
                model=step.model,
            )
            self.emit(
                StepFinished(
                    str(step.id), name, "error", None, duration_ms, step.usage, error=error.message
                )
            )
            raise
        duration_ms = _elapsed_ms(started)
        if not step.cached:
            self.usage += step.usage
            await record_usage(
                user_id=self.user_id,
                endpoint=f"agents:{self.pattern}",
                model=step.model,
                usage=step.usage,
            )
        await run_db(
            services.finish_step,
            step_id=step.id,
            status=AgentStep.Status.COMPLETE,
            output=step.output,
            duration_ms=duration_ms,
            usage=step.usage,
            cached=step.cached,
            model=step.model,
        )
        self.emit(
            StepFinished(
                str(step.id), name, "complete", step.output, duration_ms, step.usage, step.cached
            )
        )

    def _cache_key(self, name: str, kind: str, model: str, prompt: str, system, schema) -> str:
        return step_cache_key(
            provider=self.provider.name,
            pattern=self.pattern,
            step=name,
            kind=kind,
            model=model,
            prompt=prompt,
            system=system,
            schema=schema.model_json_schema() if schema else None,
        )

    async def _cache_get(self, key: str) -> Any:
        if settings.AGENT_CACHE_TTL_S <= 0:
            return None
        try:
            return await cache.aget(key)
        except Exception:
            logger.warning("Agent step cache unavailable", exc_info=True)
            return None

    async def _cache_set(self, key: str, value: Any) -> None:
        if settings.AGENT_CACHE_TTL_S <= 0:
            return
        try:
            await cache.aset(key, value, timeout=settings.AGENT_CACHE_TTL_S)
        except Exception:
            logger.warning("Agent step cache unavailable", exc_info=True)

    async def _cached_object(self, key: str, schema: type[SchemaT]) -> SchemaT | None:
        cached = await self._cache_get(key)
        if cached is None:
            return None
        try:
            return schema.model_validate(cached)
        except ValidationError:
            return None  # the schema changed since it was cached

    # --- The step kinds patterns use -----------------------------------------------------------
    async def text(self, name: str, prompt: str, *, model: str, system: str | None = None) -> str:
        """A step whose output is free text."""
        async with self._step(name, model) as step:
            key = self._cache_key(name, "text", model, prompt, system, None)
            cached = await self._cache_get(key)
            if isinstance(cached, str):
                step.hit(cached)
                return cached
            result = await self.provider.generate_text(prompt, model=model, system=system)
            step.done(result.text, result.usage, result.model)
            await self._cache_set(key, result.text)
            return result.text

    async def object(
        self,
        name: str,
        schema: type[SchemaT],
        prompt: str,
        *,
        model: str,
        system: str | None = None,
    ) -> SchemaT:
        """A step whose output is an object valid against `schema`."""
        async with self._step(name, model) as step:
            key = self._cache_key(name, "object", model, prompt, system, schema)
            cached = await self._cached_object(key, schema)
            if cached is not None:
                step.hit(cached.model_dump(mode="json"))
                return cached
            result = await self.provider.generate_object(schema, prompt, model=model, system=system)
            output = result.object.model_dump(mode="json")
            step.done(output, result.usage, result.model)
            await self._cache_set(key, output)
            return result.object

    async def final(
        self,
        name: str,
        schema: type[SchemaT],
        prompt: str,
        *,
        model: str,
        system: str | None = None,
    ) -> SchemaT:
        """The run's result: an object streamed as JSON text (ResultDelta…, ResultDone)."""
        async with self._step(name, model) as step:
            key = self._cache_key(name, "final", model, prompt, system, schema)
            cached = await self._cached_object(key, schema)
            if cached is not None:
                self.emit(ResultDelta(cached.model_dump_json()))
                self.emit(ResultDone())
                step.hit(cached.model_dump(mode="json"))
                return cached
            result: ObjectResult[SchemaT] | None = None
            async for event in self.provider.stream_object(
                schema, prompt, model=model, system=system
            ):
                if isinstance(event, ObjectDelta):
                    if event.text or event.restart:
                        self.emit(ResultDelta(event.text, event.restart))
                else:
                    result = event
            if result is None:
                raise ModelOutputInvalid("stream_object ended without a result")
            self.emit(ResultDone())
            output = result.object.model_dump(mode="json")
            step.done(output, result.usage, result.model)
            await self._cache_set(key, output)
            return result.object

    async def tool_loop(
        self,
        name: str,
        prompt: str,
        tools: Sequence[Tool],
        *,
        model: str,
        system: str | None = None,
        max_steps: int,
    ) -> dict[str, Any]:
        """A function-calling loop; each tool call is announced. Returns the transcript
        {"text", "modelCalls", "toolCalls": [{"name", "args", "output", "isError"}]}. Not cached:
        the tools run every time."""
        async with self._step(name, model) as step:
            finished: ToolLoopFinished | None = None
            calls: list[dict[str, Any]] = []
            async for event in self.provider.run_tools(
                prompt, tools, model=model, system=system, max_steps=max_steps
            ):
                if isinstance(event, ToolCallStarted):
                    self.emit(ToolInput(event.call.id, event.call.name, event.call.args))
                elif isinstance(event, ToolCallFinished):
                    result = event.result
                    self.emit(ToolOutput(result.call.id, result.output, result.is_error))
                    calls.append(
                        {
                            "name": result.call.name,
                            "args": result.call.args,
                            "output": result.output,
                            "isError": result.is_error,
                        }
                    )
                elif isinstance(event, ToolLoopFinished):
                    finished = event
            if finished is None:
                raise ModelOutputInvalid("run_tools ended without finishing")
            transcript = {"text": finished.text, "modelCalls": finished.steps, "toolCalls": calls}
            step.done(transcript, finished.usage, finished.model)
            return transcript

    async def concurrently(self, *steps: Awaitable[T]) -> list[T]:
        """Run steps at the same time; the first failure cancels the others and is raised."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(_awaited(step)) for step in steps]
        except BaseExceptionGroup as failures:
            raise _first_failure(failures) from None
        return [task.result() for task in tasks]


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _first_failure(group: BaseExceptionGroup) -> BaseException:
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    return next((exc for exc in leaves if isinstance(exc, LLMError)), leaves[0])


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


# --- Running a pattern -------------------------------------------------------------------------
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


class _TaskEnded:
    """Queue sentinel: the run's task is over (after any events it emitted)."""


async def run_events(ctx: RunContext, workflow: Workflow) -> AsyncIterator[RunEvent]:
    """Run `workflow` as a task and yield its events as they happen, ending with RunCompleted or
    RunFailed. Concurrent steps emit into one queue, so events arrive in the order they happened.
    If the consumer stops early (the client went away), the run is cancelled and saved
    `interrupted`."""
    task = asyncio.create_task(execute(ctx, workflow))
    task.add_done_callback(lambda _: ctx.events.put_nowait(_TaskEnded()))
    ended = False
    try:
        while True:
            event = await ctx.events.get()
            if isinstance(event, _TaskEnded):
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
