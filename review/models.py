from django.conf import settings
from django.db import models

from chat.models import Message


class Reply(Message):
    """An assistant reply, as the review queue shows it (`review.admin.ReplyQueueAdmin`). A proxy:
    the same rows as `chat.Message`, with permissions of its own, so that a reviewer can open the
    queue without any permission to change messages."""

    class Meta:
        proxy = True
        verbose_name = "reply to review"
        verbose_name_plural = "review queue"


class ReplyReview(models.Model):
    """A reviewer's verdict on one reply: who reviewed it, when, and what they noted."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="review")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reply_reviews"
    )
    reviewed_at = models.DateTimeField()
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-reviewed_at"]
        verbose_name = "review"

    def __str__(self) -> str:
        return f"reviewed by {self.reviewer} at {self.reviewed_at:%Y-%m-%d %H:%M}"
