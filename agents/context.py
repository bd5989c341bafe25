"""The run context: what a pattern is given, and the one place its steps are timed, cached, saved,
accounted and announced.

A pattern is an async function of a `RunContext`. It calls named steps on it (`text`, `object`,
`tool_loop`, and `final` for the streamed result) and may run steps `concurrently`. Each step saves
an `AgentStep` row when it starts and updates it when it ends, records its usage, and emits
`agents.events` onto the context's queue. `agents.execution` runs a pattern and closes its run."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.utils import timezone
from pydantic import BaseModel

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
    model_for,
)
from usage.services import record_usage

from . import services
from .events import (
    ResultDelta,
    ResultDone,
    RunError,
    RunEvent,
    StepFinished,
    StepStarted,
    ToolInput,
    ToolOutput,
)
from .models import AgentStep
from .step_cache import StepCache

logger = logging.getLogger(__name__)

SchemaT = TypeVar("SchemaT", bound=BaseModel)
T = TypeVar("T")

MAX_STEP_NAME = AgentStep._meta.get_field("name").max_length

Workflow = Callable[["RunContext"], Awaitable[BaseModel]]


class TaskEnded:
    """Queue sentinel: the run's task is over (after any events it emitted)."""


# --- Steps ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class Step:
    """A step in progress. `cached` holds the answer found in the step cache (text or object), if
    any; the step kind then returns it instead of calling the model. `partial` is what the step
    has sent the client so far (a final step's JSON text, a tool loop's answered calls): kept as
    its output if it ends early."""

    id: uuid.UUID
    name: str
    model: str
    cache_key: str | None = None
    cached: str | BaseModel | None = None
    output: Any = None
    partial: Any = None
    usage: Usage = field(default_factory=Usage)

    def done(self, output: Any, usage: Usage, model: str) -> None:
        self.output, self.usage, self.model = output, usage, model or self.model


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


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
        self.fast: str = model_for("fast")
        self.complex: str = model_for("complex")
        self.usage = Usage()
        self.cache = StepCache(user_id=user_id, provider=provider.name, pattern=pattern)
        self.events: asyncio.Queue[RunEvent | TaskEnded] = asyncio.Queue()
        self._positions = itertools.count(1)

    def emit(self, event: RunEvent) -> None:
        self.events.put_nowait(event)

    # The one place a step is timed, cached, saved, accounted and announced.
    @asynccontextmanager
    async def _step(
        self,
        name: str,
        model: str,
        *,
        kind: str,
        prompt: str,
        system: str | None,
        schema: type[BaseModel] | None = None,
        cacheable: bool = True,
    ) -> AsyncIterator[Step]:
        name = name[:MAX_STEP_NAME]
        step = Step(id=uuid.uuid4(), name=name, model=model)
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

        async def close(status: str, output: Any, *, error: str = "", cached: bool = False) -> int:
            """Save how the step ended; its duration."""
            duration_ms = _elapsed_ms(started)
            await run_db(
                services.finish_step,
                step_id=step.id,
                status=status,
                output=output,
                error=error,
                duration_ms=duration_ms,
                usage=step.usage,
                cached=cached,
                model=step.model,
            )
            return duration_ms

        try:
            if cacheable:
                step.cache_key = self.cache.key(
                    step=name, kind=kind, model=model, prompt=prompt, system=system, schema=schema
                )
                step.cached = await self.cache.get(step.cache_key, schema)
                if step.cached is not None:
                    step.output = (
                        step.cached.model_dump(mode="json")
                        if isinstance(step.cached, BaseModel)
                        else step.cached
                    )
            yield step
        except asyncio.CancelledError:
            # Stopped (the client left, a sibling failed): a step that streamed keeps what it
            # sent; the others are closed with the run (services.finish_run).
            if step.partial is not None:
                await asyncio.shield(close(AgentStep.Status.INTERRUPTED, step.partial))
            raise
        except Exception as exc:
            error = RunError.from_exception(exc)
            duration_ms = await close(AgentStep.Status.ERROR, step.partial, error=error.message)
            self.emit(
                StepFinished(
                    str(step.id),
                    name,
                    "error",
                    step.partial,
                    duration_ms,
                    step.usage,
                    error=error.message,
                )
            )
            raise
        hit = step.cached is not None
        if not hit:
            self.usage += step.usage
            await record_usage(
                user_id=self.user_id,
                endpoint=f"agents:{self.pattern}",
                model=step.model,
                usage=step.usage,
            )
            if step.cache_key is not None:
                await self.cache.set(step.cache_key, step.output)
        duration_ms = await close(AgentStep.Status.COMPLETE, step.output, cached=hit)
        self.emit(
            StepFinished(str(step.id), name, "complete", step.output, duration_ms, step.usage, hit)
        )

    # --- The step kinds patterns use -----------------------------------------------------------
    async def text(self, name: str, prompt: str, *, model: str, system: str | None = None) -> str:
        """A step whose output is free text."""
        async with self._step(name, model, kind="text", prompt=prompt, system=system) as step:
            if isinstance(step.cached, str):
                return step.cached
            result = await self.provider.generate_text(prompt, model=model, system=system)
            step.done(result.text, result.usage, result.model)
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
        async with self._step(
            name, model, kind="object", prompt=prompt, system=system, schema=schema
        ) as step:
            if isinstance(step.cached, schema):
                return step.cached
            result = await self.provider.generate_object(schema, prompt, model=model, system=system)
            step.done(result.object.model_dump(mode="json"), result.usage, result.model)
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
        """The run's result: an object streamed as JSON text (ResultDelta…, ResultDone). If the
        stream fails or is stopped, the step keeps the JSON text its client received (of the
        current attempt, when an invalid answer was retried) as its output."""
        async with self._step(
            name, model, kind="final", prompt=prompt, system=system, schema=schema
        ) as step:
            if isinstance(step.cached, schema):
                self.emit(ResultDelta(step.cached.model_dump_json()))
                self.emit(ResultDone())
                return step.cached
            result: ObjectResult[SchemaT] | None = None
            async for event in self.provider.stream_object(
                schema, prompt, model=model, system=system
            ):
                if isinstance(event, ObjectDelta):
                    if event.text or event.restart:
                        self.emit(ResultDelta(event.text, event.restart))
                        # A restart opens a new text part at the client: the old one is void.
                        kept = "" if event.restart else step.partial or ""
                        step.partial = kept + event.text
                else:
                    result = event
            if result is None:
                raise ModelOutputInvalid("stream_object ended without a result")
            self.emit(ResultDone())
            step.done(result.object.model_dump(mode="json"), result.usage, result.model)
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
        the tools run every time. If it fails or is stopped, the step keeps {"toolCalls"} of the
        calls answered so far (what its client was shown) as its output."""
        async with self._step(
            name, model, kind="tools", prompt=prompt, system=system, cacheable=False
        ) as step:
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
                    step.partial = {"toolCalls": list(calls)}
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
