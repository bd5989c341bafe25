"""The six pattern endpoints (`POST /api/agents/<pattern>/`) and the run history.

A pattern view validates the body (400 before anything is saved or streamed), saves the run, and
answers by `Accept`: `text/event-stream` → UI message stream of the run's progress and result;
`application/json` → the finished run as one document; anything else → the final object's JSON
text as plain text (what AI SDK `useObject` reads)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.response import Response

from core.db import run_db
from core.encoders import StreamEncoder, TextStream, UIMessageStream, streaming_response
from core.errors import NotFound, error_response
from core.throttling import AgentRateThrottle
from core.views import StreamingAPIView

from .execution import execute, start_run
from .patterns import PATTERNS, Pattern
from .selectors import run_with_steps, runs_of
from .serializers import AgentRunSerializer, AgentRunSummarySerializer
from .streams import run_frames


def stream_encoder(accept: str) -> StreamEncoder | None:
    """The encoder `Accept` asks for; None for the JSON document."""
    accept = accept.lower()
    if "text/event-stream" in accept:
        return UIMessageStream()
    if "application/json" in accept:
        return None
    return TextStream()


def run_document(run_id) -> dict:
    return AgentRunSerializer(run_with_steps(run_id=run_id)).data


class AgentPatternView(StreamingAPIView):
    throttle_classes = [AgentRateThrottle]
    pattern: Pattern

    async def post(self, request):
        body = self.pattern.input_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        ctx = await start_run(
            user_id=request.user.pk, pattern=self.pattern.name, input=dict(body.validated_data)
        )
        encoder = stream_encoder(request.headers.get("Accept", ""))
        if encoder is not None:
            return streaming_response(run_frames(ctx, self.pattern.workflow, encoder), encoder)
        outcome = await execute(ctx, self.pattern.workflow)
        if outcome.error is not None:
            return error_response(
                outcome.error.status,
                outcome.error.code,
                outcome.error.message,
                details={"run_id": str(ctx.run_id)},
            )
        return Response(await run_db(run_document, ctx.run_id))


_ERROR = OpenApiResponse(
    OpenApiTypes.OBJECT, description='{"error": {"code", "message", "details"?}}'
)


def pattern_view(pattern: Pattern) -> type[AgentPatternView]:
    """The endpoint of one pattern, documented with its own request body."""

    class PatternView(AgentPatternView):
        @extend_schema(
            operation_id=f"agents_{pattern.name}",
            summary=pattern.summary,
            description=(
                "Response by Accept: `text/event-stream` gives the AI SDK UI message stream "
                "(`start`, a `data-step` chunk as each step starts and ends, tool calls, the "
                "result's JSON text as text deltas, `data-result`, `finish`, `[DONE]`); "
                "`application/json` gives the finished run; anything else streams the result "
                "object's JSON text as `text/plain` (AI SDK useObject)."
            ),
            tags=["agents"],
            request=pattern.input_serializer,
            responses={
                (200, "application/json"): AgentRunSerializer,
                (200, "text/event-stream"): OpenApiResponse(
                    OpenApiTypes.STR, description="UI message stream v1 frames."
                ),
                (200, "text/plain"): OpenApiResponse(
                    OpenApiTypes.STR, description="The result object's JSON text."
                ),
                400: _ERROR,
                401: _ERROR,
                429: _ERROR,
                502: _ERROR,
                503: _ERROR,
            },
        )
        async def post(self, request):
            return await super().post(request)

    PatternView.pattern = pattern
    PatternView.__name__ = PatternView.__qualname__ = f"{pattern.name.title()}AgentView"
    PatternView.__doc__ = pattern.summary
    return PatternView


PATTERN_VIEWS = {name: pattern_view(pattern) for name, pattern in PATTERNS.items()}


@extend_schema(tags=["agents"])
class AgentRunListView(generics.ListAPIView):
    """The caller's agent runs, newest first."""

    serializer_class = AgentRunSummarySerializer

    def get_queryset(self):
        return runs_of(user=self.request.user)


@extend_schema(tags=["agents"])
class AgentRunDetailView(generics.RetrieveAPIView):
    """One of the caller's runs with its steps (another user's run is 404)."""

    serializer_class = AgentRunSerializer

    def get_queryset(self):
        return runs_of(user=self.request.user).prefetch_related("steps")

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            raise NotFound("Agent run not found.") from None
