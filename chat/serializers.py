import threading

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings

from attachments.signing import signed_url

from .models import Conversation, Message, MessageFeedback


class StrictCharField(serializers.CharField):
    """A CharField that takes only JSON strings: DRF's would store `1e999999` as "inf"."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class ConversationSerializer(serializers.ModelSerializer):
    message_count = serializers.IntegerField(read_only=True)
    system_prompt = StrictCharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=8000,
        help_text="Optional instructions stored as the conversation's system message.",
    )

    class Meta:
        model = Conversation
        fields = ["id", "title", "created_at", "updated_at", "message_count", "system_prompt"]
        read_only_fields = ["id", "created_at", "updated_at", "message_count"]
        extra_kwargs = {"title": {"required": False, "allow_blank": False, "max_length": 200}}

    def to_internal_value(self, data):
        if isinstance(data, dict) and "title" in data and not isinstance(data["title"], str):
            raise serializers.ValidationError({"title": ["Must be a string."]})
        return super().to_internal_value(data)


FEEDBACK_COMMENT_MAX_CHARS = 2000
FEEDBACK_CATEGORY_MAX_CHARS = 40


class FeedbackSerializer(serializers.ModelSerializer):
    """A rating as it is shown: the body of POST/PUT's answer and a reply's `metadata.feedback`."""

    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    class Meta:
        model = MessageFeedback
        fields = ["rating", "comment", "categories", "updatedAt"]
        read_only_fields = fields


class FeedbackRequestSerializer(serializers.Serializer):
    """`{rating, comment?, categories?}`. Categories come from FEEDBACK_CATEGORIES (so that the
    review queue can count them), each at most once."""

    rating = serializers.ChoiceField(choices=MessageFeedback.Rating.choices)
    comment = StrictCharField(
        required=False, allow_blank=True, max_length=FEEDBACK_COMMENT_MAX_CHARS, default=""
    )
    categories = serializers.ListField(
        child=StrictCharField(max_length=FEEDBACK_CATEGORY_MAX_CHARS),
        required=False,
        default=list,
        help_text="Zero or more of FEEDBACK_CATEGORIES (by default inaccurate, unhelpful, "
        "incomplete, off-topic, unsafe, formatting, too-long, other).",
    )

    def validate_categories(self, categories: list[str]) -> list[str]:
        allowed = settings.FEEDBACK_CATEGORIES
        unknown = [c for c in categories if c not in allowed]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown categories: {', '.join(unknown)}. Allowed: {', '.join(allowed)}."
            )
        return list(dict.fromkeys(categories))  # each once, in the order given


class MessageMetadataSerializer(serializers.Serializer):
    feedback = FeedbackSerializer(
        allow_null=True,
        required=False,
        help_text="Assistant messages only: your rating of the reply, or null.",
    )


class ConversationSearchResultSerializer(ConversationSerializer):
    """A conversation found by `?q=`: the list's fields and the text that matched."""

    snippet = serializers.CharField(
        read_only=True,
        help_text="Plain text around the best match: a passage of the best matching message "
        "(PostgreSQL: ts_headline, without highlight marks), or the title.",
    )

    class Meta(ConversationSerializer.Meta):
        fields = [*ConversationSerializer.Meta.fields, "snippet"]
        read_only_fields = [*ConversationSerializer.Meta.read_only_fields, "snippet"]


class MessageSerializer(serializers.ModelSerializer):
    parts = serializers.SerializerMethodField(
        help_text="The message as UIMessage parts (text, reasoning, file, source-url); a file's "
        "url is signed for its owner and expires (ATTACHMENT_URL_TTL_S)."
    )
    metadata = serializers.SerializerMethodField(
        help_text="UIMessage metadata: `feedback` on assistant messages."
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "content",
            "parts",
            "status",
            "model",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "finish_reason",
            "created_at",
            "metadata",
        ]
        read_only_fields = fields

    @extend_schema_field(MessageMetadataSerializer)
    def get_metadata(self, message) -> dict:
        if message.role != Message.Role.ASSISTANT:
            return {}
        # `viewer_feedback`: prefetched for a page of messages (selectors.messages_of).
        found = getattr(message, "viewer_feedback", None)
        if found is None:
            viewer = self.context["request"].user
            found = list(message.feedback.filter(user=viewer))
        return {"feedback": FeedbackSerializer(found[0]).data if found else None}

    def get_parts(self, message) -> list[dict]:
        parts = message.parts or (
            [{"type": "text", "text": message.content}] if message.content else []
        )
        user_id = self.context["request"].user.pk
        return [
            {
                "type": "file",
                "mediaType": part["mediaType"],
                "filename": part.get("filename", ""),
                "url": signed_url(attachment_id=part["attachmentId"], user_id=user_id),
            }
            if part.get("type") == "file" and part.get("attachmentId")
            else part
            for part in parts
        ]


class UIMessagePartSerializer(serializers.Serializer):
    type = StrictCharField(max_length=100)
    text = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    # file parts
    mediaType = StrictCharField(required=False, max_length=200)
    url = StrictCharField(required=False, allow_blank=True)
    filename = StrictCharField(required=False, allow_blank=True, max_length=255)


class FilePartSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["file"], required=False)
    mediaType = StrictCharField(max_length=200)
    url = StrictCharField()
    filename = StrictCharField(required=False, allow_blank=True, max_length=255)


UI_MESSAGE_ROLES = ("user", "assistant", "system")


class LastUserMessageList(serializers.ListSerializer):
    """`useChat` sends the whole conversation with every turn; the server reads only its last user
    message (the stored conversation is the record of the rest). Validating each earlier
    message's parts cost ~0.1 ms a message, 5 ms a turn at 50 messages, for nothing: the others
    are only checked to be messages with a known role, and the last user message is validated
    whole (its errors keep their index). The validated list holds that one message. A list that
    is not all messages with a role gets DRF's full validation and its errors."""

    def to_internal_value(self, data):
        if not isinstance(data, list) or not all(
            isinstance(m, dict) and m.get("role") in UI_MESSAGE_ROLES for m in data
        ):
            return super().to_internal_value(data)
        index = next((i for i in range(len(data) - 1, -1, -1) if data[i]["role"] == "user"), None)
        if index is None:
            return []
        try:
            return [self.run_child_validation(data[index])]
        except ValidationError as exc:  # as DRF reports a list's errors
            if api_settings.LIST_SERIALIZER_ERRORS_AS_DICT:
                raise ValidationError({index: exc.detail}) from None
            raise ValidationError(
                [exc.detail if i == index else {} for i in range(len(data))]
            ) from None


class UIMessageSerializer(serializers.Serializer):
    """A Vercel AI SDK UIMessage, as `useChat` sends it (only the fields the server reads)."""

    id = StrictCharField(max_length=200, required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=UI_MESSAGE_ROLES)
    parts = UIMessagePartSerializer(many=True, required=False)

    class Meta:
        list_serializer_class = LastUserMessageList


class FieldsBoundOncePerThread:
    """A request-body serializer whose fields are built once per thread, not per instance.

    DRF deep-copies every declared field (and the fields of nested serializers) for each
    serializer it makes: ~0.1 ms for the chat body, on every turn. Validating a body leaves
    nothing on its fields (values are returned, errors raised) and these fields read no context,
    so each thread binds one set to a template instance and every instance made in that thread
    validates with it. Only for serializers used to validate input, never to render."""

    _field_sets = threading.local()

    @property
    def fields(self):
        sets = self._field_sets.__dict__
        fields = sets.get(type(self))
        if fields is None:
            template = type(self)()
            fields = sets[type(self)] = serializers.Serializer.fields.func(template)
        return fields


class ChatStreamRequestSerializer(FieldsBoundOncePerThread, serializers.Serializer):
    """Either the simple body {message, conversation_id?} or a `useChat` body
    {id, messages, trigger, messageId?}."""

    message = StrictCharField(required=False, trim_whitespace=False, allow_blank=True)
    files = FilePartSerializer(many=True, required=False)
    webSearch = serializers.BooleanField(required=False, default=False)
    conversation_id = serializers.UUIDField(required=False, allow_null=True)
    conversationId = serializers.UUIDField(required=False, allow_null=True)
    id = StrictCharField(required=False, max_length=200)
    messages = UIMessageSerializer(many=True, required=False)
    trigger = serializers.ChoiceField(
        choices=["submit-message", "regenerate-message"], required=False
    )
    messageId = StrictCharField(required=False, max_length=200, allow_null=True)

    def validate(self, attrs):
        regenerate = attrs.get("trigger") == "regenerate-message"
        client_message_id = None
        if "messages" in attrs:
            user_messages = [m for m in attrs["messages"] if m["role"] == "user"]
            if not user_messages and not regenerate:
                raise serializers.ValidationError({"messages": ["No user message to answer."]})
            last = user_messages[-1] if user_messages else {}
            parts = last.get("parts", [])
            text = "".join(part.get("text", "") for part in parts if part["type"] == "text")
            files = [
                {k: v for k, v in part.items() if k in ("type", "mediaType", "url", "filename")}
                for part in parts
                if part["type"] == "file"
            ]
            for part in files:
                if not part.get("mediaType") or not part.get("url"):
                    raise serializers.ValidationError(
                        {"messages": ["A file part needs its mediaType and url."]}
                    )
            client_message_id = last.get("id") or None
        else:
            text = attrs.get("message")
            if text is None:
                raise serializers.ValidationError({"message": ["This field is required."]})
            files = [{"type": "file", **part} for part in attrs.get("files", [])]
        if not regenerate and not text.strip() and not files:
            raise serializers.ValidationError({"message": ["The message is empty."]})
        if len(files) > settings.CHAT_MAX_FILES:
            raise serializers.ValidationError(
                {"files": [f"At most {settings.CHAT_MAX_FILES} files per message."]}
            )
        limit = settings.CHAT_MAX_MESSAGE_CHARS
        if len(text) > limit:
            raise serializers.ValidationError(
                {"message": [f"The message is longer than {limit} characters."]}
            )
        conversation_id = attrs.get("conversation_id") or attrs.get("conversationId")
        return {
            "text": text,
            "conversation_id": conversation_id,
            "chat_id": attrs.get("id"),
            "client_message_id": client_message_id,
            "regenerate": regenerate,
            "files": files,
            "web_search": attrs.get("webSearch", False),
        }
