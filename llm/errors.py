"""The provider layer's own exceptions. Callers never see google-genai's exception types.

Every error carries `safe_message`: text fit to show a client (no key, no upstream internals)."""

from __future__ import annotations


class LLMError(Exception):
    """Base class. `status` is the HTTP status a view should answer with if nothing was streamed."""

    status = 502
    code = "model_error"
    safe_message = "The model failed to answer. Please try again."

    def __init__(self, detail: str = "", *, retry_after: float | None = None):
        super().__init__(detail or self.safe_message)
        self.detail = detail
        self.retry_after = retry_after


class ModelRateLimited(LLMError):
    """The provider's quota or rate limit (HTTP 429 upstream) outlasted our retries."""

    status = 503
    code = "model_rate_limited"
    safe_message = "The model is receiving too many requests. Please retry shortly."


class ModelUnavailable(LLMError):
    """5xx, timeouts and connection failures upstream."""

    status = 503
    code = "model_unavailable"
    safe_message = "The model is temporarily unavailable. Please try again."


class ModelRequestRejected(LLMError):
    """The provider rejected the request (4xx other than 429): bad key, unknown model, too long."""

    status = 502
    code = "model_request_rejected"
    safe_message = "The model rejected the request."


class ModelOutputInvalid(LLMError):
    """Structured output did not match its schema, even after a retry."""

    status = 502
    code = "model_output_invalid"
    safe_message = "The model returned an answer in an unexpected format."


class ContentBlocked(LLMError):
    """The prompt or answer was blocked by the provider's safety filters."""

    status = 422
    code = "content_blocked"
    safe_message = "The request was blocked by the model's safety filters."
