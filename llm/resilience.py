"""What every backend gets, written once: fallback, the wait a rate limit asks for, call logging.

`ResilientProvider(backend)` has the backend's interface (`llm.base.LLMProvider`) and is what
`llm.get_provider()` returns. For each call it:

* counts the HTTP requests the backend sends (its transport calls `llm.calllog.count_attempt()`;
  the backend's own retries of 408/429/5xx are included);
* when the backend fails before its first event (a stream) or its result (a request) with
  `ModelRateLimited` or `ModelUnavailable`: waits once for the delay a 429 asks for (RetryInfo),
  when that is at most `max_retry_delay_s`, then tries `fallback_model` once (or, without a
  fallback, the same model once more after that wait); then the first error is raised. Any other
  `LLMError` (a rejected request, blocked content, invalid output) is raised at once;
* after the first event nothing is retried: the error is raised as it is (tools that already ran
  are not run twice);
* writes one `llm.calls` line when the call ends, fails or is cancelled (`llm.calllog.CallLog`).

Closing a stream (aclose, a cancelled task, `break`) closes the backend's stream, which closes its
upstream request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .base import LLMProvider
from .calllog import CallLog, current_call
from .errors import LLMError, ModelRateLimited, ModelUnavailable
from .types import (
    ChatMessage,
    ObjectDelta,
    ObjectResult,
    SchemaT,
    StreamEvent,
    TextResult,
    Tool,
    ToolLoopEvent,
    Usage,
)

T = TypeVar("T")
E = TypeVar("E")


async def _next_tracked(call: CallLog, stream: AsyncIterator[E]) -> E:
    """The stream's next event, with `call` as the current call while the backend works."""
    token = current_call.set(call)
    try:
        return await stream.__anext__()
    finally:
        current_call.reset(token)


def _outcome_of(last: Any, model: str) -> tuple[Usage | None, str]:
    usage = getattr(last, "usage", None)
    return (usage if isinstance(usage, Usage) else None), getattr(last, "model", None) or model


class ResilientProvider:
    """A backend with fallback, rate-limit waits and call logging (see the module docstring)."""

    def __init__(
        self,
        backend: LLMProvider,
        *,
        fallback_model: str | None = None,
        max_retry_delay_s: float = 20.0,
    ):
        self.backend = backend
        self.name = backend.name
        self.fallback_model = fallback_model or None
        self.max_retry_delay_s = max_retry_delay_s

    def __repr__(self) -> str:
        return f"ResilientProvider({self.backend!r}, fallback={self.fallback_model!r})"

    async def aclose(self) -> None:
        close = getattr(self.backend, "aclose", None)
        if close is not None:
            await close()

    # LLMProvider ---------------------------------------------------------------------------------
    def stream_chat(
        self, messages: Sequence[ChatMessage], *, model: str, web_search: bool = False
    ) -> AsyncIterator[StreamEvent]:
        return self._stream(
            "stream_chat",
            model,
            lambda m: self.backend.stream_chat(messages, model=m, web_search=web_search),
        )

    async def generate_text(
        self, prompt: str, *, model: str, system: str | None = None
    ) -> TextResult:
        return await self._call(
            "generate_text",
            model,
            lambda m: self.backend.generate_text(prompt, model=m, system=system),
        )

    async def generate_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> ObjectResult[SchemaT]:
        return await self._call(
            "generate_object",
            model,
            lambda m: self.backend.generate_object(schema, prompt, model=m, system=system),
        )

    def stream_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> AsyncIterator[ObjectDelta | ObjectResult[SchemaT]]:
        # A retried attempt (invalid output) sends its request between events.
        return self._stream(
            "stream_object",
            model,
            lambda m: self.backend.stream_object(schema, prompt, model=m, system=system),
            requests_between_events=True,
        )

    def run_tools(
        self,
        prompt: str,
        tools: Sequence[Tool],
        *,
        model: str,
        system: str | None = None,
        max_steps: int = 8,
    ) -> AsyncIterator[ToolLoopEvent]:
        return self._stream(
            "run_tools",
            model,
            lambda m: self.backend.run_tools(
                prompt, tools, model=m, system=system, max_steps=max_steps
            ),
            requests_between_events=True,
        )

    # the policy ----------------------------------------------------------------------------------
    async def _next_model(self, error: LLMError, requested: str, tried: list[str]) -> str | None:
        """After `error` (before any output): the model to try next, or None to give up."""
        if not isinstance(error, ModelRateLimited | ModelUnavailable):
            return None
        fallback = self.fallback_model
        nxt = fallback if fallback and fallback != requested and fallback not in tried else None
        delay = error.retry_after if isinstance(error, ModelRateLimited) else None
        if delay is not None and 0 <= delay <= self.max_retry_delay_s and len(tried) == 1:
            await asyncio.sleep(delay)
            if nxt is None:
                nxt = requested
        return nxt

    async def _call(self, operation: str, model: str, make: Callable[[str], Awaitable[T]]) -> T:
        call = CallLog(self.name, operation, model)
        current, tried = model, [model]
        first_error: LLMError | None = None
        token = current_call.set(call)
        try:
            while True:
                try:
                    result = await make(current)
                    break
                except LLMError as error:
                    first_error = first_error or error
                    nxt = await self._next_model(error, model, tried)
                    if nxt is None:
                        raise first_error  # noqa: B904 - the first error is the one to report
                    tried.append(nxt)
                    current = nxt
        except LLMError as exc:
            call.done(exc.code, model_used=current)
            raise
        except asyncio.CancelledError:
            call.done("cancelled", model_used=current)
            raise
        finally:
            current_call.reset(token)
        usage, used = _outcome_of(result, current)
        call.done("ok", usage=usage, model_used=used)
        return result

    async def _stream(
        self,
        operation: str,
        model: str,
        open_stream: Callable[[str], AsyncIterator[E]],
        *,
        requests_between_events: bool = False,
    ) -> AsyncIterator[E]:
        call = CallLog(self.name, operation, model)
        current, tried = model, [model]
        first_error: LLMError | None = None
        stream: AsyncIterator[E] | None = None
        last: Any = None
        outcome = "error"
        try:
            while True:  # until the first event (or the end of an empty stream)
                stream = open_stream(current)
                try:
                    last = await _next_tracked(call, stream)
                    break
                except StopAsyncIteration:
                    break
                except LLMError as error:
                    await stream.aclose()  # type: ignore[attr-defined]
                    stream = None
                    first_error = first_error or error
                    nxt = await self._next_model(error, model, tried)
                    if nxt is None:
                        raise first_error  # noqa: B904 - the first error is the one to report
                    tried.append(nxt)
                    current = nxt
            if last is not None:
                yield last
                if requests_between_events:
                    while True:
                        try:
                            last = await _next_tracked(call, stream)  # type: ignore[arg-type]
                        except StopAsyncIteration:
                            break
                        yield last
                else:
                    async for last in stream:  # type: ignore[union-attr] # the hot loop
                        yield last
            outcome = "ok"
        except LLMError as exc:
            outcome = exc.code
            raise
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "cancelled"
            raise
        finally:
            if stream is not None:
                await stream.aclose()  # type: ignore[attr-defined]
            usage, used = _outcome_of(last, current) if outcome == "ok" else (None, current)
            call.done(outcome, usage=usage, model_used=used)
