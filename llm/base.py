"""The one interface chat and agents use to talk to a model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from .types import (
    ChatMessage,
    ObjectDelta,
    ObjectResult,
    SchemaT,
    StreamEvent,
    TextResult,
    Tool,
    ToolLoopEvent,
)


class LLMProvider(Protocol):
    """What a backend implements (`settings.LLM["BACKEND"]`) and what `llm.get_provider()` returns.

    A backend makes one model call per method with the model it is given and raises an `LLMError`
    when it fails. `llm.resilience.ResilientProvider` wraps every backend once: fallback to
    `LLM["MODELS"]["fallback"]`, the wait a rate limit asks for, and one `llm.calls` log line per
    call (see its docstring)."""

    #: A short label for the backend ("gemini", "offline"): /healthz, logs, agent cache keys.
    name: str

    def stream_chat(
        self, messages: Sequence[ChatMessage], *, model: str, web_search: bool = False
    ) -> AsyncIterator[StreamEvent]:
        """Stream a reply to a conversation. `system` messages become the system instruction,
        `assistant` turns are the model's, a message's `files` go before its text. Yields
        ReasoningDelta… (thought summaries, when the backend is configured to ask for them),
        TextDelta… and Source… (with `web_search`, one per distinct web page the answer was
        grounded in) in arrival order, then one StreamFinish. Failures before the first event
        are retried and may fall back to another model; a failure after it raises an LLMError
        at once."""
        ...

    async def generate_text(
        self, prompt: str, *, model: str, system: str | None = None
    ) -> TextResult: ...

    async def generate_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> ObjectResult[SchemaT]:
        """JSON mode with `schema` as the response schema. Invalid JSON is retried once, then
        ModelOutputInvalid."""
        ...

    def stream_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> AsyncIterator[ObjectDelta | ObjectResult[SchemaT]]:
        """Like generate_object, but yields ObjectDelta as the JSON text arrives and ends with the
        validated ObjectResult."""
        ...

    def run_tools(
        self,
        prompt: str,
        tools: Sequence[Tool],
        *,
        model: str,
        system: str | None = None,
        max_steps: int = 8,
    ) -> AsyncIterator[ToolLoopEvent]:
        """A function-calling loop: call the model with the tools, run each tool it asks for, send
        the results back, until it answers in text or `max_steps` model calls were made."""
        ...
