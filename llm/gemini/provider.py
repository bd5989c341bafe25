"""`GeminiProvider`: the Gemini backend. Builds REST bodies (`wire`), sends them through the SDK's
API client (`transport`), reads the JSON back (`wire`). Fallback, rate-limit waits and call
logging are `llm.resilience`'s; the SDK retries 408/429/5xx before any event.

* stream_chat: thought summaries requested when `include_thoughts` (and `thinking_budget`), the
  `googleSearch` tool with `web_search`; a message's files go inline (base64) unless the
  request's inline bytes would pass `inline_max_bytes`: then the largest are uploaded through the
  Files API and sent as `fileData`, their uri kept per `FilePart.key` until shortly before Gemini
  deletes the file (48 h). Inline parts are kept serialised per `FilePart.key` too
  (`inline_cache_bytes`): a continued conversation sends the same files with every turn.
* After the first event nothing is retried: error frames and dropped connections raise at once.
* Closing a stream (aclose, a cancelled task, `break`) closes its HTTP response, so the server
  sees the disconnect.
* run_tools: a manual function-calling loop. Model call number `max_steps` is made with function
  calling mode NONE, so the loop always ends in at most `max_steps` model calls with the model's
  text answer (tools it still asks for then are not run)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ModelOutputInvalid
from ..structured import parse_partial
from ..tool_calls import execute_tool_call
from ..types import (
    ChatMessage,
    FilePart,
    ObjectDelta,
    ObjectResult,
    SchemaT,
    StreamEvent,
    StreamFinish,
    TextDelta,
    TextResult,
    Tool,
    ToolCallFinished,
    ToolCallStarted,
    ToolLoopEvent,
    ToolLoopFinished,
    Usage,
)
from . import wire
from .transport import GeminiTransport

logger = logging.getLogger("llm.gemini")

INLINE_MAX_BYTES = 20 * 1024 * 1024
#: The serialised inline parts kept for later requests (`wire.InlineParts`): JSON bytes in all.
INLINE_CACHE_BYTES = 32 * 1024 * 1024
#: Gemini deletes uploaded files after 48 h; a cached uri is dropped an hour before that.
FILE_LIFETIME_S = 48 * 3600
FILE_MARGIN_S = 3600
_FILE_CACHE_SIZE = 1024


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.removesuffix("```").rstrip().removesuffix("```")
    return text


class GeminiProvider:
    name = "gemini"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        retry_initial_delay_s: float = 1.0,
        retry_max_delay_s: float = 20.0,
        max_connections: int = 1000,
        api_version: str | None = None,
        include_thoughts: bool = True,
        thinking_budget: int | None = None,
        inline_max_bytes: int = INLINE_MAX_BYTES,
        inline_cache_bytes: int = INLINE_CACHE_BYTES,
    ):
        self.transport = GeminiTransport(
            api_key=api_key,
            base_url=base_url,
            timeout_s=timeout_s,
            max_retries=max_retries,
            retry_initial_delay_s=retry_initial_delay_s,
            retry_max_delay_s=retry_max_delay_s,
            max_connections=max_connections,
            api_version=api_version,
        )
        self.include_thoughts = include_thoughts
        self.thinking_budget = thinking_budget
        self.inline_max_bytes = inline_max_bytes
        self._inline = wire.InlineParts(inline_cache_bytes)
        self._chat_config: dict[str, Any] = {}
        thinking = wire.thinking_config(include_thoughts, thinking_budget)
        if thinking:
            self._chat_config["thinkingConfig"] = thinking
        #: FilePart.key -> (fileData part, when to stop using it: time.time())
        self._files: dict[str, tuple[dict[str, Any], float]] = {}
        self._uploads: dict[str, asyncio.Future[dict[str, Any]]] = {}  # uploads under way
        self._schemas: dict[type[BaseModel], dict[str, Any]] = {}

    def __repr__(self) -> str:  # never show the key
        return f"GeminiProvider(base_url={self.transport.base_url!r})"

    @staticmethod
    def check_options(options: dict[str, Any]) -> list[str]:
        """Problems with settings.LLM["OPTIONS"] for this backend (`llm.checks`)."""
        problems = []
        if not options.get("api_key"):
            problems.append("the Gemini backend needs 'api_key' (GEMINI_API_KEY).")
        for key in ("timeout_s", "retry_initial_delay_s", "retry_max_delay_s"):
            value = options.get(key, 1)
            if not isinstance(value, int | float) or value < 0:
                problems.append(f"{key!r} must be a number of seconds >= 0.")
        for key in ("max_retries", "max_connections", "inline_max_bytes", "inline_cache_bytes"):
            value = options.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append(f"{key!r} must be a whole number >= 0.")
        budget = options.get("thinking_budget")
        if budget is not None and (not isinstance(budget, int) or budget < -1):
            problems.append("'thinking_budget' must be a whole number >= -1 (or None).")
        return problems

    async def aclose(self) -> None:
        await self.transport.aclose()

    # files -------------------------------------------------------------------------------------
    async def _file_parts(self, messages: Sequence[ChatMessage]) -> wire.FilePartFor:
        """How each file goes into this request: inline, or (when the inline bytes would pass
        `inline_max_bytes`) the largest files uploaded until the rest fit."""
        files = {f.key: f for m in messages for f in m.files}
        if not files:
            return self._inline
        inline = sum(wire.inline_size(f) for f in files.values())
        uploaded: dict[str, dict[str, Any]] = {}
        for file in sorted(files.values(), key=lambda f: len(f.data), reverse=True):
            if inline <= self.inline_max_bytes:
                break
            uploaded[file.key] = await self._uploaded(file)
            inline -= wire.inline_size(file)
        if not uploaded:
            return self._inline

        def part(file: FilePart) -> dict[str, Any] | wire.InlinePart:
            return uploaded.get(file.key) or self._inline(file)

        return part

    async def _uploaded(self, file: FilePart) -> dict[str, Any]:
        """The fileData part for `file`: cached, being uploaded for another call, or uploaded now.
        The upload runs as its own task, so a caller that is cancelled does not cancel it for
        the others waiting on it (nor lose the cached uri)."""
        cached = self._files.get(file.key)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        task = self._uploads.get(file.key)
        if task is None:
            task = asyncio.ensure_future(self._upload(file))
            self._uploads[file.key] = task
            task.add_done_callback(lambda done: self._upload_done(file.key, done))
        return await asyncio.shield(task)

    def _upload_done(self, key: str, task: asyncio.Future[dict[str, Any]]) -> None:
        if self._uploads.get(key) is task:
            del self._uploads[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every caller waiting on it may have left

    async def _upload(self, file: FilePart) -> dict[str, Any]:
        uploaded = await self.transport.upload(
            file.data, mime_type=file.media_type, display_name=file.filename
        )
        part = wire.file_data_part(uploaded.uri or "", uploaded.mime_type or file.media_type)
        expires = time.time() + FILE_LIFETIME_S
        if uploaded.expiration_time is not None:
            expires = min(expires, uploaded.expiration_time.timestamp())
        if len(self._files) >= _FILE_CACHE_SIZE:
            self._files.pop(next(iter(self._files)))
        self._files[file.key] = (part, expires - FILE_MARGIN_S)
        return part

    # one model call ------------------------------------------------------------------------------
    async def _events(self, model: str, body: dict[str, Any]) -> AsyncIterator[StreamEvent]:
        """The typed events of one streamed call, then its StreamFinish."""
        reader = wire.StreamReader()
        read = reader.read
        stream = await self.transport.stream(model, body)
        try:
            async for event in stream:  # the hot loop: keep it lean
                for item in read(event):
                    yield item
        finally:
            await stream.aclose()
        reader.raise_if_blocked()
        yield StreamFinish(reader.finish(), reader.usage(), model)

    async def _generate(self, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
        response = await self.transport.request(model, body)
        usage = wire.usage_of(response.get("usageMetadata"))
        wire.check_blocked(response)
        return response, usage

    # LLMProvider -------------------------------------------------------------------------------
    async def stream_chat(
        self, messages: Sequence[ChatMessage], *, model: str, web_search: bool = False
    ) -> AsyncIterator[StreamEvent]:
        contents, system = wire.contents_of(messages, await self._file_parts(messages))
        body = wire.request_body(
            contents,
            system=system,
            generation_config=self._chat_config,
            tools=[wire.GOOGLE_SEARCH_TOOL] if web_search else None,
        )
        events = self._events(model, body)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def generate_text(
        self, prompt: str, *, model: str, system: str | None = None
    ) -> TextResult:
        body = wire.request_body([wire.text_content("user", prompt)], system=system)
        response, usage = await self._generate(model, body)
        return TextResult(
            wire.text_of(response), usage, model, wire.finish_of(wire.finish_name(response))
        )

    def _schema_config(self, schema: type[BaseModel]) -> dict[str, Any]:
        """JSON mode with `responseSchema` (Gemini's OpenAPI subset, converted by the SDK) when
        the SDK can convert the class (it rejects e.g. gt/lt bounds), else `responseJsonSchema`."""
        config = self._schemas.get(schema)
        if config is None:
            config = {"responseMimeType": "application/json"}
            try:
                from google.genai import _transformers

                converted = _transformers.t_schema(self.transport.client()._api_client, schema)
                config["responseSchema"] = converted.model_dump(
                    mode="json", by_alias=True, exclude_none=True
                )
            except Exception as exc:  # noqa: BLE001 - any conversion failure: use JSON Schema
                logger.info("response_schema conversion failed for %s (%s)", schema, exc)
                config["responseJsonSchema"] = schema.model_json_schema()
            self._schemas[schema] = config
        return config

    async def generate_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> ObjectResult[SchemaT]:
        body = wire.request_body(
            [wire.text_content("user", prompt)],
            system=system,
            generation_config=self._schema_config(schema),
        )
        usage = Usage()
        problem = ""
        for _attempt in range(2):
            response, step_usage = await self._generate(model, body)
            usage += step_usage
            try:
                obj = schema.model_validate_json(_strip_fences(wire.text_of(response)))
            except ValidationError as exc:
                problem = str(exc)[:500]
                logger.info("generate_object: output did not match %s", schema.__name__)
                continue
            return ObjectResult(obj, usage, model)
        raise ModelOutputInvalid(problem)

    async def stream_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> AsyncIterator[ObjectDelta | ObjectResult[SchemaT]]:
        body = wire.request_body(
            [wire.text_content("user", prompt)],
            system=system,
            generation_config=self._schema_config(schema),
        )
        usage = Usage()
        problem = ""
        for attempt in range(2):
            buffer = ""
            partial: dict[str, Any] = {}
            restart = attempt > 0
            end: StreamFinish | None = None
            events = self._events(model, body)
            try:
                async for event in events:
                    if isinstance(event, StreamFinish):
                        end = event
                        continue
                    if not isinstance(event, TextDelta):
                        continue
                    buffer += event.text
                    parsed = parse_partial(buffer)
                    if isinstance(parsed, dict):
                        partial = parsed
                    yield ObjectDelta(event.text, partial, restart)
                    restart = False
            finally:
                await events.aclose()
            assert end is not None
            usage += end.usage
            try:
                obj = schema.model_validate_json(_strip_fences(buffer))
            except ValidationError as exc:
                problem = str(exc)[:500]
                logger.info("stream_object: output did not match %s", schema.__name__)
                continue
            yield ObjectResult(obj, usage, model)
            return
        raise ModelOutputInvalid(problem)

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
        declarations = wire.function_tools(
            [
                wire.function_declaration(
                    tool.name, tool.description, tool.parameters.model_json_schema()
                )
                for tool in tools
            ]
        )
        contents = [wire.text_content("user", prompt)]
        usage = Usage()
        results = []
        text = ""
        steps = 0
        max_steps = max(1, max_steps)
        while steps < max_steps:
            steps += 1
            last = steps == max_steps
            body = wire.request_body(
                contents,
                system=system,
                tools=declarations,
                tool_config=wire.calling_mode("NONE" if last else "AUTO"),
            )
            response, step_usage = await self._generate(model, body)
            usage += step_usage
            calls = wire.function_calls_of(response, steps)
            if not calls or last:
                text = wire.text_of(response)
                break
            contents.append(wire.model_turn_of(response))  # as received: keeps thoughtSignature
            replies = []
            for call, given_id in calls:
                yield ToolCallStarted(call)
                result = await execute_tool_call(by_name, call)
                results.append(result)
                yield ToolCallFinished(result)
                replies.append(wire.function_response_part(given_id, call.name, result.output))
            contents.append({"role": "user", "parts": replies})
        yield ToolLoopFinished(text, usage, model, steps, results)
