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
    #: "gemini" or "offline"
    name: str

    def stream_chat(
        self, messages: Sequence[ChatMessage], *, model: str
    ) -> AsyncIterator[StreamEvent]:
        """Stream a reply to a conversation. `system` messages become the system instruction,
        `assistant` turns are the model's. Yields TextDelta…, then one StreamFinish. Failures before
        the first delta are retried (SDK retry options), then `fallback_model` is tried once, then
        an LLMError is raised; a failure after the first delta raises an LLMError at once."""
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

    async def count_tokens(self, messages: Sequence[ChatMessage], *, model: str) -> int: ...
