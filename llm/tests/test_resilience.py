"""llm.resilience wraps any backend: shown here with a small scripted backend of its own, so the
policy is tested apart from Gemini (test_gemini.py shows it on the Gemini backend)."""

from __future__ import annotations

import asyncio

import pytest

from llm import (
    ChatMessage,
    ModelRateLimited,
    ModelRequestRejected,
    ModelUnavailable,
    StreamFinish,
    TextDelta,
    TextResult,
    Usage,
)
from llm.calllog import count_attempt
from llm.resilience import ResilientProvider


class ScriptedBackend:
    """Fails each model call with the next scripted error (None: answers), and records models."""

    name = "scripted"

    def __init__(self, *outcomes, fail_after_first_event=None):
        self.outcomes = list(outcomes)
        self.fail_after_first_event = fail_after_first_event
        self.models: list[str] = []

    def _next(self, model):
        count_attempt()
        self.models.append(model)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome

    async def stream_chat(self, messages, *, model, web_search=False):
        self._next(model)
        yield TextDelta("one ")
        if self.fail_after_first_event is not None:
            raise self.fail_after_first_event
        yield TextDelta("two")
        yield StreamFinish("stop", Usage(1, 2, 3), model)

    async def generate_text(self, prompt, *, model, system=None):
        self._next(model)
        return TextResult("ok", Usage(1, 1, 2), model)


HELLO = [ChatMessage("user", "hi")]


async def collect(stream):
    return [event async for event in stream]


async def test_a_failure_before_the_first_event_goes_to_the_fallback_once(call_logs):
    backend = ScriptedBackend(ModelUnavailable("down"), None)
    provider = ResilientProvider(backend, fallback_model="spare")

    events = await collect(provider.stream_chat(HELLO, model="main"))

    assert backend.models == ["main", "spare"]
    assert events[-1] == StreamFinish("stop", Usage(1, 2, 3), "spare")
    [log] = call_logs()
    assert (log.provider, log.outcome, log.attempts, log.fallback_used) == (
        "scripted",
        "ok",
        2,
        True,
    )


async def test_when_the_fallback_fails_too_the_first_error_is_raised():
    first = ModelUnavailable("main down")
    backend = ScriptedBackend(first, ModelUnavailable("spare down"))
    provider = ResilientProvider(backend, fallback_model="spare")

    with pytest.raises(ModelUnavailable) as raised:
        await provider.generate_text("hi", model="main")

    assert raised.value is first
    assert backend.models == ["main", "spare"]


async def test_a_rejected_request_is_not_sent_to_the_fallback():
    backend = ScriptedBackend(ModelRequestRejected("bad"))
    provider = ResilientProvider(backend, fallback_model="spare")

    with pytest.raises(ModelRequestRejected):
        await provider.generate_text("hi", model="main")

    assert backend.models == ["main"]


async def test_a_rate_limit_delay_is_waited_once_then_the_same_model_is_tried_without_fallback():
    backend = ScriptedBackend(ModelRateLimited("slow down", retry_after=0.01), None)
    provider = ResilientProvider(backend, max_retry_delay_s=1.0)

    result = await provider.generate_text("hi", model="main")

    assert result.model == "main" and backend.models == ["main", "main"]


async def test_a_rate_limit_delay_longer_than_allowed_is_not_waited():
    backend = ScriptedBackend(ModelRateLimited("slow down", retry_after=60))
    provider = ResilientProvider(backend, max_retry_delay_s=1.0)

    with pytest.raises(ModelRateLimited):
        await asyncio.wait_for(provider.generate_text("hi", model="main"), 5)

    assert backend.models == ["main"]


async def test_after_the_first_event_an_error_is_raised_as_it_is(call_logs):
    backend = ScriptedBackend(fail_after_first_event=ModelUnavailable("cut"))
    provider = ResilientProvider(backend, fallback_model="spare")
    received = []

    with pytest.raises(ModelUnavailable):
        async for event in provider.stream_chat(HELLO, model="main"):
            received.append(event)

    assert received == [TextDelta("one ")]
    assert backend.models == ["main"]
    assert [r.outcome for r in call_logs()] == ["model_unavailable"]


async def test_closing_the_stream_closes_the_backends_stream_and_logs_cancelled(call_logs):
    closed = asyncio.Event()

    class Backend(ScriptedBackend):
        async def stream_chat(self, messages, *, model, web_search=False):
            try:
                yield TextDelta("one ")
                yield TextDelta("two")
            finally:
                closed.set()

    stream = ResilientProvider(Backend()).stream_chat(HELLO, model="main")
    assert await anext(stream) == TextDelta("one ")
    await stream.aclose()

    assert closed.is_set()
    assert [r.outcome for r in call_logs()] == ["cancelled"]
