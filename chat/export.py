"""Conversations exported for review: JSON Lines (one conversation a line, its messages as
UIMessage parts with their feedback, and its usage) or CSV (one message a row).

Memory stays constant whatever the number of conversations: they are read in batches of
`batch_size` conversations (keyset pagination on `(created_at, id)`: a batch's cost does not grow
with how far the export has gone, and rows written meanwhile neither repeat nor shift it), each
batch in three queries (conversations with their users, their messages, the messages' feedback
with its users), rendered to bytes, written, and dropped before the next. One batch holds all the
messages of its conversations: a smaller `batch_size` bounds memory for very long conversations.

`ConversationExport.chunks()` is for sync callers (the management command);
`ConversationExport.achunks()` is for responses under ASGI, which stream only async iterators
(Django reads a sync iterator to its end into memory first): each batch is read and rendered in a
database thread (`core.db.run_db`), off the event loop and without holding a connection between
batches."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import orjson
from django.db.models import Prefetch, Q, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from core.db import run_db

from .models import Conversation, Message, MessageFeedback

Format = Literal["jsonl", "csv"]
FORMATS: dict[str, tuple[str, str]] = {  # format: (media type, file extension)
    "jsonl": ("application/jsonl; charset=utf-8", "jsonl"),
    "csv": ("text/csv; charset=utf-8", "csv"),
}
BATCH_SIZE = 50

CSV_COLUMNS = [
    "conversation_id",
    "conversation_title",
    "user",
    "conversation_created_at",
    "message_id",
    "position",
    "role",
    "status",
    "model",
    "content",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "finish_reason",
    "created_at",
    "feedback_rating",
    "feedback_comment",
]
# A cell starting with one of these is a formula to a spreadsheet (CSV injection): such cells are
# written after a single quote, as OWASP advises. JSON Lines carries the text unchanged.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def selection(
    *,
    usernames: Iterable[str] = (),
    since: dt.date | dt.datetime | None = None,
    ids: Iterable[str] = (),
) -> QuerySet[Conversation]:
    """Conversations of these users, created since then, with these ids (each filter optional)."""
    conversations = Conversation.objects.all()
    if usernames := list(usernames):
        conversations = conversations.filter(user__username__in=usernames)
    if since is not None:
        if isinstance(since, dt.date) and not isinstance(since, dt.datetime):
            since = dt.datetime.combine(since, dt.time.min)
        if timezone.is_naive(since):
            since = timezone.make_aware(since)
        conversations = conversations.filter(created_at__gte=since)
    if ids := list(ids):
        conversations = conversations.filter(pk__in=ids)
    return conversations


def parts_of(message: Message) -> list[dict]:
    """The message's UIMessage parts as stored (a file part keeps its `attachmentId`: signed URLs
    would expire), or its text as one text part."""
    if message.parts:
        return message.parts
    return [{"type": "text", "text": message.content}] if message.content else []


def feedback_record(feedback: MessageFeedback) -> dict:
    return {
        "user": feedback.user.get_username(),
        "rating": feedback.rating,
        "comment": feedback.comment,
        "categories": feedback.categories,
        "created_at": feedback.created_at,
        "updated_at": feedback.updated_at,
    }


def conversation_record(conversation: Conversation) -> dict:
    """One JSON Lines line: the conversation, its messages with their feedback, its usage."""
    messages = list(conversation.messages.all())  # prefetched, in position order
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "replies": 0}
    for message in messages:
        if message.role == Message.Role.ASSISTANT:
            usage["replies"] += 1
        for field in ("input_tokens", "output_tokens", "total_tokens"):
            usage[field] += getattr(message, field) or 0
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "user": conversation.user.get_username(),
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "summary": conversation.summary,
        "messages": [
            {
                "id": message.pk,
                "position": message.position,
                "role": message.role,
                "parts": parts_of(message),
                "content": message.content,
                "status": message.status,
                "model": message.model,
                "input_tokens": message.input_tokens,
                "output_tokens": message.output_tokens,
                "total_tokens": message.total_tokens,
                "finish_reason": message.finish_reason,
                "created_at": message.created_at,
                "feedback": [feedback_record(f) for f in message.feedback.all()],
            }
            for message in messages
        ],
        "usage": usage,
    }


class _Line:
    """The file `csv.writer` writes to: hands back each line instead of keeping it."""

    def write(self, line: str) -> str:
        return line


def _cell(value) -> object:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_line(writer, values: Iterable) -> str:
    return writer.writerow([_cell(value) for value in values])


def csv_rows(conversation: Conversation) -> Iterator[list]:
    for message in conversation.messages.all():
        feedback = list(message.feedback.all())
        yield [
            conversation.pk,
            conversation.title,
            conversation.user.get_username(),
            conversation.created_at,
            message.pk,
            message.position,
            message.role,
            message.status,
            message.model,
            message.content,
            message.input_tokens,
            message.output_tokens,
            message.total_tokens,
            message.finish_reason,
            message.created_at,
            # One feedback per user: in practice the owner's only; several are joined.
            "; ".join(f.rating for f in feedback),
            "; ".join(f.comment for f in feedback if f.comment),
        ]


@dataclass(frozen=True)
class Batch:
    data: bytes
    conversations: int
    messages: int
    after: tuple[dt.datetime, object] | None  # the keyset of the next batch; None at the end


class ConversationExport:
    """`conversations` (any queryset of them: only their ids are used) as `format`."""

    def __init__(
        self, conversations: QuerySet[Conversation], format: Format, batch_size: int = BATCH_SIZE
    ):
        if format not in FORMATS:
            raise ValueError(f"Unknown export format {format!r}: jsonl or csv.")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1.")
        # Only the selection is kept (annotations, ordering and joins of the caller's queryset,
        # e.g. the admin's, would weigh on every batch).
        self.selected = Conversation.objects.filter(pk__in=conversations.order_by().values("pk"))
        self.format = format
        self.batch_size = batch_size
        self.conversations = self.messages = 0

    @property
    def media_type(self) -> str:
        return FORMATS[self.format][0]

    def filename(self, now: dt.datetime | None = None) -> str:
        stamp = (now or timezone.now()).strftime("%Y%m%d-%H%M%S")
        return f"conversations-{stamp}.{FORMATS[self.format][1]}"

    def header(self) -> bytes:
        if self.format == "csv":
            return _csv_line(csv.writer(_Line()), CSV_COLUMNS).encode()
        return b""

    def batch(self, after: tuple[dt.datetime, object] | None = None) -> Batch:
        """The batch after keyset `after` (None: the first), rendered."""
        feedback = MessageFeedback.objects.select_related("user").order_by("created_at", "pk")
        messages = Message.objects.order_by("position").prefetch_related(
            Prefetch("feedback", queryset=feedback)
        )
        page = self.selected.select_related("user").order_by("created_at", "pk")
        if after is not None:
            created_at, pk = after
            page = page.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, pk__gt=pk))
        conversations = list(
            page.prefetch_related(Prefetch("messages", queryset=messages))[: self.batch_size]
        )
        if not conversations:
            return Batch(b"", 0, 0, None)
        if self.format == "jsonl":
            data = b"".join(
                orjson.dumps(conversation_record(c), option=orjson.OPT_APPEND_NEWLINE)
                for c in conversations
            )
        else:
            writer = csv.writer(_Line())
            data = "".join(
                _csv_line(writer, row) for c in conversations for row in csv_rows(c)
            ).encode()
        last = conversations[-1]
        return Batch(
            data,
            conversations=len(conversations),
            messages=sum(len(c.messages.all()) for c in conversations),
            after=(last.created_at, last.pk) if len(conversations) == self.batch_size else None,
        )

    def _take(self, batch: Batch) -> tuple[bytes, tuple[dt.datetime, object] | None]:
        self.conversations += batch.conversations
        self.messages += batch.messages
        return batch.data, batch.after

    def chunks(self) -> Iterator[bytes]:
        """The export, one chunk a batch (the CSV header first), for sync callers."""
        if header := self.header():
            yield header
        after = None
        while True:
            data, after = self._take(self.batch(after))
            if data:
                yield data
            del data  # not kept while the next batch is read
            if after is None:
                return

    async def achunks(self) -> AsyncIterator[bytes]:
        """The same chunks for an ASGI response: each batch read in a database thread."""
        if header := self.header():
            yield header
        after = None
        while True:
            data, after = self._take(await run_db(self.batch, after))
            if data:
                yield data
            del data
            if after is None:
                return


def export_response(
    conversations: QuerySet[Conversation], format: str, *, batch_size: int = BATCH_SIZE
) -> StreamingHttpResponse:
    """A download of `conversations` in `format` ("jsonl" or "csv"), streamed batch by batch."""
    export = ConversationExport(conversations, format, batch_size=batch_size)
    # An async iterator: under ASGI Django streams it (a sync one it would read whole first).
    response = StreamingHttpResponse(export.achunks(), content_type=export.media_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename()}"'
    return response
