"""Chat turns: save what the user sent, stream the model's reply, save the reply.

Database work happens in short synchronous bursts run through `run_db`, which gives the connection
back to the pool afterwards: a stream holds no connection while it waits on the model."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, nullcontext
from dataclasses import dataclass, replace

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.authentication import UserNotActive
from core.db import run_db
from core.encoders import StreamEncoder
from core.errors import NotFound, ServiceError
from llm import ChatMessage, LLMError, StreamFinish, TextDelta, Usage, get_provider
from llm.types import StreamEvent
from usage.services import save_usage

from .models import Conversation, Message
from .selectors import ConversationHistory, conversation_history

TITLE_MAX_CHARS = 60
SUMMARY_PROMPT = """Summarize the conversation below for your own later reference, so that it can
be continued without it. Keep names, facts, numbers, decisions, the user's preferences and any open
questions. Write at most 250 words, in the conversation's language.

{previous}Conversation:
{transcript}"""

logger = logging.getLogger(__name__)
User = get_user_model()


@dataclass(frozen=True)
class Turn:
    """Everything the stream needs once the user's message is saved."""

    user_id: int
    conversation_id: uuid.UUID
    user_message_id: uuid.UUID
    reply_id: uuid.UUID
    model: str
    history: ConversationHistory
    #: A complete reply already stored for this message (a resend): streamed back, not regenerated.
    stored_reply: str | None = None


def title_from(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= TITLE_MAX_CHARS:
        return line or "New conversation"
    cut = line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] or line[:TITLE_MAX_CHARS]
    return cut + "…"


def chat_model() -> str:
    return settings.GEMINI_MODEL if settings.AI_PROVIDER == "gemini" else "offline"


def create_conversation(*, user, title: str = "", system_prompt: str = "") -> Conversation:
    with transaction.atomic():
        conversation = Conversation.objects.create(user=user, title=title or "New conversation")
        if system_prompt:
            _append_message(conversation, role=Message.Role.SYSTEM, content=system_prompt)
            conversation.save(update_fields=["next_position"])
    return conversation


def _append_message(conversation: Conversation, **fields) -> Message:
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


def _existing_conversation(*, user_id, conversation_id, chat_id) -> Conversation | None:
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
            conversation = owned.filter(id=uuid.UUID(chat_id)).first()
        except ValueError:
            conversation = None
        return conversation or owned.filter(client_chat_id=chat_id).first()
    return None


def _start_conversation(*, user_id, text, chat_id, client_message_id) -> Turn | None:
    """A new conversation holding the user's message and the empty reply: two INSERTs, and no
    history to read back. None when a conversation with `chat_id` was created concurrently."""
    model = chat_model()
    conversation = Conversation(
        user_id=user_id, title=title_from(text), client_chat_id=chat_id, next_position=2
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
    try:
        with transaction.atomic() if chat_id else nullcontext():
            conversation.save(force_insert=True)
            Message.objects.bulk_create([user_message, reply])
    except IntegrityError:
        if not chat_id:
            raise
        return None  # the same chat id, created concurrently
    return Turn(
        user_id=user_id,
        conversation_id=conversation.id,
        user_message_id=user_message.id,
        reply_id=reply.id,
        model=model,
        history=ConversationHistory((), "", ((0, ChatMessage("user", text)),)),
    )


@transaction.atomic
def start_turn(
    *,
    user_id: int,
    text: str,
    conversation_id: uuid.UUID | None = None,
    chat_id: str | None = None,
    client_message_id: str | None = None,
    regenerate: bool = False,
) -> Turn:
    """Save the user's message (once, even when resent) and an empty reply to stream into."""
    _check_active(user_id)
    conversation = _existing_conversation(
        user_id=user_id, conversation_id=conversation_id, chat_id=chat_id
    )
    if conversation is None:
        turn = _start_conversation(
            user_id=user_id, text=text, chat_id=chat_id, client_message_id=client_message_id
        )
        if turn is not None:
            return turn
        conversation = Conversation.objects.select_for_update().get(
            user_id=user_id, client_chat_id=chat_id
        )
    messages = conversation.messages
    if regenerate:
        user_message = messages.filter(role=Message.Role.USER).order_by("-position").first()
        if user_message is None:
            raise ServiceError("There is no message to regenerate a reply for.")
        messages.filter(role=Message.Role.ASSISTANT, position__gt=user_message.position).delete()
    else:
        user_message = (
            messages.filter(role=Message.Role.USER, client_message_id=client_message_id).first()
            if client_message_id
            else None
        )
        if user_message is not None:
            reply = (
                messages.filter(role=Message.Role.ASSISTANT, position__gt=user_message.position)
                .order_by("position")
                .first()
            )
            if reply is not None and reply.status == Message.Status.COMPLETE:
                return Turn(
                    user_id=user_id,
                    conversation_id=conversation.id,
                    user_message_id=user_message.id,
                    reply_id=reply.id,
                    model=reply.model,
                    history=ConversationHistory((), "", ()),
                    stored_reply=reply.content,
                )
        else:
            user_message = _append_message(
                conversation,
                role=Message.Role.USER,
                content=text,
                client_message_id=client_message_id,
            )
    model = chat_model()
    reply = _append_message(
        conversation, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING, model=model
    )
    conversation.save(update_fields=["next_position", "updated_at"])
    return Turn(
        user_id=user_id,
        conversation_id=conversation.id,
        user_message_id=user_message.id,
        reply_id=reply.id,
        model=model,
        history=conversation_history(conversation=conversation, before_position=reply.position),
    )


def checkpoint_reply(*, reply_id: uuid.UUID, content: str) -> None:
    """Save the reply so far while it streams, so a crash loses at most a few seconds of it."""
    Message.objects.filter(id=reply_id, status=Message.Status.STREAMING).update(
        content=content, updated_at=timezone.now()
    )


def save_reply(
    *,
    turn: Turn,
    content: str,
    status: str,
    finish_reason: str = "",
    model: str = "",
    usage: Usage | None = None,
) -> None:
    """Store the reply's final state and its usage. Only a reply still streaming is updated, so
    the first writer (completion, cancellation, shutdown) wins."""
    fields = {
        "content": content,
        "status": status,
        "finish_reason": finish_reason,
        "updated_at": timezone.now(),
    }
    if model:
        fields["model"] = model
    if usage is not None:
        fields.update(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        )
    with transaction.atomic():
        updated = Message.objects.filter(id=turn.reply_id, status=Message.Status.STREAMING).update(
            **fields
        )
        if updated and usage is not None:
            save_usage(
                user_id=turn.user_id, endpoint="chat", model=model or turn.model, usage=usage
            )


def save_summary(*, turn: Turn, summary: str, through: int, model: str, usage: Usage) -> None:
    with transaction.atomic():
        Conversation.objects.filter(id=turn.conversation_id, summarized_through__lt=through).update(
            summary=summary, summarized_through=through
        )
        save_usage(user_id=turn.user_id, endpoint="chat:summary", model=model, usage=usage)


async def history_within_budget(turn: Turn) -> list[ChatMessage]:
    """The history to send, within CHAT_HISTORY_TOKEN_BUDGET: older turns that no longer fit are
    folded into the conversation's stored summary (by the fast model) rather than dropped. If the
    summary cannot be made, the whole history is sent: too long beats silently forgetting."""
    older, kept = turn.history.split(settings.CHAT_HISTORY_TOKEN_BUDGET)
    if not older:
        return turn.history.messages()
    previous = f"Summary so far:\n{turn.history.summary}\n\n" if turn.history.summary else ""
    transcript = "\n".join(f"{m.role}: {m.content}" for m in older)
    model = settings.GEMINI_MODEL_FAST if settings.AI_PROVIDER == "gemini" else "offline"
    try:
        result = await get_provider().generate_text(
            SUMMARY_PROMPT.format(previous=previous, transcript=transcript), model=model
        )
    except LLMError:
        logger.warning(
            "Could not summarise conversation %s; sending it whole", turn.conversation_id
        )
        return turn.history.messages()
    await run_db(
        save_summary,
        turn=turn,
        summary=result.text,
        through=kept.first_position,
        model=result.model,
        usage=result.usage,
    )
    return replace(kept, summary=result.text).messages()


async def _save_reply_async(turn: Turn, parts: list[str], status: str, **fields) -> None:
    await run_db(save_reply, turn=turn, content="".join(parts), status=status, **fields)


async def open_reply(turn: Turn) -> AsyncIterator[StreamEvent]:
    """Ask the model for the reply and wait for its first event, so that a model that fails before
    answering (after the provider's retries and fallback) is still a plain JSON error response.
    The user's message stays saved; the empty reply is marked `error` (or `interrupted` if the
    client leaves while waiting)."""
    if turn.stored_reply is not None:
        return _events(TextDelta(turn.stored_reply), StreamFinish("stop", Usage(), turn.model))
    events = None
    try:
        history = await history_within_budget(turn)
        events = get_provider().stream_chat(history, model=turn.model)
        first = await anext(events)
    except StopAsyncIteration:
        return _events()
    except LLMError:
        await _save_reply_async(turn, [], Message.Status.ERROR, finish_reason="error")
        raise
    except asyncio.CancelledError:
        if events is not None:
            await events.aclose()
        await _save_reply_async(turn, [], Message.Status.INTERRUPTED, finish_reason="other")
        raise
    return _events(first, rest=events)


async def _events(*first: StreamEvent, rest: AsyncIterator[StreamEvent] | None = None):
    for event in first:
        yield event
    if rest is not None:
        async with aclosing(rest):
            async for event in rest:
                yield event


async def stream_reply(
    turn: Turn, events: AsyncIterator[StreamEvent], encoder: StreamEncoder
) -> AsyncIterator[bytes]:
    """The turn as frames of `encoder`'s format: the model's text as it arrives, then the finish.

    A model failure mid-stream becomes the format's error frame and the partial reply is saved as
    `error`; a client that goes away (CancelledError) leaves it saved as `interrupted`."""
    text_id = f"text-{turn.reply_id}"
    yield encoder.start(
        str(turn.reply_id),
        {"conversationId": str(turn.conversation_id), "userMessageId": str(turn.user_message_id)},
    )
    parts: list[str] = []
    finish: StreamFinish | None = None
    checkpoint_every = settings.STREAM_CHECKPOINT_S
    next_checkpoint = time.monotonic() + checkpoint_every
    try:
        async with aclosing(events):
            async for event in events:
                if type(event) is TextDelta:
                    if not parts:
                        yield encoder.text_start(text_id)
                    parts.append(event.text)
                    yield encoder.text_delta(text_id, event.text)
                    if time.monotonic() >= next_checkpoint:
                        await run_db(
                            checkpoint_reply, reply_id=turn.reply_id, content="".join(parts)
                        )
                        next_checkpoint = time.monotonic() + checkpoint_every
                else:
                    finish = event
    except LLMError as exc:
        await _save_reply_async(turn, parts, Message.Status.ERROR, finish_reason="error")
        yield (encoder.text_end(text_id) if parts else b"") + encoder.error(exc.safe_message)
        yield encoder.finish("error") + encoder.done()
        return
    except (asyncio.CancelledError, GeneratorExit):
        await _save_reply_async(turn, parts, Message.Status.INTERRUPTED, finish_reason="other")
        raise

    finish = finish or StreamFinish(reason="other", usage=Usage(), model=turn.model)
    if turn.stored_reply is None:
        await _save_reply_async(
            turn,
            parts,
            Message.Status.COMPLETE,
            finish_reason=finish.reason,
            model=finish.model,
            usage=finish.usage,
        )
    yield (
        (encoder.text_end(text_id) if parts else b"")
        + encoder.finish(finish.reason, {"usage": finish.usage.as_dict()})
        + encoder.done()
    )
