"""Writes to conversations. The chat turn itself is in three modules: `turns` (what is saved before
the model is asked), `history` (what the model is sent) and `generation` (the running reply)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast

from attachments.services import delete_attachments

from .history import file_ids
from .models import Conversation, Message
from .turns import append_message


def create_conversation(*, user, title: str = "", system_prompt: str = "") -> Conversation:
    source = Conversation.TitleSource
    with transaction.atomic():
        conversation = Conversation.objects.create(
            user=user,
            title=title or "New conversation",
            title_source=source.USER if title else source.MESSAGE,
        )
        if system_prompt:
            append_message(conversation, role=Message.Role.SYSTEM, content=system_prompt)
            conversation.save(update_fields=["next_position"])
    return conversation


@transaction.atomic
def update_conversation(
    *, conversation: Conversation, title: str | None = None, system_prompt: str | None = None
) -> Conversation:
    """Rename a conversation and/or replace its system instructions (an empty prompt removes
    them). The instructions apply from the next turn on."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    fields = ["updated_at"]
    if title is not None:
        conversation.title = title
        conversation.title_source = Conversation.TitleSource.USER
        fields += ["title", "title_source"]
    if system_prompt is not None:
        system = conversation.messages.filter(role=Message.Role.SYSTEM).order_by("position")
        first = system.first()
        if first is None and system_prompt:
            append_message(conversation, role=Message.Role.SYSTEM, content=system_prompt)
            fields.append("next_position")
        elif first is not None:
            system.exclude(pk=first.pk).delete()
            if system_prompt:
                first.content = system_prompt
                first.parts = [{"type": "text", "text": system_prompt}]
                first.save(update_fields=["content", "parts", "updated_at"])
            else:
                first.delete()
    conversation.save(update_fields=fields)
    return conversation


def delete_conversation(*, conversation: Conversation) -> None:
    """Delete a conversation, its messages and the files its messages carried."""
    with transaction.atomic():
        ids = {
            i
            for parts in conversation.messages.values_list("parts", flat=True)
            for i in file_ids(parts)
        }
        conversation.delete()
        # An upload may have been sent in another conversation too: that one keeps it.
        others = Message.objects.annotate(text=Cast("parts", TextField())).filter(
            conversation__user_id=conversation.user_id
        )
        unused = [i for i in ids if not others.filter(text__contains=i).exists()]
        if unused:
            delete_attachments(ids=unused)
