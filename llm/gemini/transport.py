"""How requests reach Gemini: google-genai's API client on an aiohttp session of ours.

The SDK's API client still authenticates, builds the URL and API version, retries (408/429/5xx
and connection errors, `HttpRetryOptions`) and pools connections; we skip what it then does per
streamed event (split the body through two nested generators, parse each event, dump it again,
wrap it in a pydantic model: about 60 µs a chunk) and its response models: `WireStream` splits
the SSE body by the SDK's own rules and reads the REST JSON (`llm.gemini.wire`) once per event
with orjson. The request body is serialised once, with orjson too (the SDK sends bytes as they
are). That uses the API client's `_build_request` and `_async_request`, its `HttpResponse`
(`response_stream`) and `_RawJsonLineBuffer`, which are private SDK surface: google-genai is
pinned in requirements.txt and `llm/tests/test_gemini_transport.py` fails with a clear message
if their shape changes.

The aiohttp session is ours (`HttpOptions.aiohttp_client`) so that we can give it what the SDK's
own lacks:
* a connection limit (`max_connections`: a streamed reply holds a connection for its whole
  length, so this caps the worker's concurrent model streams);
* one shared SSL context (loading the CA store costs ~35 ms; the SDK would build more per client);
* its `_request` counts each request sent for the current call (`llm.calllog`) and keeps the
  responses of a stream, so that closing the stream closes its HTTP response at once (the SDK's
  nested generators only release it when the garbage collector gets to them) and the server sees
  the disconnect;
* httpx's timeout meaning: the SDK gives aiohttp `ClientTimeout(total=timeout)`, which would cut
  any streamed reply longer than the timeout; `_Session` turns it into connect and per-read
  timeouts, as httpx had them.
An aiohttp session belongs to the loop that made it: the transport keeps one client per loop."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import re
import ssl
import time
import urllib.parse
import urllib.request
import warnings
import weakref
from collections import deque
from typing import Any

import aiohttp
import orjson
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.genai._api_client import _RawJsonLineBuffer

from ..calllog import count_attempt
from ..errors import LLMError, ModelRateLimited, ModelRequestRejected, ModelUnavailable
from . import wire

logger = logging.getLogger("llm.gemini")

RETRY_STATUS_CODES = [408, 429, 500, 502, 503, 504]

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    aiohttp.ClientError,
)

# The responses of the stream being opened by the running task; set only around the await that
# opens it, never across a yield.
_opening: contextvars.ContextVar[list[aiohttp.ClientResponse] | None] = contextvars.ContextVar(
    "llm_gemini_opening", default=None
)


_ssl_context: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """One SSL context for every client, made the way the SDK makes its own."""
    global _ssl_context
    if _ssl_context is None:
        import certifi

        _ssl_context = ssl.create_default_context(
            cafile=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            capath=os.environ.get("SSL_CERT_DIR"),
        )
    return _ssl_context


with warnings.catch_warnings():
    # aiohttp discourages subclassing its session; the SDK does the same for its own.
    warnings.simplefilter("ignore", DeprecationWarning)

    class _Session(aiohttp.ClientSession):
        """Each request is counted for the current call (`llm.calllog`), and the response of a
        stream being opened is kept (`_opening`). Here rather than in an aiohttp TraceConfig,
        whose machinery (a Trace per request, callbacks for the headers and each chunk sent)
        ran on every model call for these two lines.

        The SDK passes `ClientTimeout(total=t)`; a streamed reply may last longer than t, so
        t bounds connecting and each read instead (httpx's meaning of a timeout)."""

        async def _request(self, method: str, str_or_url: Any, **kwargs: Any) -> Any:
            timeout = kwargs.get("timeout")
            if isinstance(timeout, aiohttp.ClientTimeout) and timeout.total:
                kwargs["timeout"] = aiohttp.ClientTimeout(
                    sock_connect=timeout.total, sock_read=timeout.total
                )
            count_attempt()
            response = await super()._request(method, str_or_url, **kwargs)
            if (responses := _opening.get()) is not None:
                responses.append(response)
            return response

        def __del__(self, _warnings: Any = warnings) -> None:
            """A session of a loop that ended without `aclose()` (a test's, an `asyncio.run`):
            the garbage collector frees it; no "Unclosed client session" report (the SDK's own
            session does the same)."""

    class _Connector(aiohttp.TCPConnector):
        def __del__(self, _warnings: Any = warnings) -> None:
            if not self._closed and self._conns:
                self._close()


# ---------------------------------------------------------------------------------------------
# Errors


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
    elif isinstance(exc, genai_errors.UnknownApiResponseError | json.JSONDecodeError):
        error = ModelUnavailable(f"Unreadable response: {str(exc)[:200]}")
    else:
        logger.error("unexpected error from google-genai", exc_info=exc)
        error = LLMError(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _state(file: types.File) -> str:
    state = file.state
    return str(getattr(state, "value", state) or "ACTIVE")


# ---------------------------------------------------------------------------------------------


def _loads(text: str) -> Any:
    """orjson (about 3x the standard library on an event); what it refuses (a lone surrogate
    escape) is read by the standard library as before."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class WireStream:
    """The JSON events of one streamed model call (one `orjson.loads` each). An error object in
    the body (the way Gemini reports a failure after the status line, GEMINI_WIRE.md §4.3)
    raises the SDK's own APIError for it, as the SDK would. Errors are LLMErrors; `aclose()`
    closes the HTTP response unless it was read to its end (then the connection goes back to
    the pool).

    The body is split into events here, as the SDK's `HttpResponse._aiter_response_stream`
    splits an aiohttp body (lines at LF, each decoded and right-stripped; `data: ` lines joined
    until a blank line; other lines are raw JSON, gathered until their braces balance, the
    SDK's `_RawJsonLineBuffer`), but in one loop over what each read returns rather than through
    two nested async generators that copy every line: ~10 µs an event less."""

    __slots__ = (
        "_buffer",
        "_content",
        "_data",
        "_done",
        "_events",
        "_raw",
        "_response",
        "_responses",
    )

    def __init__(self, response: Any, responses: list[aiohttp.ClientResponse]):
        self._response: aiohttp.ClientResponse = response.response_stream
        self._content = self._response.content
        self._responses = responses
        self._events: deque[str] = deque()
        self._buffer = b""
        self._data: list[str] = []  # the `data:` lines of the event being read
        self._raw = _RawJsonLineBuffer()
        self._done = False

    def __aiter__(self) -> WireStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            while not self._events:
                if self._done:
                    raise StopAsyncIteration
                chunk = await self._content.readany()
                if chunk:
                    self._feed(chunk)
                else:
                    self._end()
            event = _loads(self._events.popleft())
            if "error" in event and next(iter(event)) == "error":  # the SDK's rule
                await genai_errors.APIError.raise_error_async(
                    event["error"].get("code"), event, self._response
                )
            return event
        except StopAsyncIteration:
            raise
        except Exception as exc:
            raise map_error(exc) from exc

    def _feed(self, chunk: bytes) -> None:
        lines = (self._buffer + chunk if self._buffer else chunk).split(b"\n")
        self._buffer = lines.pop()  # the line not ended yet
        for line in lines:
            self._line(line.decode().rstrip())

    def _line(self, line: str) -> None:
        if not line:
            if self._data:
                self._events.append("\n".join(self._data))
                self._data = []
        elif line.startswith("data: "):
            self._data.append(line[6:])
        elif (chunk := self._raw.add_line(line)) is not None:
            self._events.append(chunk)

    def _end(self) -> None:
        """The body ended: what is left, then the connection goes back to the pool."""
        if self._buffer:
            line, self._buffer = self._buffer, b""
            self._line(line.decode().rstrip())
        if remaining := self._raw.flush():
            self._events.append(remaining)
        if self._data:
            self._events.append("\n".join(self._data))
            self._data = []
        self._done = True
        self._responses = []
        self._response.release()

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            for response in self._responses:
                response.close()
            self._responses = []
            self._response.close()


class GeminiTransport:
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
    ):
        if not api_key:
            raise ValueError("The Gemini backend needs an API key (GEMINI_API_KEY).")
        self._api_key = api_key
        self.base_url = base_url
        self.max_connections = max_connections
        self._http_options = dict(
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
            # Only the sync httpx client the SDK always builds reads `verify` (so that it does not
            # load the CA store again); aiohttp requests read `ssl`.
            client_args={"verify": shared_ssl_context()},
            async_client_args={"verify": shared_ssl_context(), "ssl": shared_ssl_context()},
        )
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, genai.Client]
        self._clients = weakref.WeakKeyDictionary()
        #: Waiting for an uploaded file to leave PROCESSING: first pause, and the longest wait.
        self.file_poll_initial_s = 0.5
        self.file_poll_limit_s = 60.0

    def __repr__(self) -> str:  # never show the key
        return f"GeminiTransport(base_url={self.base_url!r})"

    def client(self) -> genai.Client:
        """The SDK client of the running loop, on an aiohttp session of ours (made on first use)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            session = _Session(
                connector=_Connector(
                    limit=self.max_connections,
                    limit_per_host=0,
                    keepalive_timeout=30.0,
                    ssl=shared_ssl_context(),
                ),
                # The API sets no cookie worth sending back: none is kept, none is looked up.
                cookie_jar=aiohttp.DummyCookieJar(),
                # The proxy is read from the environment once, here: with trust_env aiohttp
                # would read ~/.netrc and the proxy variables in a worker thread on every
                # request (two thread hops before each model call).
                trust_env=False,
                proxy=self._proxy(),
                read_bufsize=2**16,
            )
            options = types.HttpOptions(**self._http_options, aiohttp_client=session)
            client = genai.Client(api_key=self._api_key, vertexai=False, http_options=options)
            self._clients[loop] = client
        return client

    def _proxy(self) -> str | None:
        """HTTPS_PROXY / HTTP_PROXY (and NO_PROXY) for the API's host, as the SDK would use."""
        url = urllib.parse.urlsplit(self.base_url or "https://generativelanguage.googleapis.com")
        if url.hostname and urllib.request.proxy_bypass(url.hostname):
            return None
        return urllib.request.getproxies().get(url.scheme or "https")

    def session(self) -> aiohttp.ClientSession:
        return self.client()._api_client._http_options.aiohttp_client  # type: ignore[return-value]

    async def stream(self, model: str, body: dict[str, Any]) -> WireStream:
        """Open `models/{model}:streamGenerateContent?alt=sse` (SDK retries before any event)."""
        api_client = self.client()._api_client
        responses: list[aiohttp.ClientResponse] = []
        token = _opening.set(responses)
        try:
            request = api_client._build_request(
                "post", f"models/{model}:streamGenerateContent?alt=sse", body, None
            )
            request.data = wire.request_json(body)
            response = await api_client._async_request(request, None, stream=True)
        except Exception as exc:
            for opened in responses:
                opened.close()
            raise map_error(exc) from exc
        finally:
            _opening.reset(token)
        return WireStream(response, responses)

    async def request(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """`models/{model}:generateContent`, its JSON answer."""
        api_client = self.client()._api_client
        try:
            path = f"models/{model}:generateContent"
            request = api_client._build_request("post", path, body, None)
            request.data = wire.request_json(body)
            response = await api_client._async_request(request, None, stream=False)
            text = response.response_stream[0] if response.response_stream else ""
            return json.loads(text) if text else {}
        except Exception as exc:
            raise map_error(exc) from exc

    async def upload(self, data: bytes, *, mime_type: str, display_name: str = "") -> types.File:
        """Upload through the Files API (the SDK's resumable upload)."""
        import io

        config: dict[str, Any] = {"mime_type": mime_type}
        if display_name:
            config["display_name"] = display_name[:512]
        files = self.client().aio.files
        try:
            uploaded = await files.upload(file=io.BytesIO(data), config=config)
            # Gemini may still be processing it (audio, long PDFs): it can be used once ACTIVE.
            delay = self.file_poll_initial_s
            deadline = time.monotonic() + self.file_poll_limit_s
            while _state(uploaded) == "PROCESSING" and time.monotonic() < deadline:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                uploaded = await files.get(name=uploaded.name or "")
        except Exception as exc:
            raise map_error(exc) from exc
        if _state(uploaded) in ("PROCESSING", "FAILED"):
            raise ModelRequestRejected(
                f"Gemini could not prepare the file {uploaded.name}: {_state(uploaded)}"
            )
        return uploaded

    async def aclose(self) -> None:
        """Close the running loop's client and session."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        client = self._clients.pop(loop, None)
        if client is not None:
            session = client._api_client._http_options.aiohttp_client
            await client.aio.aclose()
            if session is not None:
                await session.close()
