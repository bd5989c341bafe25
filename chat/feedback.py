"""Feedback on replies: a user's thumbs up or down on one of their conversation's assistant
messages, with an optional comment and categories. One per user per message
(`MessageFeedback`'s unique constraint); only the conversation's owner gives it (anyone else's
request is a 404, as for every read of a conversation)."""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction

from core.errors import Conflict, NotFound, ServiceError

from .models import Message, MessageFeedback


def _rated_message(*, user, message_id: uuid.UUID) -> Message:
    """The caller's message to rate: 404 unless it is in one of their conversations, 400 unless
    it is a reply (a user's or system message has nothing to rate)."""
    message = (
        Message.objects.filter(id=message_id, conversation__user=user).only("id", "role").first()
    )
    if message is None:
        raise NotFound("Message not found.")
    if message.role != Message.Role.ASSISTANT:
        raise ServiceError("Only assistant replies can be rated.", code="not_a_reply")
    return message


def give_feedback(
    *,
    user,
    message_id: uuid.UUID,
    rating: str,
    comment: str = "",
    categories: list[str] | None = None,
    replace: bool = True,
) -> tuple[MessageFeedback, bool]:
    """Rate a reply: (the feedback, whether it was created). With `replace` (PUT) an earlier
    rating is replaced whole; without it (POST) an earlier rating is a 409 `feedback_exists`."""
    message = _rated_message(user=user, message_id=message_id)
    values = {"rating": rating, "comment": comment, "categories": list(categories or [])}
    if replace:
        # update_or_create locks the row it finds and, when two requests create at once, reads
        # back the winner's row instead of failing on the unique constraint.
        return MessageFeedback.objects.update_or_create(message=message, user=user, defaults=values)
    try:
        with transaction.atomic():
            return MessageFeedback.objects.create(message=message, user=user, **values), True
    except IntegrityError:
        raise Conflict(
            "This reply already has your feedback: PUT replaces it, DELETE withdraws it.",
            code="feedback_exists",
        ) from None


def withdraw_feedback(*, user, message_id: uuid.UUID) -> None:
    """Delete the caller's feedback on a reply; 404 when there is none."""
    message = _rated_message(user=user, message_id=message_id)
    deleted, _ = MessageFeedback.objects.filter(message=message, user=user).delete()
    if not deleted:
        raise NotFound("This reply has no feedback of yours.")
