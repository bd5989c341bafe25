from django.conf import settings
from rest_framework import serializers

from .models import Conversation, Message


class ConversationSerializer(serializers.ModelSerializer):
    message_count = serializers.IntegerField(read_only=True)
    system_prompt = serializers.CharField(
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


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "content",
            "status",
            "model",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "finish_reason",
            "created_at",
        ]
        read_only_fields = fields


class UIMessagePartSerializer(serializers.Serializer):
    type = serializers.CharField()
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)


class UIMessageSerializer(serializers.Serializer):
    """A Vercel AI SDK UIMessage, as `useChat` sends it (only the fields the server reads)."""

    id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=["user", "assistant", "system"])
    parts = UIMessagePartSerializer(many=True, required=False)


class ChatStreamRequestSerializer(serializers.Serializer):
    """Either the simple body {message, conversation_id?} or a `useChat` body
    {id, messages, trigger, messageId?}."""

    message = serializers.CharField(required=False, trim_whitespace=False)
    conversation_id = serializers.UUIDField(required=False, allow_null=True)
    conversationId = serializers.UUIDField(required=False, allow_null=True)
    id = serializers.CharField(required=False, max_length=200)
    messages = UIMessageSerializer(many=True, required=False)
    trigger = serializers.ChoiceField(
        choices=["submit-message", "regenerate-message"], required=False
    )
    messageId = serializers.CharField(required=False, max_length=200, allow_null=True)

    def validate(self, attrs):
        regenerate = attrs.get("trigger") == "regenerate-message"
        client_message_id = None
        if "messages" in attrs:
            user_messages = [m for m in attrs["messages"] if m["role"] == "user"]
            if not user_messages and not regenerate:
                raise serializers.ValidationError({"messages": ["No user message to answer."]})
            last = user_messages[-1] if user_messages else {}
            text = "".join(
                part.get("text", "") for part in last.get("parts", []) if part["type"] == "text"
            )
            client_message_id = last.get("id") or None
        else:
            text = attrs.get("message")
            if text is None:
                raise serializers.ValidationError({"message": ["This field is required."]})
        if not regenerate and not text.strip():
            raise serializers.ValidationError({"message": ["The message is empty."]})
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
        }
