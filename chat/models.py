import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Conversation(models.Model):
    class TitleSource(models.TextChoices):
        MESSAGE = "message", "from the first message"
        MODEL = "model", "written by the model"
        USER = "user", "set by the user"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200)
    title_source = models.CharField(
        max_length=16,
        choices=TitleSource.choices,
        default=TitleSource.MESSAGE,
        help_text="Where the title came from: a title the user set is never replaced.",
    )
    # NULL, not '', so that the unique constraint only applies to conversations that have one.
    client_chat_id = models.CharField(  # noqa: DJ001
        max_length=200,
        null=True,
        blank=True,
        help_text="The chat id a Vercel AI SDK useChat client made for this conversation.",
    )
    # NULL, not '': unique per user only when given.
    client_first_message_id = models.CharField(  # noqa: DJ001
        max_length=200,
        null=True,
        blank=True,
        help_text="Idempotency-Key of the message that started the conversation: a resend of it "
        "does not start another one.",
    )
    summary = models.TextField(
        blank=True, help_text="Older turns folded into a summary to keep the history in budget."
    )
    summarized_through = models.PositiveIntegerField(
        default=0, help_text="Messages with a position below this are covered by the summary."
    )
    next_position = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["user", "-updated_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_chat_id"],
                condition=Q(client_chat_id__isnull=False),
                name="unique_client_chat_id_per_user",
            ),
            models.UniqueConstraint(
                fields=["user", "client_first_message_id"],
                condition=Q(client_first_message_id__isnull=False),
                name="unique_first_message_id_per_user",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        STREAMING = "streaming"
        INTERRUPTED = "interrupted"
        ERROR = "error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # Order within the conversation: messages saved in the same instant still sort stably.
    position = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, help_text="The text parts, joined.")
    parts = models.JSONField(
        default=list,
        blank=True,
        help_text="The message as UIMessage parts: text, reasoning, file, source-url.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    # NULL when absent: unique per conversation only when given.
    client_message_id = models.CharField(  # noqa: DJ001
        max_length=200,
        null=True,
        blank=True,
        help_text="Idempotency-Key header or useChat message id: a resend is not stored twice.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    #: Stamped by the process generating the reply while it runs (`core.liveness`), text or not.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["conversation", "position"]
        indexes = [models.Index(fields=["conversation", "position"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=["user", "assistant", "system"]), name="message_role_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["complete", "streaming", "interrupted", "error"]),
                name="message_status_valid",
            ),
            models.UniqueConstraint(
                fields=["conversation", "position"], name="unique_message_position"
            ),
            models.UniqueConstraint(
                fields=["conversation", "client_message_id"],
                condition=Q(client_message_id__isnull=False),
                name="unique_client_message_id_per_conversation",
            ),
            # One generation per conversation at a time, whatever the races between requests.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status="streaming"),
                name="one_streaming_reply_per_conversation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:60]}"


class MessageFeedback(models.Model):
    """A user's rating of an assistant reply: one per user per message."""

    class Rating(models.TextChoices):
        UP = "up"
        DOWN = "down"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="message_feedback"
    )
    rating = models.CharField(max_length=8, choices=Rating.choices)
    comment = models.TextField(blank=True)
    categories = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["rating", "-updated_at"])]
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="one_feedback_per_user"),
            models.CheckConstraint(
                condition=Q(rating__in=["up", "down"]), name="feedback_rating_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rating} on {self.message_id}"
