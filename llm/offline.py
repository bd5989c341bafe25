"""`OfflineProvider`: a deterministic provider with no network, for development, demos and load
tests without a key. Same inputs, same outputs.

* stream_chat streams a reply derived from the last user message word by word ("chunk" = a word
  plus its trailing space), `chunk_delay_ms` apart.
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
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pydantic import ValidationError

from .calllog import CallLog
from .errors import ModelOutputInvalid
from .structured import build_example, example_from_schema, parse_partial
from .tool_calls import execute_tool_call
from .types import (
    ChatMessage,
    ObjectDelta,
    ObjectResult,
    SchemaT,
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

# Digits, operators (incl. ** and ^), parentheses; must contain an operator between operands.
_EXPRESSION = re.compile(r"[-(]*\d[\d\s.,+\-*/^%()]*[\d)]")
_HAS_OPERATOR = re.compile(r"[\d)]\s*(?:\*\*|[-+*/^%])\s*[-(]*\d")

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


def estimate_tokens(text: str) -> int:
    return len(text) // 4 + 1


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _first_words(text: str, n: int = 6) -> str:
    words = text.split()
    snippet = " ".join(words[:n])
    return snippet + ("..." if len(words) > n else "")


def find_expression(text: str) -> str | None:
    """The first arithmetic expression in `text` (e.g. "2**10 + (3*4)"), or None."""
    for match in _EXPRESSION.finditer(text):
        candidate = match.group(0).strip().rstrip(".,").strip()
        if _HAS_OPERATOR.search(candidate) and candidate.count("(") == candidate.count(")"):
            return candidate
    return None


class OfflineProvider:
    name = "offline"

    def __init__(self, *, chunk_delay_ms: float = 30):
        self.chunk_delay_ms = chunk_delay_ms

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

    async def stream_chat(
        self, messages: Sequence[ChatMessage], *, model: str
    ) -> AsyncIterator[StreamEvent]:
        call = CallLog(self.name, "stream_chat", model)
        call.attempts = 1
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        reply = self.reply_for(last_user)
        usage = self._usage(" ".join(m.content for m in messages), reply)
        outcome = "cancelled"
        try:
            words = reply.split(" ")
            for i, word in enumerate(words):
                if i:
                    await self._pause()
                yield TextDelta(word if i == len(words) - 1 else word + " ")
            outcome = "ok"
            yield StreamFinish("stop", usage, MODEL_NAME)
        finally:
            call.done(outcome, usage=usage if outcome == "ok" else None, model_used=MODEL_NAME)

    async def generate_text(
        self, prompt: str, *, model: str, system: str | None = None
    ) -> TextResult:
        call = CallLog(self.name, "generate_text", model)
        call.attempts = 1
        await self._pause()
        reply = self.reply_for(prompt)
        usage = self._usage(f"{system or ''} {prompt}", reply)
        call.done("ok", usage=usage, model_used=MODEL_NAME)
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
        call = CallLog(self.name, "generate_object", model)
        call.attempts = 1
        await self._pause()
        obj = self.object_for(schema, prompt)
        usage = self._usage(f"{system or ''} {prompt}", obj.model_dump_json())
        call.done("ok", usage=usage, model_used=MODEL_NAME)
        return ObjectResult(obj, usage, MODEL_NAME)

    async def stream_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> AsyncIterator[ObjectDelta | ObjectResult[SchemaT]]:
        call = CallLog(self.name, "stream_object", model)
        call.attempts = 1
        obj = self.object_for(schema, prompt)
        text = json.dumps(obj.model_dump(mode="json", by_alias=True), indent=1)
        usage = self._usage(f"{system or ''} {prompt}", text)
        outcome = "cancelled"
        try:
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
            outcome = "ok"
            yield ObjectResult(schema.model_validate_json(buffer), usage, MODEL_NAME)
        finally:
            call.done(outcome, usage=usage, model_used=MODEL_NAME)

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
        log = CallLog(self.name, "run_tools", model)
        log.attempts = steps
        log.done("ok", usage=usage, model_used=MODEL_NAME, step=steps)
        yield ToolLoopFinished(text, usage, MODEL_NAME, steps, results)

    async def count_tokens(self, messages: Sequence[ChatMessage], *, model: str) -> int:
        return sum(estimate_tokens(m.content) for m in messages)


__all__ = ["MODEL_NAME", "OfflineProvider", "find_expression"]
