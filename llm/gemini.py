"""`GeminiProvider`: the LLMProvider on google-genai's async client. The only module that imports
google.genai.

Faults (see `LLMProvider.stream_chat`):
* Before the first text: the SDK retries 408/429/5xx, timeouts and connect errors
  (`HttpRetryOptions`). When it gives up, a 429 whose RetryInfo delay is at most
  `retry_max_delay_s` is waited out once, then `fallback_model` is tried once (or, without a
  fallback, the same model once more after that wait); then the first error is raised, mapped to
  an `LLMError`. 4xx other than 408/429 are raised at once.
* After the first text: nothing is retried; mid-stream error frames and dropped connections
  raise `ModelUnavailable` (or the mapped error) at once.
* Cancellation: closing the iterator (aclose(), a cancelled task, `break`) closes the SDK stream,
  which closes the HTTP response, so the server sees the disconnect.

`run_tools`: a manual function-calling loop. The model call number `max_steps` is made with
function calling mode NONE, so the loop always ends in at most `max_steps` model calls with the
model's text answer; if the model still asks for tools on that call, they are not run and the
loop finishes with whatever text it gave.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel, ValidationError

from .calllog import CallLog
from .errors import (
    ContentBlocked,
    LLMError,
    ModelOutputInvalid,
    ModelRateLimited,
    ModelRequestRejected,
    ModelUnavailable,
)
from .structured import parse_partial
from .tool_calls import execute_tool_call
from .types import (
    ChatMessage,
    FinishReason,
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
    Usage,
)

logger = logging.getLogger("llm.gemini")

RETRY_STATUS_CODES = [408, 429, 500, 502, 503, 504]

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content-filter",
    "RECITATION": "content-filter",
    "BLOCKLIST": "content-filter",
    "PROHIBITED_CONTENT": "content-filter",
    "SPII": "content-filter",
    "IMAGE_SAFETY": "content-filter",
}
_BLOCKING_FINISH = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"}

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)
for _module_name in ("httpx2", "httpx", "aiohttp"):
    try:
        _module = __import__(_module_name)
    except ImportError:  # pragma: no cover - depends on what is installed
        continue
    _base = getattr(_module, "TransportError", None) or getattr(_module, "ClientError", None)
    if isinstance(_base, type):
        _TRANSPORT_ERRORS += (_base,)


class _Tracking:
    """What the HTTP client's hooks record for the model call running in this task: the number of
    requests sent (SDK retries included) and, for streams, the responses, so that closing the
    stream can close the HTTP response at once. (The SDK's nested generators only close it when
    the garbage collector gets to them.)"""

    __slots__ = ("call", "responses")

    def __init__(self, call: CallLog, *, stream: bool = False):
        self.call = call
        self.responses: list[Any] | None = [] if stream else None

    async def close_responses(self) -> None:
        for response in self.responses or ():
            try:
                await response.aclose()
            except Exception:
                logger.debug("closing a model response failed", exc_info=True)
        if self.responses:
            self.responses.clear()


# Set only around awaits that send requests, never across a yield, so it never leaks into a
# caller's context.
_tracking: contextvars.ContextVar[_Tracking | None] = contextvars.ContextVar(
    "llm_gemini_tracking", default=None
)


async def _on_request(request: Any) -> None:
    tracking = _tracking.get()
    if tracking is not None:
        tracking.call.attempts += 1


async def _on_response(response: Any) -> None:
    tracking = _tracking.get()
    if tracking is not None and tracking.responses is not None:
        tracking.responses.append(response)


def _connection_limits(max_connections: int) -> Any:
    """Up to `max_connections` upstream connections (a streamed reply holds one for its whole
    length, so this caps the worker's concurrent model streams; httpx's default is 100), and 100
    of them kept alive (httpx keeps 20): after a burst, a busy worker reuses its connections
    instead of opening (and, against Gemini, TLS-handshaking) new ones for most requests."""
    try:
        import httpx2
    except ImportError:  # pragma: no cover - the SDK falls back to httpx
        import httpx as httpx2
    return httpx2.Limits(
        max_connections=max_connections, max_keepalive_connections=100, keepalive_expiry=30.0
    )


_ssl_context: Any = None


def _shared_ssl_context() -> Any:
    """One SSL context for every provider (loading the CA store costs ~35 ms each time; the SDK
    would build two per client). Made the way the SDK makes its own."""
    global _ssl_context
    if _ssl_context is None:
        import os
        import ssl

        cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
        try:
            import httpx2
        except ImportError:  # pragma: no cover
            httpx2 = None
        if httpx2 is not None and not (cafile or capath):
            _ssl_context = httpx2.create_ssl_context()
        else:
            import certifi

            _ssl_context = ssl.create_default_context(
                cafile=cafile or certifi.where(), capath=capath
            )
    return _ssl_context


# ---------------------------------------------------------------------------------------------
# Mapping SDK values to ours


def _finish_name(reason: Any) -> str | None:
    if reason is None:
        return None
    return str(getattr(reason, "value", reason))


def map_finish(reason: Any) -> FinishReason:
    name = _finish_name(reason)
    if name is None:
        return "other"
    return _FINISH.get(name, "other")


def map_usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> Usage:
    if metadata is None:
        return Usage()
    prompt = metadata.prompt_token_count or 0
    output = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return Usage(prompt, output, metadata.total_token_count or prompt + output)


def _parse_duration(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().removesuffix("s"))
        except ValueError:
            return None
    if isinstance(value, dict):
        return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
    return None


def retry_after_of(exc: genai_errors.APIError) -> float | None:
    """The delay a 429 asks for: RetryInfo.retryDelay, else Retry-After, else 'retry in Ns'."""
    body = exc.details if isinstance(exc.details, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = _parse_duration(detail.get("retryDelay"))
            if delay is not None:
                return delay
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is not None:
        try:
            value = headers.get("retry-after")
        except Exception:  # noqa: BLE001 - any odd headers object: no hint
            value = None
        delay = _parse_duration(value)
        if delay is not None:
            return delay
    match = re.search(r"retry in ([0-9.]+)\s*s", exc.message or "", re.IGNORECASE)
    return float(match.group(1)) if match else None


def map_error(exc: BaseException) -> LLMError:
    """Our exception for anything the SDK or the transport raised (chained to it)."""
    if isinstance(exc, LLMError):
        return exc
    error: LLMError
    if isinstance(exc, genai_errors.APIError):
        code = int(exc.code or 0)
        detail = f"{code} {exc.status or ''}: {exc.message or ''}".strip()
        if code == 429:
            error = ModelRateLimited(detail, retry_after=retry_after_of(exc))
        elif code == 408 or code >= 500 or code < 400:
            error = ModelUnavailable(detail)
        else:
            error = ModelRequestRejected(detail)
    elif isinstance(exc, _TRANSPORT_ERRORS):
        error = ModelUnavailable(f"{type(exc).__name__}: {exc}")
    elif isinstance(exc, genai_errors.UnknownApiResponseError):
        error = ModelUnavailable(f"Unreadable response: {str(exc)[:200]}")
    else:
        logger.error("unexpected error from google-genai", exc_info=exc)
        error = LLMError(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _to_contents(messages: Sequence[ChatMessage]) -> tuple[list[types.Content], str | None]:
    system: list[str] = []
    contents: list[types.Content] = []
    for message in messages:
        if message.role == "system":
            system.append(message.content)
        else:
            role = "model" if message.role == "assistant" else "user"
            contents.append(types.Content(role=role, parts=[types.Part(text=message.content)]))
    return contents, ("\n\n".join(system) if system else None)


def _user(text: str) -> list[types.Content]:
    return [types.Content(role="user", parts=[types.Part(text=text)])]


def _text_of(response: types.GenerateContentResponse) -> str:
    if not response.candidates:
        return ""
    content = response.candidates[0].content
    if content is None or not content.parts:
        return ""
    return "".join(p.text for p in content.parts if p.text and not p.thought)


def _check_blocked(response: types.GenerateContentResponse) -> None:
    """ContentBlocked for a blocked prompt, or an answer stopped by safety with no text."""
    feedback = response.prompt_feedback
    if not response.candidates:
        if feedback is not None and feedback.block_reason is not None:
            raise ContentBlocked(f"Prompt blocked: {_finish_name(feedback.block_reason)}")
        return
    reason = _finish_name(response.candidates[0].finish_reason)
    if reason in _BLOCKING_FINISH and not _text_of(response):
        raise ContentBlocked(f"Answer blocked: {reason}")


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.removesuffix("```").rstrip().removesuffix("```")
    return text


class _StreamEnd:
    """The last item of `_stream`: how the stream ended."""

    __slots__ = ("finish", "model", "usage")

    def __init__(self, finish: FinishReason, usage: Usage, model: str):
        self.finish = finish
        self.usage = usage
        self.model = model


# ---------------------------------------------------------------------------------------------


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
        fallback_model: str | None = None,
        api_version: str | None = None,
        max_connections: int = 1000,
    ):
        if not api_key:
            raise ValueError("GeminiProvider needs an API key (GEMINI_API_KEY).")
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.retry_initial_delay_s = retry_initial_delay_s
        self.retry_max_delay_s = retry_max_delay_s
        self.fallback_model = fallback_model or None
        http_options = types.HttpOptions(
            base_url=base_url,
            api_version=api_version,
            timeout=int(timeout_s * 1000) if timeout_s else None,
            retry_options=types.HttpRetryOptions(
                attempts=max(1, max_retries + 1),
                initial_delay=retry_initial_delay_s,
                max_delay=retry_max_delay_s,
                jitter=min(1.0, retry_initial_delay_s),
                http_status_codes=RETRY_STATUS_CODES,
            ),
            client_args={"verify": _shared_ssl_context()},
            async_client_args={
                "verify": _shared_ssl_context(),
                "ssl": _shared_ssl_context(),  # the SDK's websocket/aiohttp argument
                "event_hooks": {"request": [_on_request], "response": [_on_response]},
                "limits": _connection_limits(max_connections),
            },
        )
        self._client = genai.Client(api_key=api_key, vertexai=False, http_options=http_options)
        self._models = self._client.aio.models
        self._configs: dict[Any, types.GenerateContentConfig] = {}
        self._schema_options: dict[type[BaseModel], dict[str, Any]] = {}

    def __repr__(self) -> str:  # never show the key
        return f"GeminiProvider(base_url={self.base_url!r}, fallback={self.fallback_model!r})"

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    # configs, built once per (kind, system, schema) ------------------------------------------
    def _config(self, key: Any, build: Any) -> types.GenerateContentConfig:
        config = self._configs.get(key)
        if config is None:
            if len(self._configs) > 512:
                self._configs.clear()
            config = self._configs[key] = build()
        return config

    def _text_config(self, system: str | None) -> types.GenerateContentConfig:
        return self._config(
            ("text", system),
            lambda: types.GenerateContentConfig(
                system_instruction=system,
                automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            ),
        )

    def _schema_option(self, schema: type[BaseModel]) -> dict[str, Any]:
        """`response_schema=<class>` when the SDK can convert it (it rejects e.g. gt/lt bounds),
        else the class's JSON Schema as `response_json_schema`."""
        option = self._schema_options.get(schema)
        if option is None:
            option = {"response_schema": schema}
            try:
                from google.genai import _transformers

                _transformers.t_schema(self._client._api_client, schema)
            except ImportError:  # pragma: no cover - SDK layout changed; trust the SDK
                pass
            except Exception as exc:  # noqa: BLE001 - any conversion failure: use JSON Schema
                logger.info("response_schema conversion failed for %s (%s)", schema, exc)
                option = {"response_json_schema": schema.model_json_schema()}
            self._schema_options[schema] = option
        return option

    def _json_config(
        self, schema: type[BaseModel], system: str | None
    ) -> types.GenerateContentConfig:
        return self._config(
            ("json", system, schema),
            lambda: types.GenerateContentConfig(
                system_instruction=system,
                response_mime_type="application/json",
                automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
                **self._schema_option(schema),
            ),
        )

    # failure policy ------------------------------------------------------------------------------
    async def _next_model(self, error: LLMError, requested: str, tried: list[str]) -> str | None:
        """After `error` (before any output): the model to try next, or None to give up."""
        if not isinstance(error, ModelRateLimited | ModelUnavailable):
            return None
        fallback = self.fallback_model
        nxt = fallback if fallback and fallback != requested and fallback not in tried else None
        delay = error.retry_after if isinstance(error, ModelRateLimited) else None
        if delay is not None and 0 <= delay <= self.retry_max_delay_s and len(tried) == 1:
            await asyncio.sleep(delay)
            if nxt is None:
                nxt = requested
        return nxt

    async def _generate(
        self,
        call: CallLog,
        contents: list[types.Content],
        config: types.GenerateContentConfig,
    ) -> tuple[types.GenerateContentResponse, str]:
        """One non-streaming model call with the fallback policy. Returns (response, model)."""
        requested = current = call.model
        tried: list[str] = []
        first_error: LLMError | None = None
        token = _tracking.set(_Tracking(call))
        try:
            while True:
                tried.append(current)
                try:
                    response = await self._models.generate_content(
                        model=current, contents=contents, config=config
                    )
                    return response, current
                except Exception as exc:  # noqa: BLE001 - mapped to an LLMError, raised below
                    error = map_error(exc)
                    first_error = first_error or error
                    nxt = await self._next_model(error, requested, tried)
                    if nxt is None:
                        raise first_error from first_error.__cause__
                    current = nxt
        finally:
            _tracking.reset(token)

    async def _stream(
        self,
        operation: str,
        model: str,
        contents: list[types.Content],
        config: types.GenerateContentConfig,
    ) -> AsyncIterator[str | _StreamEnd]:
        """Text pieces of one streamed model call, then a `_StreamEnd`. Fallback before the first
        piece only; logs the call once when it ends, fails or is cancelled."""
        call = CallLog(self.name, operation, model)
        tracking = _Tracking(call, stream=True)
        current = model
        stream: Any = None
        usage_md = None
        finish = None
        blocked = None
        outcome = "error"
        try:
            tried: list[str] = []
            first_error: LLMError | None = None
            first: list[str] = []
            ended = True
            token = _tracking.set(tracking)
            try:
                while True:  # until the first text arrives (or the stream ends)
                    tried.append(current)
                    try:
                        stream = await self._models.generate_content_stream(
                            model=current, contents=contents, config=config
                        )
                        async for chunk in stream:
                            if chunk.usage_metadata is not None:
                                usage_md = chunk.usage_metadata
                            if chunk.candidates:
                                candidate = chunk.candidates[0]
                                if candidate.finish_reason is not None:
                                    finish = candidate.finish_reason
                                content = candidate.content
                                if content is not None and content.parts:
                                    first = [
                                        p.text for p in content.parts if p.text and not p.thought
                                    ]
                                    if first:
                                        ended = False
                                        break
                            elif chunk.prompt_feedback is not None:
                                blocked = chunk.prompt_feedback.block_reason
                        break
                    except Exception as exc:  # noqa: BLE001 - mapped to an LLMError, raised below
                        await tracking.close_responses()
                        if stream is not None:
                            await stream.aclose()
                            stream = None
                        error = map_error(exc)
                        first_error = first_error or error
                        nxt = await self._next_model(error, model, tried)
                        if nxt is None:
                            raise first_error from first_error.__cause__
                        current = nxt
                        usage_md = finish = blocked = None
            finally:
                _tracking.reset(token)

            for text in first:
                yield text
            if not ended:
                try:
                    async for chunk in stream:  # the hot loop: keep it lean
                        candidates = chunk.candidates
                        if candidates:
                            candidate = candidates[0]
                            content = candidate.content
                            if content is not None and content.parts:
                                for part in content.parts:
                                    text = part.text
                                    if text and not part.thought:
                                        yield text
                            if candidate.finish_reason is not None:
                                finish = candidate.finish_reason
                        if chunk.usage_metadata is not None:
                            usage_md = chunk.usage_metadata
                except Exception as exc:
                    raise map_error(exc) from exc
            elif blocked is not None:
                raise ContentBlocked(f"Prompt blocked: {_finish_name(blocked)}")
            outcome = "ok"
            yield _StreamEnd(map_finish(finish), map_usage(usage_md), current)
        except LLMError as exc:
            outcome = exc.code
            raise
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "cancelled"
            raise
        finally:
            await tracking.close_responses()
            if stream is not None:
                await stream.aclose()
            call.done(outcome, usage=map_usage(usage_md), model_used=current)

    # LLMProvider -------------------------------------------------------------------------------
    async def stream_chat(
        self, messages: Sequence[ChatMessage], *, model: str
    ) -> AsyncIterator[StreamEvent]:
        contents, system = _to_contents(messages)
        pieces = self._stream("stream_chat", model, contents, self._text_config(system))
        try:
            async for piece in pieces:
                if piece.__class__ is str:
                    yield TextDelta(piece)  # type: ignore[arg-type]
                else:
                    end: _StreamEnd = piece  # type: ignore[assignment]
                    yield StreamFinish(end.finish, end.usage, end.model)
        finally:
            await pieces.aclose()

    async def generate_text(
        self, prompt: str, *, model: str, system: str | None = None
    ) -> TextResult:
        call = CallLog(self.name, "generate_text", model)
        try:
            response, used = await self._generate(call, _user(prompt), self._text_config(system))
            usage = map_usage(response.usage_metadata)
            _check_blocked(response)
        except LLMError as exc:
            call.done(exc.code)
            raise
        call.done("ok", usage=usage, model_used=used)
        candidate = response.candidates[0] if response.candidates else None
        reason = map_finish(candidate.finish_reason if candidate else None)
        return TextResult(_text_of(response), usage, used, reason)

    async def generate_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> ObjectResult[SchemaT]:
        config = self._json_config(schema, system)
        contents = _user(prompt)
        usage = Usage()
        problem = ""
        for _attempt in range(2):
            call = CallLog(self.name, "generate_object", model)
            try:
                response, used = await self._generate(call, contents, config)
                step_usage = map_usage(response.usage_metadata)
                usage += step_usage
                _check_blocked(response)
            except LLMError as exc:
                call.done(exc.code)
                raise
            try:
                obj = schema.model_validate_json(_strip_fences(_text_of(response)))
            except ValidationError as exc:
                problem = str(exc)[:500]
                call.done("invalid_output", usage=step_usage, model_used=used)
                continue
            call.done("ok", usage=step_usage, model_used=used)
            return ObjectResult(obj, usage, used)
        raise ModelOutputInvalid(problem)

    async def stream_object(
        self, schema: type[SchemaT], prompt: str, *, model: str, system: str | None = None
    ) -> AsyncIterator[ObjectDelta | ObjectResult[SchemaT]]:
        config = self._json_config(schema, system)
        contents = _user(prompt)
        usage = Usage()
        problem = ""
        for attempt in range(2):
            buffer = ""
            partial: dict[str, Any] = {}
            restart = attempt > 0
            end: _StreamEnd | None = None
            pieces = self._stream("stream_object", model, contents, config)
            try:
                async for piece in pieces:
                    if isinstance(piece, _StreamEnd):
                        end = piece
                        continue
                    buffer += piece
                    parsed = parse_partial(buffer)
                    if isinstance(parsed, dict):
                        partial = parsed
                    yield ObjectDelta(piece, partial, restart)
                    restart = False
            finally:
                await pieces.aclose()
            assert end is not None
            usage += end.usage
            try:
                obj = schema.model_validate_json(_strip_fences(buffer))
            except ValidationError as exc:
                problem = str(exc)[:500]
                logger.info("stream_object: output did not match %s", schema.__name__)
                continue
            yield ObjectResult(obj, usage, end.model)
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
        declarations = types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name=tool.name,
                    description=tool.description,
                    parameters_json_schema=tool.parameters.model_json_schema(),
                )
                for tool in tools
            ]
        )
        no_afc = types.AutomaticFunctionCallingConfig(disable=True)

        def config(mode: str) -> types.GenerateContentConfig:
            return types.GenerateContentConfig(
                system_instruction=system,
                tools=[declarations],
                tool_config=types.ToolConfig(
                    function_calling_config=types.FunctionCallingConfig(mode=mode)
                ),
                automatic_function_calling=no_afc,
            )

        auto, final = config("AUTO"), config("NONE")
        contents = _user(prompt)
        usage = Usage()
        results = []
        text = ""
        used = model
        steps = 0
        max_steps = max(1, max_steps)
        while steps < max_steps:
            steps += 1
            last = steps == max_steps
            call = CallLog(self.name, "run_tools", model)
            try:
                response, used = await self._generate(call, contents, final if last else auto)
                step_usage = map_usage(response.usage_metadata)
                usage += step_usage
                _check_blocked(response)
            except LLMError as exc:
                call.done(exc.code, step=steps)
                raise
            call.done("ok", usage=step_usage, model_used=used, step=steps)
            content = response.candidates[0].content if response.candidates else None
            calls = (
                [p.function_call for p in (content.parts or []) if p.function_call]
                if content
                else []
            )
            if not calls or last:
                text = _text_of(response)
                break
            if not content.role:
                content.role = "model"
            contents.append(content)  # as received: keeps thoughtSignature
            replies = []
            for index, function_call in enumerate(calls):
                tool_call = ToolCall(
                    id=function_call.id or f"call_{steps}_{index}",
                    name=function_call.name or "",
                    args=dict(function_call.args or {}),
                )
                yield ToolCallStarted(tool_call)
                result = await execute_tool_call(by_name, tool_call)
                results.append(result)
                yield ToolCallFinished(result)
                replies.append(
                    types.Part(
                        function_response=types.FunctionResponse(
                            id=function_call.id, name=function_call.name, response=result.output
                        )
                    )
                )
            contents.append(types.Content(role="user", parts=replies))
        yield ToolLoopFinished(text, usage, used, steps, results)

    async def count_tokens(self, messages: Sequence[ChatMessage], *, model: str) -> int:
        contents = [
            types.Content(
                role="model" if m.role == "assistant" else "user",
                parts=[types.Part(text=m.content)],
            )
            for m in messages
        ]
        call = CallLog(self.name, "count_tokens", model)
        token = _tracking.set(_Tracking(call))
        try:
            response = await self._models.count_tokens(model=model, contents=contents)
        except Exception as exc:
            error = map_error(exc)
            call.done(error.code)
            raise error from exc
        finally:
            _tracking.reset(token)
        total = int(response.total_tokens or 0)
        call.done("ok", usage=Usage(total, 0, total))
        return total
