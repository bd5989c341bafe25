"""One JSON error shape for every 4xx/5xx: {"error": {"code", "message", "details"?}}."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler
from rest_framework_simplejwt.exceptions import InvalidToken

from llm import LLMError

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A business rule refused the request. Services raise these; the handler maps them to
    `{"error": {"code", "message", "details"?}}` with `status`."""

    status = 400
    code = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code
        if status:
            self.status = status


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class NotAuthenticated(ServiceError):
    """401: the caller is not (or no longer) who the request needs, e.g. a valid token of a user
    since deactivated. Rendered with `WWW-Authenticate: Bearer`, as DRF's 401s are."""

    status = 401
    code = "authentication_failed"


class Conflict(ServiceError):
    """409: the request clashes with the resource's current state, e.g.
    `Conflict("A reply is being generated…", code="generation_in_progress",
    details={"replyId": …})`."""

    status = 409
    code = "conflict"


def error_body(code: str, message: str, details=None) -> dict:
    error = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(status_code: int, code: str, message: str, details=None, headers=None):
    response = JsonResponse(error_body(code, message, details), status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def database_unavailable(exc: OperationalError) -> JsonResponse:
    """503 for a database that is down or whose connection pool stayed exhausted: a passing
    condition, not a bug. For DRF views (`api_exception_handler`) and every other view
    (`chatbackend.middleware.DatabaseUnavailable`)."""
    logger.warning("Database unavailable: %s", type(exc).__name__)
    return error_response(
        503,
        "service_unavailable",
        "The service is busy. Please retry shortly.",
        headers={"Retry-After": "1"},
    )


_DRF_CODES = {
    exceptions.ValidationError: "invalid_request",
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def api_exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        headers = {"WWW-Authenticate": 'Bearer realm="api"'} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.details, headers=headers)
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "request_too_large", "The request body is too large.")
    if isinstance(exc, OperationalError):
        return database_unavailable(exc)
    if isinstance(exc, LLMError):
        headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else None
        return error_response(exc.status, exc.code, exc.safe_message, headers=headers)

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        return error_response(
            status.HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Internal server error."
        )
    code = next((c for t, c in _DRF_CODES.items() if isinstance(exc, t)), "error")
    if isinstance(exc, exceptions.ValidationError):
        message, details = "The request body is invalid.", response.data
    else:
        message, details = _message_of(exc), None
        if isinstance(exc, InvalidToken):
            code = "token_not_valid"
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            message = f"Rate limit exceeded. Retry in {int(exc.wait)} seconds."
    response.data = error_body(code, message, details)
    return response


def _message_of(exc: exceptions.APIException) -> str:
    """The exception's message as plain text. simplejwt's `InvalidToken` carries a dict
    (`{"detail", "code", "messages"}`) whose `str()` is a Python repr: its `detail` is the text."""
    detail = getattr(exc, "detail", exc)
    if isinstance(detail, dict):
        detail = detail.get("detail", "")
    elif isinstance(detail, list):
        detail = detail[0] if detail else ""
    return str(detail)


def handler404(request, exception=None):
    return error_response(404, "not_found", "Not found.")


def handler500(request):
    return error_response(500, "internal_error", "Internal server error.")


def handler400(request, exception=None):
    return error_response(400, "bad_request", "Bad request.")


def handler403(request, exception=None):
    return error_response(403, "permission_denied", "Permission denied.")


def csrf_failure(request, reason=""):
    """settings.CSRF_FAILURE_VIEW: Django's own is an HTML page. Only cookie-authenticated forms
    (the admin's) meet it; the API authenticates with a bearer token and needs no CSRF token."""
    return error_response(403, "csrf_failed", "CSRF verification failed. Reload the page.")
