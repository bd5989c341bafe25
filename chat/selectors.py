"""Reads of conversations and messages. Every read is scoped to its owner."""

from __future__ import annotations

import uuid

from django.db.models import Count, Prefetch, Q, QuerySet

from .models import Conversation, Message, MessageFeedback


def conversations_of(*, user) -> QuerySet[Conversation]:
    return (
        Conversation.objects.filter(user=user)
        .annotate(message_count=Count("messages"))
        .order_by("-updated_at")
    )


def messages_of(*, conversation: Conversation, viewer=None) -> QuerySet[Message]:
    """The conversation's messages, oldest first; with `viewer`, each carries the viewer's
    feedback as `viewer_feedback` (a list of at most one), fetched in one query per page."""
    messages = conversation.messages.order_by("position")
    if viewer is not None:
        own = MessageFeedback.objects.filter(user=viewer).order_by()
        messages = messages.prefetch_related(
            Prefetch("feedback", queryset=own, to_attr="viewer_feedback")
        )
    return messages


def running_reply_id(*, user_id: int, chat_id: str) -> tuple[bool, uuid.UUID | None]:
    """(whether the caller has a conversation with this id or useChat chat id, the id of its reply
    being generated, if any)."""
    try:
        match = Q(id=uuid.UUID(str(chat_id))) | Q(client_chat_id=chat_id)
    except ValueError:
        match = Q(client_chat_id=chat_id)
    conversation_id = (
        Conversation.objects.filter(match, user_id=user_id).values_list("id", flat=True).first()
    )
    if conversation_id is None:
        return False, None
    reply_id = (
        Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING)
        .values_list("id", flat=True)
        .first()
    )
    return True, reply_id
