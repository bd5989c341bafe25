from django.db import transaction
from django.utils import timezone

from chat.models import Message
from core.errors import ServiceError

from .models import ReplyReview


def mark_reviewed(*, message: Message, reviewer, note: str | None = None) -> ReplyReview:
    """Mark a reply reviewed by `reviewer`, now. Reviewing it again makes `reviewer` and now the
    last review; the note is replaced when one is given (`None` keeps the existing note)."""
    if message.role != Message.Role.ASSISTANT:
        raise ServiceError("Only assistant replies are reviewed.", code="not_a_reply")
    with transaction.atomic():
        review, created = ReplyReview.objects.select_for_update().get_or_create(
            message=message,
            defaults={"reviewer": reviewer, "reviewed_at": timezone.now(), "note": note or ""},
        )
        if not created:
            review.reviewer = reviewer
            review.reviewed_at = timezone.now()
            if note is not None:
                review.note = note
            review.save(update_fields=["reviewer", "reviewed_at", "note"])
    return review
