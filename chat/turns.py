"""Starting a turn: what is saved before the model is asked.

`start_turn` runs in one transaction with the conversation's row locked: it saves the user's message
(once, however often it is resent) and the empty reply the generation streams into. What it finds
decides what the request gets: a new generation, the stored reply of a resent message, the running
generation of a resent message, or a 409 while another generation runs. The database enforces the
rules the lock serialises (a unique client message id per conversation, one `streaming` reply per
conversation), so no race between requests can store or bill a reply twice."""

from __future__ import annotations

import enum
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.authentication import UserNotActive
from attachments.services import attachment_from_part
from core.errors import Conflict, NotFound, ServiceError
from llm import model_for

from .history import ConversationHistory, conversation_history
from .models import Conversation, Message

TITLE_MAX_CHARS = 60
User = get_user_model()


class TurnKind(enum.Enum):
    GENERATE = "generate"  # a new reply to generate
    STORED = "stored"  # a resend whose reply is complete: streamed back from the database
    RUNNING = "running"  # a resend whose reply is being generated: join that generation


@dataclass(frozen=True)
class Turn:
    """Everything the stream needs once the user's message is saved."""

    kind: TurnKind
    user_id: int
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    reply_id: uuid.UUID
    model: str
    history: ConversationHistory = field(default_factory=ConversationHistory.empty)
    web_search: bool = False
    #: The stored reply of a resent message (kind STORED): content and parts.
    stored_content: str = ""
    stored_parts: tuple[dict, ...] = ()
    stored_finish: str = "stop"
    #: The conversation's first reply, while its title is still the one taken from its first
    #: message: once the reply is complete, the model writes a title (chat.titles).
    wants_title: bool = False


def title_from(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= TITLE_MAX_CHARS:
        return line or "New conversation"
    cut = line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] or line[:TITLE_MAX_CHARS]
    return cut + "…"


def user_parts(text: str, files: list[dict]) -> list[dict]:
    """The user's message as UIMessage parts: its files, then its text."""
    return [*files, {"type": "text", "text": text}] if text else list(files)


def store_files(*, user_id: int, files: list[dict]) -> list[dict]:
    """The message's file parts (data: URLs or earlier uploads), stored or found as attachments,
    as the parts kept with the message (the url is signed afresh whenever it is shown)."""
    if not files:
        return []
    user = User(pk=user_id)
    stored = []
    for part in files:
        attachment = attachment_from_part(user=user, part=part)
        stored.append(
            {
                "type": "file",
                "mediaType": attachment.media_type,
                "filename": attachment.filename,
                "attachmentId": str(attachment.id),
                "size": attachment.size,
            }
        )
    return stored


def append_message(conversation: Conversation, **fields) -> Message:
    """Add a message at the end of a conversation (the row must be locked by the caller)."""
    message = Message.objects.create(
        conversation=conversation, position=conversation.next_position, **fields
    )
    conversation.next_position += 1
    return message


def _check_active(user_id: int) -> None:
    """The token's user still exists and is active (the stream views authenticate statelessly)."""
    active = User.objects.filter(pk=user_id).values_list("is_active", flat=True).first()
    if not active:
        raise UserNotActive(found=active is not None)


def _existing_conversation(
    *, user_id, conversation_id, chat_id, first_message_id
) -> Conversation | None:
    """The caller's conversation this turn continues, locked for the turn's writes; None when the
    turn starts a new one."""
    owned = Conversation.objects.select_for_update().filter(user_id=user_id)
    if conversation_id:
        conversation = owned.filter(id=conversation_id).first()
        if conversation is None:
            raise NotFound("Conversation not found.")
        return conversation
    if chat_id:
        # useChat sends its own chat id: one of ours, or a client-made one we record.
        try:
            return owned.filter(Q(id=uuid.UUID(chat_id)) | Q(client_chat_id=chat_id)).first()
        except ValueError:
            return owned.filter(client_chat_id=chat_id).first()
    if first_message_id:
        # A resend of the message that started a conversation.
        return owned.filter(client_first_message_id=first_message_id).first()
    return None


def _start_conversation(
    *, user_id, text, files, chat_id, client_message_id, web_search
) -> Turn | None:
    """A new conversation holding the user's message and the empty reply: two INSERTs, and no
    history to read back. None when the same conversation (same chat id, or same first message)
    was created concurrently: the caller then continues that one."""
    model = model_for("chat")
    conversation = Conversation(
        user_id=user_id,
        title=title_from(text),
        client_chat_id=chat_id,
        client_first_message_id=None if chat_id else client_message_id,
        next_position=2,
    )
    user_message = Message(
        conversation=conversation,
        position=0,
        role=Message.Role.USER,
        content=text,
        client_message_id=client_message_id,
    )
    reply = Message(
        conversation=conversation,
        position=1,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model=model,
    )
    unique = chat_id or client_message_id
    try:
        with transaction.atomic() if unique else nullcontext():
            files = store_files(user_id=user_id, files=files)
            user_message.parts = user_parts(text, files)
            conversation.save(force_insert=True)
            Message.objects.bulk_create([user_message, reply])
    except IntegrityError:
        if not unique:
            raise
        return None
    return Turn(
        kind=TurnKind.GENERATE,
        user_id=user_id,
        conversation_id=conversation.id,
        user_message_id=user_message.id,
        reply_id=reply.id,
        model=model,
        history=ConversationHistory.first(text, files),
        web_search=web_search,
        wants_title=True,
    )


def _in_progress(reply: Message) -> Conflict:
    return Conflict(
        "A reply is being generated in this conversation; wait for it or stop it.",
        code="generation_in_progress",
        details={"replyId": str(reply.id)},
    )


def _resend(conversation: Conversation, user_message: Message, running: Message | None, **turn):
    """A message sent again: its stored reply, its running generation, or (when its reply failed
    or is missing) a new reply — but never a second generation beside a running one."""
    reply = (
        Message.objects.filter(
            conversation_id=conversation.id,
            role=Message.Role.ASSISTANT,
            position__gt=user_message.position,
        )
        .order_by("position")
        .only("id", "conversation_id", "status", "model", "content", "parts", "finish_reason")
        .first()
    )
    if reply is not None and reply.status == Message.Status.COMPLETE:
        return Turn(
            kind=TurnKind.STORED,
            reply_id=reply.id,
            model=reply.model,
            stored_content=reply.content,
            stored_parts=tuple(reply.parts),
            stored_finish=reply.finish_reason or "stop",
            **turn,
        )
    if running is not None:
        if reply is not None and running.id == reply.id:
            return Turn(kind=TurnKind.RUNNING, reply_id=reply.id, model=reply.model, **turn)
        raise _in_progress(running)
    return None


@transaction.atomic
def start_turn(
    *,
    user_id: int,
    text: str,
    files: list[dict] | None = None,
    conversation_id: uuid.UUID | None = None,
    chat_id: str | None = None,
    client_message_id: str | None = None,
    regenerate: bool = False,
    web_search: bool = False,
) -> Turn:
    """Save the user's message (once, even when resent) and an empty reply to stream into.

    `files` are the message's file parts as the client sent them: they are stored only when the
    message is (not for a resend)."""
    files = files or []
    _check_active(user_id)
    conversation = _existing_conversation(
        user_id=user_id,
        conversation_id=conversation_id,
        chat_id=chat_id,
        first_message_id=client_message_id,
    )
    if conversation is None:
        if regenerate:
            raise ServiceError("There is no reply to regenerate.", code="nothing_to_regenerate")
        turn = _start_conversation(
            user_id=user_id,
            text=text,
            files=files,
            chat_id=chat_id,
            client_message_id=client_message_id,
            web_search=web_search,
        )
        if turn is not None:
            return turn
        conversation = _existing_conversation(
            user_id=user_id,
            conversation_id=None,
            chat_id=chat_id,
            first_message_id=client_message_id,
        )

    # One query: the running reply, if any, and the resent message, if this is a resend.
    wanted = Q(status=Message.Status.STREAMING)
    if client_message_id and not regenerate:
        wanted |= Q(role=Message.Role.USER, client_message_id=client_message_id)
    found = list(
        Message.objects.filter(wanted, conversation_id=conversation.id)
        .order_by()
        .only("id", "conversation_id", "role", "status", "position")
    )
    running = next((m for m in found if m.status == Message.Status.STREAMING), None)
    resent = next((m for m in found if m.role == Message.Role.USER), None)

    if regenerate:
        if running is not None:
            raise _in_progress(running)
        user_message = (
            conversation.messages.filter(role=Message.Role.USER).order_by("-position").first()
        )
        if user_message is None:
            raise ServiceError("There is no reply to regenerate.", code="nothing_to_regenerate")
        conversation.messages.filter(
            role=Message.Role.ASSISTANT, position__gt=user_message.position
        ).delete()
    elif resent is not None:
        user_message = resent
        turn = _resend(
            conversation,
            resent,
            running,
            user_id=user_id,
            conversation_id=conversation.id,
            user_message_id=resent.id,
        )
        if turn is not None:
            return turn
    else:
        if running is not None:
            raise _in_progress(running)
        user_message = append_message(
            conversation,
            role=Message.Role.USER,
            content=text,
            parts=user_parts(text, store_files(user_id=user_id, files=files)),
            client_message_id=client_message_id,
        )
    model = model_for("chat")
    reply = append_message(
        conversation, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, model=model
    )
    conversation.save(update_fields=["next_position", "updated_at"])
    history = conversation_history(conversation=conversation, before_position=reply.position)
    return Turn(
        kind=TurnKind.GENERATE,
        user_id=user_id,
        conversation_id=conversation.id,
        user_message_id=user_message.id,
        reply_id=reply.id,
        model=model,
        history=history,
        web_search=web_search,
        wants_title=conversation.title_source == Conversation.TitleSource.MESSAGE
        and not history.has_reply,
    )
