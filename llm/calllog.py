"""One structured log line per model call, on the `llm.calls` logger.

The record carries the fields as attributes (for JSON formatters) and a readable message. Never
the API key, never prompt or reply text. Written once per call, outside any per-chunk loop."""

from __future__ import annotations

import contextvars
import logging
import time

from .types import Usage

logger = logging.getLogger("llm.calls")

#: The call being made by the running task. `llm.resilience` sets it only around the awaits that
#: may send requests (never across a yield, so it never leaks into a caller's context); a backend's
#: transport counts each HTTP request it sends with `count_attempt()`.
current_call: contextvars.ContextVar[CallLog | None] = contextvars.ContextVar(
    "llm_current_call", default=None
)


def count_attempt() -> None:
    """One more request sent for the current call (retries and fallback included)."""
    call = current_call.get()
    if call is not None:
        call.attempts += 1


class CallLog:
    """Times one model call; `done()` writes its log line (once)."""

    __slots__ = ("_logged", "attempts", "model", "operation", "provider", "started")

    def __init__(self, provider: str, operation: str, model: str):
        self.provider = provider
        self.operation = operation
        self.model = model
        self.started = time.perf_counter()
        #: HTTP requests sent for this call (SDK retries and fallback included).
        self.attempts = 0
        self._logged = False

    def done(
        self,
        outcome: str,
        *,
        usage: Usage | None = None,
        model_used: str | None = None,
        step: int | None = None,
    ) -> None:
        if self._logged:
            return
        self._logged = True
        usage = usage or Usage()
        latency_ms = round((time.perf_counter() - self.started) * 1000, 1)
        used = model_used or self.model
        fallback_used = used != self.model
        extra = {
            "provider": self.provider,
            "model": used,
            "requested_model": self.model,
            "operation": self.operation,
            "latency_ms": latency_ms,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "outcome": outcome,
            "attempts": self.attempts,
            "fallback_used": fallback_used,
        }
        if step is not None:
            extra["step"] = step
        logger.info(
            "model_call provider=%s operation=%s model=%s outcome=%s latency_ms=%.1f "
            "input_tokens=%d output_tokens=%d attempts=%d fallback_used=%s",
            self.provider,
            self.operation,
            used,
            outcome,
            latency_ms,
            usage.input_tokens,
            usage.output_tokens,
            self.attempts,
            fallback_used,
            extra=extra,
        )
