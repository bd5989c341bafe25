import uuid

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import StatelessJWTAuthentication
from core.db import run_db
from core.errors import Conflict, NotFound, ServiceError
from core.throttling import ChatRateThrottle
from core.views import StreamingAPIView

from . import feedback, search, services, streams
from .generation import starting
from .selectors import conversations_of, messages_of, running_reply_id
from .serializers import (
    ChatStreamRequestSerializer,
    ConversationSearchResultSerializer,
    ConversationSerializer,
    FeedbackRequestSerializer,
    FeedbackSerializer,
    MessageSerializer,
)
from .throttling import FeedbackRateThrottle
from .turns import TurnKind, astart_turn


class ConversationListView(generics.ListCreateAPIView):
    serializer_class = ConversationSerializer

    def search_text(self) -> str:
        """`?q=`, stripped: empty lists every conversation; too long is a 400."""
        q = self.request.query_params.get("q", "").strip()
        if "\x00" in q:  # PostgreSQL refuses NUL in any text
            raise ServiceError("The search text contains a NUL character.", code="invalid_query")
        if len(q) > search.MAX_QUERY_CHARS:
            raise ServiceError(
                f"The search text is longer than {search.MAX_QUERY_CHARS} characters.",
                code="query_too_long",
            )
        return q

    def get_queryset(self):
        if self.request.method == "GET" and (q := self.search_text()):
            return search.search_conversations(user=self.request.user, q=q)
        return conversations_of(user=self.request.user)

    def get_serializer_class(self):
        if self.request.method == "GET" and self.search_text():
            return ConversationSearchResultSerializer
        return ConversationSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                str,
                description="Search the titles and message text (PostgreSQL: full-text, "
                'websearch syntax: "a phrase", or, -word): the matches, best first, each with '
                "a `snippet` (plain text around the best match). At most "
                f"{search.MAX_QUERY_CHARS} characters (more: 400 `query_too_long`).",
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = services.create_conversation(user=request.user, **serializer.validated_data)
        conversation = self.get_queryset().get(pk=conversation.pk)
        return Response(self.get_serializer(conversation).data, status=status.HTTP_201_CREATED)


class ConversationDetailView(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = ConversationSerializer
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return conversations_of(user=self.request.user)

    def perform_update(self, serializer):
        data = serializer.validated_data
        services.update_conversation(
            conversation=serializer.instance,
            title=data.get("title"),
            system_prompt=data.get("system_prompt"),
        )
        serializer.instance = self.get_queryset().get(pk=serializer.instance.pk)

    def perform_destroy(self, instance):
        services.delete_conversation(conversation=instance)


class MessagePagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class ConversationMessagesView(generics.ListAPIView):
    serializer_class = MessageSerializer
    pagination_class = MessagePagination

    def get_queryset(self):
        conversation = generics.get_object_or_404(
            conversations_of(user=self.request.user), pk=self.kwargs["pk"]
        )
        return messages_of(conversation=conversation, viewer=self.request.user)


STREAM_EXAMPLE = (
    'data: {"type":"start","messageId":"…","messageMetadata":{"conversationId":"…",'
    '"userMessageId":"…"}}\n\n'
    'data: {"type":"text-start","id":"text-…"}\n\n'
    'data: {"type":"text-delta","id":"text-…","delta":"Hello"}\n\n'
    'data: {"type":"text-end","id":"text-…"}\n\n'
    'data: {"type":"finish","finishReason":"stop","messageMetadata":{"usage":{"inputTokens":8,'
    '"outputTokens":2,"totalTokens":10}}}\n\n'
    "data: [DONE]\n\n"
)


class ChatStreamView(StreamingAPIView):
    # The token's user id is trusted here; start_turn checks the user is still active.
    authentication_classes = [StatelessJWTAuthentication]
    throttle_classes = [ChatRateThrottle]
    checks_on_loop = True

    @extend_schema(
        summary="Stream a reply to a message",
        description=(
            "Saves the user's message, then streams the model's reply as the Vercel AI SDK UI "
            "message stream v1 (`text/event-stream`), or with `?protocol=simple` as "
            '`data: {"content": …}` frames. Accepts `{message, conversation_id?, files?, '
            "webSearch?}` or a `useChat` body `{id, messages, trigger, messageId?, webSearch?}`. "
            "Errors found before streaming are JSON 4xx responses; 409 "
            "`generation_in_progress` while another reply of the conversation is generated. "
            "Send `Idempotency-Key` to make a resend safe. A conversation's first reply ends "
            'with `{"type":"data-title","data":{"title":…}}` (the title the model wrote, '
            "CHAT_TITLE_MODEL) before `finish`."
        ),
        request=ChatStreamRequestSerializer,
        parameters=[
            OpenApiParameter("protocol", str, enum=["ui", "simple"], description="Stream format"),
            OpenApiParameter("Idempotency-Key", str, location=OpenApiParameter.HEADER),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="UI message stream v1 frames",
                examples=[OpenApiExample("UI message stream", value=STREAM_EXAMPLE)],
            ),
            400: OpenApiResponse(description="Invalid body"),
            401: OpenApiResponse(description="No or bad token"),
            404: OpenApiResponse(description="Unknown conversation"),
            409: OpenApiResponse(description="A reply is being generated in this conversation"),
            429: OpenApiResponse(description="Rate limited (see Retry-After)"),
        },
    )
    async def post(self, request):
        reply_id = uuid.uuid4()
        with starting(reply_id):
            # After the rate limit (StreamingAPIView), the body, then the turn's save: on
            # PostgreSQL its statements run on the event loop.
            turn = await astart_turn(**self.turn_arguments(request), reply_id=reply_id)
            simple = request.query_params.get("protocol") == "simple"
            if turn.kind is TurnKind.GENERATE:
                return await streams.generation_response(turn, simple=simple)
        if turn.kind is TurnKind.STORED:
            return streams.stored_reply_response(turn, simple=simple)
        # RUNNING: a resend of the message whose reply is being generated joins it.
        response = await streams.listen_response(turn.reply_id, simple=simple)
        if response is None:  # running in a process this one cannot reach
            raise Conflict(
                "This message's reply is being generated elsewhere.",
                code="generation_in_progress",
                details={"replyId": str(turn.reply_id)},
            )
        return response

    @staticmethod
    def turn_arguments(request) -> dict:
        """The validated body, as `chat.turns.start_turn`'s arguments."""
        body = ChatStreamRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        idempotency_key = request.headers.get("Idempotency-Key", "").strip()[:200] or None
        return dict(
            user_id=request.user.pk,
            text=data["text"],
            files=data["files"],
            conversation_id=data["conversation_id"],
            chat_id=data["chat_id"],
            client_message_id=idempotency_key or data["client_message_id"],
            regenerate=data["regenerate"],
            web_search=streams.web_search_wanted(data["web_search"]),
        )


class ChatStreamNoSlashView(ChatStreamView):
    """`POST /api/chat/stream`, the way the AI SDK's docs write `api`: the same view, documented
    once (under the slash)."""

    schema = None  # left out of the OpenAPI document


class ResumeStreamView(StreamingAPIView):
    """`GET /api/chat/stream/{chat_id}/stream` (what useChat's `resumeStream()` requests) and
    `GET /api/chat/conversations/{id}/stream/`: the running reply's stream from its start, or
    204."""

    authentication_classes = [StatelessJWTAuthentication]
    checks_on_loop = True

    @extend_schema(
        summary="Resume the running reply's stream",
        responses={
            (200, "text/event-stream"): OpenApiResponse(response=OpenApiTypes.STR),
            204: OpenApiResponse(description="No reply is being generated"),
            404: OpenApiResponse(description="Unknown conversation"),
        },
    )
    async def get(self, request, chat_id=None, pk=None):
        found, reply_id = await run_db(
            running_reply_id, user_id=request.user.pk, chat_id=str(chat_id or pk)
        )
        if not found:
            raise NotFound("Conversation not found.")
        response = await streams.listen_response(reply_id) if reply_id else None
        return response or streams.nothing_running()


class StopGenerationView(StreamingAPIView):
    authentication_classes = [StatelessJWTAuthentication]
    checks_on_loop = True

    @extend_schema(
        summary="Stop the running reply",
        request=None,
        responses={200: OpenApiResponse(description='{"stopped": true|false}')},
    )
    async def post(self, request, pk):
        found, reply_id = await run_db(running_reply_id, user_id=request.user.pk, chat_id=str(pk))
        if not found:
            raise NotFound("Conversation not found.")
        stopped = await streams.stop(reply_id) if reply_id else False
        return Response({"stopped": stopped})


FEEDBACK_ERRORS = {
    400: OpenApiResponse(description="Invalid body, or the message is not an assistant reply"),
    401: OpenApiResponse(description="No or bad token"),
    404: OpenApiResponse(
        description="No such message in your conversations (DELETE: or no rating of yours)"
    ),
    429: OpenApiResponse(description="Rate limited (FEEDBACK_RATE_LIMIT; see Retry-After)"),
}


class MessageFeedbackView(APIView):
    """`/api/chat/messages/{id}/feedback/`: your rating of one of your conversation's replies."""

    throttle_classes = [FeedbackRateThrottle]

    def _give(self, request, pk, *, replace: bool):
        body = FeedbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        given, created = feedback.give_feedback(
            user=request.user, message_id=pk, replace=replace, **body.validated_data
        )
        status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(FeedbackSerializer(given).data, status=status_code)

    @extend_schema(
        summary="Rate a reply (thumbs up or down, optional comment and categories)",
        description="Creates your feedback on an assistant message; 409 `feedback_exists` if "
        "you already rated it (PUT replaces, DELETE withdraws).",
        request=FeedbackRequestSerializer,
        responses={
            201: FeedbackSerializer,
            409: OpenApiResponse(description="Already rated"),
            **FEEDBACK_ERRORS,
        },
        examples=[
            OpenApiExample(
                "Thumbs down",
                value={"rating": "down", "comment": "Wrong date", "categories": ["inaccurate"]},
                request_only=True,
            )
        ],
    )
    def post(self, request, pk):
        return self._give(request, pk, replace=False)

    @extend_schema(
        summary="Rate a reply, replacing your earlier rating",
        description="Creates (201) or replaces whole (200) your feedback on an assistant "
        "message: fields left out are cleared.",
        request=FeedbackRequestSerializer,
        responses={200: FeedbackSerializer, 201: FeedbackSerializer, **FEEDBACK_ERRORS},
    )
    def put(self, request, pk):
        return self._give(request, pk, replace=True)

    @extend_schema(
        summary="Withdraw your rating of a reply",
        request=None,
        responses={204: None, **FEEDBACK_ERRORS},
    )
    def delete(self, request, pk):
        feedback.withdraw_feedback(user=request.user, message_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
