"""`OfflineProvider`: a deterministic provider with no network, for development, demos and load
tests without a key. Same inputs, same outputs.

* stream_chat streams a reply derived from the last user message word by word ("chunk" = a word
  plus its trailing space), `chunk_delay_ms` apart. With `include_thoughts` a short reasoning
  summary comes first (ReasoningDelta); the reply names the last user message's attachments by
  type and size; with `web_search` two Source events follow the text.
* generate_object / stream_object return a schema-valid instance of any pydantic model
  (`llm.structured.build_example`): strings mention the field and the prompt's first words,
  numbers sit high in their range (8 for 1..10), enums take their first value, lists get 2 items.
* run_tools really calls the tools: `calculate` with the first arithmetic expression in the
  prompt, then `validateAnswer` (if offered) with arguments built from its parameters model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pydantic import ValidationError

from .calllog import count_attempt
from .errors import ModelOutputInvalid
from .expressions import find_expression
from .structured import build_example, example_from_schema, parse_partial
from .tokens import estimate_tokens
from .tool_calls import execute_tool_call
from .types import (
    ChatMessage,
    FilePart,
    ObjectDelta,
    ObjectResult,
    ReasoningDelta,
    SchemaT,
    Source,
    StreamEvent,
    StreamFinish,
    TextDelta,
    TextResult,
    Tool,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    ToolLoopEvent,
    ToolLoopFinished,
    ToolResult,
    Usage,
)

MODEL_NAME = "offline"

logger = logging.getLogger("llm")

# Digits, operators (incl. ** and ^), parentheses; must contain an operator between operands.

_OPENERS = [
    "Here is an offline reply, written without calling any model.",
    "This answer comes from the offline provider, so it is the same every time.",
    "The offline provider put this reply together locally.",
]
_MIDDLES = [
    "It streams word by word, the way a real model would, so the interface behaves as it will "
    "in production.",
    "Each word arrives as its own chunk, which is handy for trying out streaming clients and "
    "load tests.",
    "Nothing left this machine to produce it, and no API key was used.",
]
_CLOSERS = [
    "Set GEMINI_API_KEY to talk to Gemini instead.",
    "Configure a Gemini API key for real answers.",
    "With a key configured, Gemini answers instead of this stand-in text.",
]


#: The pages an offline "web search" cites (stable, and clearly not a real search).
SOURCES = (
    Source("source-1", "https://example.com/offline-search/1", "Offline search result 1"),
    Source("source-2", "https://example.com/offline-search/2", "Offline search result 2"),
)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def describe_files(files: Sequence[FilePart]) -> str:
    """ "You attached image/png (2.0 KB) and application/pdf (1.2 MB)." """
    if not files:
        return ""
    named = [f"{f.media_type} ({_size(len(f.data))})" for f in files]
    listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return f"You attached {listed}."


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _first_words(text: str, n: int = 6) -> str:
    words = text.split()
    snippet = " ".join(words[:n])
    return snippet + ("..." if len(words) > n else "")


class OfflineProvider:
    name = "offline"

    def __init__(self, *, chunk_delay_ms: float = 30, include_thoughts: bool = True):
        self.chunk_delay_ms = chunk_delay_ms
        self.include_thoughts = include_thoughts

    @staticmethod
    def check_options(options: dict[str, Any]) -> list[str]:
        """Problems with settings.LLM["OPTIONS"] for this backend (`llm.checks`)."""
        delay = options.get("chunk_delay_ms", 0)
        if not isinstance(delay, int | float) or delay < 0:
            return ["'chunk_delay_ms' must be a number >= 0."]
        return []

    @classmethod
    def announce(cls) -> None:
        """At start-up: offline mode is never a secret."""
        logger.warning(
            "AI_PROVIDER=offline: replies come from the local offline provider, not Gemini "
            "(set GEMINI_API_KEY to use Gemini)."
        )

    # text ----------------------------------------------------------------------------------------
    def reply_for(self, prompt: str) -> str:
        """The deterministic reply to `prompt` (about 40-60 words)."""
        prompt = " ".join(prompt.split())
        pick = _digest(prompt)
        said = _first_words(prompt, 12) or "nothing"
        return " ".join(
            [
                f'You said: "{said}".',
                _OPENERS[pick % 3],
                _MIDDLES[(pick // 3) % 3],
                f"Your message had {len(prompt.split())} words.",
                _CLOSERS[(pick // 9) % 3],
            ]
        )

    @staticmethod
    def _usage(prompt_text: str, reply: str) -> Usage:
        i, o = estimate_tokens(prompt_text), estimate_tokens(reply)
        return Usage(i, o, i + o)

    async def _pause(self) -> None:
        if self.chunk_delay_ms > 0:
            await asyncio.sleep(self.chunk_delay_ms / 1000)
        else:
            await asyncio.sleep(0)

    @staticmethod
    def reasoning_for(prompt: str) -> str:
        """The short "thought summary" streamed before the reply."""
        words = len(prompt.split())
        return (
            f"**Reading the message.** It has {words} words; the offline provider answers "
            "every message the same way, so there is nothing to work out."
        )

    async def stream_chat(
        self, messages: Sequence[ChatMessage], *, model: str, web_search: bool = False
    ) -> AsyncIterator[StreamEvent]:
        count_attempt()
        last = next((m for m in reversed(messages) if m.role == "user"), None)
        last_text = last.content if last is not None else ""
        reply = self.reply_for(last_text)
        attached = describe_files(last.files) if last is not None else ""
        if attached:
            reply = f"{attached} {reply}"
        usage = self._usage(" ".join(m.content for m in messages), reply)
        if self.include_thoughts:
            yield ReasoningDelta(self.reasoning_for(last_text))
            await self._pause()
        words = reply.split(" ")
        for i, word in enumerate(words):
            if i:
                await self._pause()
            yield TextDelta(word if i == len(words) - 1 else word + " ")
        if web_search:
            for source in SOURCES:
                yield source
        yield StreamFinish("stop", usage, MODEL_NAME)

    async def generate_text(
        self, prompt: str, *, model: str, system: str | None = None
    ) -> TextResult:
        count_attempt()
        await self._pause()
        reply = self.reply_for(prompt)
        usage = self._usage(f"{system or ''} {prompt}", reply)
        return TextResult(reply, usage, MODEL_NAME, "stop")

    # objects -------------------------------------------------------------------------------------
    def object_for(self, schema: type[SchemaT], prompt: str) -> SchemaT:
        """A schema-valid instance of `schema` whose strings mention the prompt."""
        about = _first_words(prompt, 5) or "the request"

        def text_for(field: str) -> str:
            label = re.sub(r"(?<!^)(?=[A-Z])", " ", field).replace("_", " ").lower() or "text"
            return f"Offline {label} for: {about}"

        try:
            return build_example(schema, text_for=text_for)  # type: ignore[return-value]
        except ValidationError as exc:
            raise ModelOutputInvalid(f"offline could not build {schema.__name__}: {exc}") from exc

    async def generate_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> ObjectResult[SchemaT]:
        count_attempt()
        await self._pause()
        obj = self.object_for(schema, prompt)
        usage = self._usage(f"{system or ''} {prompt}", obj.model_dump_json())
        return ObjectResult(obj, usage, MODEL_NAME)

    async def stream_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> AsyncIterator[ObjectDelta | ObjectResult[SchemaT]]:
        count_attempt()
        obj = self.object_for(schema, prompt)
        text = json.dumps(obj.model_dump(mode="json", by_alias=True), indent=1)
        usage = self._usage(f"{system or ''} {prompt}", text)
        size = max(1, -(-len(text) // 6))
        buffer = ""
        partial: dict[str, Any] = {}
        for start in range(0, len(text), size):
            await self._pause()
            piece = text[start : start + size]
            buffer += piece
            parsed = parse_partial(buffer)
            if isinstance(parsed, dict):
                partial = parsed
            yield ObjectDelta(piece, partial)
        yield ObjectResult(schema.model_validate_json(buffer), usage, MODEL_NAME)

    # tools ---------------------------------------------------------------------------------------
    @staticmethod
    def _args_for(tool: Tool, overrides: dict[str, Any]) -> dict[str, Any]:
        """Arguments for `tool`: `overrides` for the fields it has, schema examples for the rest."""
        schema = tool.parameters.model_json_schema()
        args = example_from_schema(schema)
        if not isinstance(args, dict):
            args = {}
        fields = tool.parameters.model_fields
        names = {(info.alias or name): name for name, info in fields.items()}
        for key, value in overrides.items():
            if key in args or key in names:
                args[key] = value
        return args

    async def run_tools(
        self,
        prompt: str,
        tools: Sequence[Tool],
        *,
        model: str,
        system: str | None = None,
        max_steps: int = 8,
    ) -> AsyncIterator[ToolLoopEvent]:
        by_name = {tool.name: tool for tool in tools}
        results: list[ToolResult] = []
        steps = 0
        usage = Usage()
        expression = find_expression(prompt)
        answer: str | None = None
        plan: list[tuple[str, dict[str, Any]]] = []
        calculate = by_name.get("calculate")
        if calculate is not None and expression is not None:
            plan.append(("calculate", {"expression": expression}))
        for name, overrides in plan:
            if steps >= max_steps - 1:
                break
            steps += 1
            await self._pause()
            call = ToolCall(f"offline_{steps}", name, self._args_for(by_name[name], overrides))
            yield ToolCallStarted(call)
            result = await execute_tool_call(by_name, call)
            results.append(result)
            yield ToolCallFinished(result)
            if not result.is_error:
                value = result.output.get("result", next(iter(result.output.values()), None))
                answer = None if value is None else str(value)
        validate = by_name.get("validateAnswer")
        if validate is not None and steps < max_steps - 1:
            steps += 1
            overrides = {
                "originalProblem": prompt,
                "proposedAnswer": answer if answer is not None else "unknown",
                "validationMethod": "recompute",
            }
            call = ToolCall(
                f"offline_{steps}", "validateAnswer", self._args_for(validate, overrides)
            )
            yield ToolCallStarted(call)
            result = await execute_tool_call(by_name, call)
            results.append(result)
            yield ToolCallFinished(result)
        steps += 1
        if answer is not None:
            text = (
                f"Offline answer: {expression} = {answer}. "
                "The result was computed with the calculate tool."
            )
        elif expression is not None:
            text = f"Offline answer: the expression {expression} could not be evaluated."
        else:
            text = "Offline answer: no arithmetic expression was found in the problem."
        usage = self._usage(f"{system or ''} {prompt}", text)
        for _ in range(steps):
            count_attempt()
        yield ToolLoopFinished(text, usage, MODEL_NAME, steps, results)


__all__ = ["MODEL_NAME", "OfflineProvider"]
