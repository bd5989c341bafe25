from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from accounts.authentication import StatelessJWTAuthentication
from core.db import run_db
from core.encoders import SimpleStream, UIMessageStream, streaming_response
from core.throttling import ChatRateThrottle
from core.views import StreamingAPIView

from . import services
from .selectors import conversations_of, messages_of
from .serializers import ChatStreamRequestSerializer, ConversationSerializer, MessageSerializer


class ConversationListView(generics.ListCreateAPIView):
    serializer_class = ConversationSerializer

    def get_queryset(self):
        return conversations_of(user=self.request.user)

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
        return messages_of(conversation=conversation)


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

    @extend_schema(
        summary="Stream a reply to a message",
        description=(
            "Saves the user's message, then streams the model's reply as the Vercel AI SDK UI "
            "message stream v1 (`text/event-stream`), or with `?protocol=simple` as "
            '`data: {"content": …}` frames. Accepts `{message, conversation_id?}` or a '
            "`useChat` body `{id, messages, trigger, messageId?}`. Errors found before streaming "
            "are JSON 4xx responses. Send `Idempotency-Key` to make a resend safe."
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
            429: OpenApiResponse(description="Rate limited (see Retry-After)"),
        },
    )
    async def post(self, request):
        body = ChatStreamRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        idempotency_key = request.headers.get("Idempotency-Key", "").strip()[:200] or None
        turn = await run_db(
            services.start_turn,
            user_id=request.user.pk,
            text=data["text"],
            conversation_id=data["conversation_id"],
            chat_id=data["chat_id"],
            client_message_id=idempotency_key or data["client_message_id"],
            regenerate=data["regenerate"],
        )
        events = await services.open_reply(turn)
        encoder = (
            SimpleStream()
            if request.query_params.get("protocol") == "simple"
            else UIMessageStream()
        )
        return streaming_response(services.stream_reply(turn, events, encoder), encoder)
