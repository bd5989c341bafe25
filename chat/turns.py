"""Starting a turn: what is saved before the model is asked.

`start_turn` saves the user's message (once, however often it is resent) and the empty reply the
generation streams into. What it finds decides what the request gets: a new generation, the
stored reply of a resent message, the running generation of a resent message, or a 409 while
another generation runs. The database enforces the rules (one message per position, a unique
client message id per conversation, one `streaming` reply per conversation), so no race between
requests can store or bill a reply twice. The common turn (PostgreSQL, a new message without
files) is therefore read and written without a lock, in two statements; when another turn got
ahead of it, the database refuses its write and it is decided again in one transaction with the
conversation's row locked, as every other turn is.

The unlocked path is written once, as steps (`core.sql.Steps`): `start_turn` runs them through
Django's connection, `astart_turn` (the stream view's) on the event loop (`core.adb`)."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cache

import orjson
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.authentication import UserNotActive
from attachments.selectors import (
    aread_file_parts,
    file_parts,
    file_rows_of_parts_sql,
    read_file_parts,
    recent_files,
)
from attachments.services import attachment_from_part
from core import adb, sql
from core.db import run_db
from core.errors import Conflict, NotFound, ServiceError
from llm import model_for

from .history import ConversationHistory, StoredMessage, history_of
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
    #: The history's files read in the turn's database burst (`with_history_files`), by id.
    files: dict = field(default_factory=dict)
    #: The history's attachments, read with its messages (PostgreSQL's unlocked path): their
    #: rows (`attachments.selectors.read_file_parts`); None when not read.
    attachments: tuple | None = None


def missing_history_files(turn: Turn) -> list[str]:
    """The ids of `turn`'s history files that this process's recent files lack."""
    if turn.kind is not TurnKind.GENERATE or not turn.history.file_ids:
        return []
    _found, missing = recent_files.get_many(turn.history.file_ids)
    return missing


def with_history_files(turn: Turn, missing: list[str] | None = None) -> Turn:
    """`turn` with its history's files that this process's recent files lack (`missing`), read
    now: in a database thread, once the turn is saved, so that the generation needs no burst of
    its own for them. When the turn read its history's attachments with its messages, only their
    files are read (no query)."""
    missing = missing_history_files(turn) if missing is None else missing
    if not missing:
        return turn
    if turn.attachments is None:
        return dataclasses.replace(turn, files=file_parts(ids=missing))
    return dataclasses.replace(turn, files=read_file_parts(_attachment_rows(turn, missing)))


def _attachment_rows(turn: Turn, ids: list[str]) -> list:
    """The rows of `turn`'s history attachments (read with its messages) that `ids` name."""
    wanted = set(ids)
    return [row for row in turn.attachments or () if row[0] in wanted]


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


def _conversation_match(*, conversation_id, chat_id, first_message_id) -> tuple[str, list] | None:
    """How the conversation a turn continues is found (SQL over `c`, its parameters); None when
    the turn starts a new one."""
    if conversation_id:
        return "c.id = %s", [sql.uuid_param(conversation_id)]
    if chat_id:
        # useChat sends its own chat id: one of ours, or a client-made one we record.
        try:
            chat_uuid = sql.uuid_param(uuid.UUID(chat_id))
        except ValueError:
            return "c.client_chat_id = %s", [chat_id]
        return "(c.id = %s OR c.client_chat_id = %s)", [chat_uuid, chat_id]
    if first_message_id:
        # A resend of the message that started a conversation.
        return "c.client_first_message_id = %s", [first_message_id]
    return None


def _not_found(user_id: int) -> NotFound:
    """The conversation id the turn names is none of the user's (or the user is not active)."""
    _check_active(user_id)
    return NotFound("Conversation not found.")


def _existing_conversation(
    *, user_id, conversation_id, chat_id, first_message_id
) -> Conversation | None:
    """The caller's conversation this turn continues, locked for the turn's writes; None when the
    turn starts a new one. Only an active user's conversations are found: for a user who is no
    longer active, none is, and the new conversation's path refuses them (`_check_active`)."""
    match = _conversation_match(
        conversation_id=conversation_id, chat_id=chat_id, first_message_id=first_message_id
    )
    if match is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_conversation_sql(connection.vendor, match[0]), [user_id, *match[1]])
        row = cursor.fetchone()
    if row is None:
        if conversation_id:
            raise _not_found(user_id)
        return None
    return _conversation_of(user_id, row)


# The continued turn's statements, in SQL (see core.sql for why) ---------------------------------
@cache
def _conversation_sql(vendor: str, match: str, lock: bool = True) -> str:
    q = sql.quote
    lock = " FOR UPDATE OF c" if lock and sql.db().features.has_select_for_update_of else ""
    return (
        f"SELECT c.id, c.summary, c.summarized_through, c.next_position, c.title_source"
        f" FROM {q(Conversation._meta.db_table)} c"
        f" INNER JOIN {q(User._meta.db_table)} u ON u.{q(User._meta.pk.column)} = c.user_id"
        f" WHERE c.user_id = %s AND u.is_active AND {match} ORDER BY c.id LIMIT 1{lock}"
    )


def _conversation_of(user_id: int, row) -> Conversation:
    return Conversation(
        id=sql.as_uuid(row[0]),
        user_id=user_id,
        summary=row[1],
        summarized_through=row[2],
        next_position=row[3],
        title_source=row[4],
    )


#: A stored message's columns a turn reads (`StoredMessage`), of the table aliased `m`.
_MESSAGE_COLUMNS = (
    "m.id, m.role, m.content, m.position, m.status, m.client_message_id,"
    " CASE WHEN m.role = 'user' THEN m.parts END"
)
#: The messages a turn reads: the system messages and every message after the summary.
_MESSAGES_WANTED = "(m.role = 'system' OR m.position >= {summarized_through})"


@cache
def _stored_messages_sql(vendor: str) -> str:
    wanted = _MESSAGES_WANTED.format(summarized_through="%s")
    return (
        f"SELECT {_MESSAGE_COLUMNS} FROM {sql.quote(Message._meta.db_table)} m"
        f" WHERE m.conversation_id = %s AND {wanted} ORDER BY m.position"
    )


@cache
def _conversation_and_messages_sql(match: str) -> str:
    """PostgreSQL: the conversation (not locked) and its messages a turn reads, in one
    statement: a row per message, each with the conversation's columns first (one row of
    NULL messages for a conversation without any), and last, for a user message with files,
    their attachments' rows."""
    wanted = _MESSAGES_WANTED.format(summarized_through="c.summarized_through")
    files = file_rows_of_parts_sql("m.parts")
    return (
        f"WITH c AS ({_conversation_sql('postgresql', match, lock=False)})"
        f" SELECT c.*, {_MESSAGE_COLUMNS}, CASE WHEN m.role = 'user' THEN {files} END FROM c"
        f" LEFT JOIN {sql.quote(Message._meta.db_table)} m"
        f" ON m.conversation_id = c.id AND {wanted} ORDER BY m.position"
    )


def _stored_message(id_, role, content, position, status, client_message_id, parts):
    return StoredMessage(
        sql.as_uuid(id_),
        role,
        content,
        position,
        status,
        client_message_id,
        orjson.loads(parts) if parts is not None else None,
    )


def stored_messages(conversation: Conversation) -> list[StoredMessage]:
    """The conversation's messages a turn needs, in one query: the system messages and every
    message after the summary, oldest first. A user message's parts come with it (its files go
    with the history); an assistant's (its reasoning and sources) are not needed to start a
    turn."""
    with connection.cursor() as cursor:
        cursor.execute(
            _stored_messages_sql(connection.vendor),
            [sql.uuid_param(conversation.id), conversation.summarized_through],
        )
        rows = cursor.fetchall()
    return [_stored_message(*row) for row in rows]


def _conversation_with_messages(
    user_id: int, rows: list[tuple]
) -> tuple[Conversation | None, list[StoredMessage], tuple]:
    """PostgreSQL: the conversation a turn continues, its messages (`stored_messages`) and their
    files' attachment rows, from the rows of `_conversation_and_messages_sql`."""
    if not rows:
        return None, [], ()
    stored = [_stored_message(*row[5:12]) for row in rows if row[5] is not None]
    attachments = tuple(
        tuple(attachment) for row in rows if row[12] for attachment in orjson.loads(row[12])
    )
    return _conversation_of(user_id, rows[0]), stored, attachments


@cache
def _user_active_sql(vendor: str) -> str:
    return (
        f"EXISTS (SELECT 1 FROM {sql.quote(User._meta.db_table)}"
        f" WHERE {sql.quote(User._meta.pk.column)} = %s AND is_active)"
    )


def _start_conversation(
    *, user_id, text, files, chat_id, client_message_id, web_search, reply_id=None, locked=True
) -> sql.Steps[Turn | None]:
    """A new conversation holding the user's message and the empty reply, and no history to
    read back. `locked` (in the locked path's transaction): its files stored, then two INSERTs.
    Not `locked` (PostgreSQL, no files, no transaction): one statement, which inserts nothing
    unless the user is active. None when it was not inserted: the same conversation (same chat
    id, or same first message) exists already, or (not `locked`) the user is not active; the
    locked path then continues that conversation, or refuses the user."""
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
        id=reply_id or uuid.uuid4(),
        conversation=conversation,
        position=1,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model=model,
    )
    unique = chat_id or client_message_id
    try:
        if locked:
            files = yield sql.Call(
                _insert_conversation, (conversation, user_message, reply, files, bool(unique))
            )
        else:
            user_message.parts = user_parts(text, files)
            active = _user_active_sql(sql.db().vendor)
            statement = sql.insert_if_statement(
                [conversation, user_message, reply], active, [user_id]
            )
            if not (yield statement):
                return None
    except IntegrityError:
        if locked and not unique:
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


def _insert_conversation(
    conversation: Conversation, user_message: Message, reply: Message, files, unique: bool
) -> list[dict]:
    """The locked path's new conversation: its files stored, then two INSERTs (in a savepoint
    when a constraint may refuse them); the files' parts as stored."""
    with transaction.atomic() if unique else nullcontext():
        files = store_files(user_id=conversation.user_id, files=files)
        user_message.parts = user_parts(user_message.content, files)
        sql.insert([conversation])
        sql.insert([user_message, reply])
    return files


def _in_progress(reply_id: uuid.UUID) -> Conflict:
    return Conflict(
        "A reply is being generated in this conversation; wait for it or stop it.",
        code="generation_in_progress",
        details={"replyId": str(reply_id)},
    )


def _resent_among(stored: list[StoredMessage], client_message_id: str) -> StoredMessage | None:
    """The user message sent before with this id, among the stored messages read."""
    for message in stored:
        if message.role == Message.Role.USER and message.client_message_id == client_message_id:
            return message
    return None


def _resent_message(
    conversation: Conversation, stored: list[StoredMessage], client_message_id: str
) -> StoredMessage | None:
    """The user message sent before with this id: among the stored messages read, or (when it was
    folded into the summary since) found with one more query."""
    if message := _resent_among(stored, client_message_id):
        return message
    if conversation.summarized_through == 0:
        return None
    row = (
        Message.objects.filter(
            conversation_id=conversation.id,
            role=Message.Role.USER,
            client_message_id=client_message_id,
        )
        .values_list("id", "role", "content", "position", "status", "client_message_id")
        .first()
    )
    return StoredMessage(*row, None) if row else None


def _resend(stored: list[StoredMessage], resent: StoredMessage, running, **turn) -> Turn | None:
    """A message sent again: its stored reply, its running generation, or (when its reply failed
    or is missing) None: a new reply — but never a second generation beside a running one."""
    reply = next(
        (m for m in stored if m.role == Message.Role.ASSISTANT and m.position > resent.position),
        None,
    )
    if reply is None and running is None and stored and stored[-1].position > resent.position:
        # The resent message is older than the messages read: its reply is found by query.
        reply_row = (
            Message.objects.filter(
                conversation_id=turn["conversation_id"],
                role=Message.Role.ASSISTANT,
                position__gt=resent.position,
            )
            .order_by("position")
            .values_list("id", "role", "content", "position", "status", "client_message_id")
            .first()
        )
        reply = StoredMessage(*reply_row, None) if reply_row else None
    if reply is not None and reply.status == Message.Status.COMPLETE:
        stored_reply = Message.objects.only("model", "parts", "finish_reason").get(id=reply.id)
        return Turn(
            kind=TurnKind.STORED,
            reply_id=reply.id,
            model=stored_reply.model,
            stored_content=reply.content,
            stored_parts=tuple(stored_reply.parts),
            stored_finish=stored_reply.finish_reason or "stop",
            **turn,
        )
    if running is not None:
        if reply is not None and running.id == reply.id:
            model = Message.objects.filter(id=reply.id).values_list("model", flat=True).first()
            return Turn(kind=TurnKind.RUNNING, reply_id=reply.id, model=model or "", **turn)
        raise _in_progress(running.id)
    return None


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
    reply_id: uuid.UUID | None = None,
) -> Turn:
    """Save the user's message (once, even when resent) and an empty reply to stream into.

    `files` are the message's file parts as the client sent them: they are stored only when the
    message is (not for a resend). `reply_id`, when given, is the new reply's id (the caller
    announced it: `chat.generation.starting`).

    On PostgreSQL a message without files takes no lock and no transaction: in an existing
    conversation two statements (`_continue_unlocked`), in a new one one (`_start_conversation`).
    Every other turn (a resend, a regenerate, files, SQLite), and those when another turn got
    in their way, takes the locked path (`_start_turn_locked`). `astart_turn` does the same from
    the event loop."""
    arguments = dict(
        user_id=user_id,
        text=text,
        conversation_id=conversation_id,
        chat_id=chat_id,
        client_message_id=client_message_id,
        web_search=web_search,
        reply_id=reply_id,
    )
    if _unlocked_eligible(files, regenerate) and not connection.in_atomic_block:
        turn = sql.run(_start_unlocked(**arguments))
        if turn is not None:
            return turn
    return _start_turn_locked(files=files or [], regenerate=regenerate, **arguments)


def start_turn_with_files(**arguments) -> Turn:
    """`start_turn`, then `with_history_files`: one database burst."""
    return with_history_files(start_turn(**arguments))


def _locked_turn_with_files(**arguments) -> Turn:
    return with_history_files(_start_turn_locked(**arguments))


async def astart_turn(*, files: list[dict], regenerate: bool, **arguments) -> Turn:
    """`start_turn_with_files` from the event loop. On PostgreSQL a message without files runs
    its statements on the loop (`core.adb`), then reads the history's files this process lacks
    from the storage in a database thread, in one hop with concurrent turns' reads
    (`aread_file_parts`); the locked path (files, a regenerate, a turn another got ahead of,
    SQLite) runs in a database thread, whole: one hop."""
    if not _unlocked_eligible(files, regenerate):
        return await run_db(start_turn_with_files, files=files, regenerate=regenerate, **arguments)
    turn = await adb.run(_start_unlocked(**arguments))
    if turn is None:
        return await run_db(_locked_turn_with_files, files=[], regenerate=False, **arguments)
    if not (missing := missing_history_files(turn)):
        return turn
    if turn.attachments is None:  # their rows were not read with the history
        return await run_db(with_history_files, turn, missing)
    rows = _attachment_rows(turn, missing)
    return dataclasses.replace(turn, files=await aread_file_parts(rows))


def _unlocked_eligible(files, regenerate: bool) -> bool:
    """Whether the turn may take the unlocked path: PostgreSQL (`core.adb.available`), a new
    message without files."""
    return not files and not regenerate and adb.available()


def _start_unlocked(*, conversation_id, **arguments) -> sql.Steps[Turn | None]:
    """PostgreSQL, a message without files: continued (`_continue_unlocked`) or a new
    conversation (`_start_conversation`, not locked), also for useChat's first message (a chat
    id not seen yet). None: the locked path decides. `arguments`: `start_turn`'s."""
    chat_id = arguments["chat_id"]
    if conversation_id or chat_id:
        turn = yield from _continue_unlocked(conversation_id=conversation_id, **arguments)
        if turn is not _NOT_SEEN:
            return turn
    return (yield from _start_conversation(files=[], locked=False, **arguments))


#: `_continue_unlocked` found no conversation for the chat id: it starts one.
_NOT_SEEN = object()


def _continue_unlocked(
    *, user_id, text, conversation_id, chat_id, client_message_id, web_search, reply_id
) -> sql.Steps[Turn | None]:
    """A new message in an existing conversation, without a lock or a transaction: the
    conversation and its messages read in one statement, then the two new messages and the
    conversation's new position written in one statement (atomic by itself); `_NOT_SEEN` for a
    chat id not seen yet; and a resend is answered with its stored reply or joins its running
    generation (nothing written). None when the locked path must
    decide (a reply still running, a resend whose reply must be written again), or when another
    turn of the conversation wrote between the read and the write: the database's constraints
    refuse the write (one message per position, one streaming reply, one message per client
    id: a resend of a message folded into the summary since), and the locked path reads again.

    Each round trip costs more CPU than the statement itself (from a database thread, GIL
    hand-offs with the event loop; on the loop, psycopg's waiting): a transaction's BEGIN and
    COMMIT would be two more."""
    match, params = _conversation_match(
        conversation_id=conversation_id, chat_id=chat_id, first_message_id=None
    )
    rows = yield sql.Statement(
        _conversation_and_messages_sql(match), [user_id, *params], fetch=True
    )
    conversation, stored, attachments = _conversation_with_messages(user_id, rows)
    if conversation is None:
        if conversation_id:
            raise (yield sql.Call(_not_found, (user_id,)))
        return _NOT_SEEN
    running = next((m for m in stored if m.status == Message.Status.STREAMING), None)
    resent = _resent_among(stored, client_message_id) if client_message_id else None
    if resent is not None:
        # Its stored reply or its running generation need no lock: they are only read. A reply to
        # write (the first one failed), or one deleted meanwhile, is the locked path's.
        try:
            return (
                yield sql.Call(
                    _resend,
                    (stored, resent, running),
                    dict(
                        user_id=user_id, conversation_id=conversation.id, user_message_id=resent.id
                    ),
                )
            )
        except Message.DoesNotExist:
            return None
    if running is not None:
        return None
    user_message = _new_user_message(conversation, stored, text, [], client_message_id)
    try:
        turn = yield from _reply_turn(
            conversation,
            stored,
            [user_message],
            user_message.id,
            user_id=user_id,
            web_search=web_search,
            reply_id=reply_id,
        )
    except IntegrityError:
        return None
    return dataclasses.replace(turn, attachments=attachments)


def _new_user_message(
    conversation: Conversation,
    stored: list[StoredMessage],
    text: str,
    parts: list[dict],
    client_message_id: str | None,
) -> Message:
    """The user's message at the conversation's end (not saved yet), also added to `stored`."""
    parts = user_parts(text, parts)
    message = Message(
        conversation=conversation,
        position=conversation.next_position,
        role=Message.Role.USER,
        content=text,
        parts=parts,
        client_message_id=client_message_id,
    )
    stored.append(
        StoredMessage(
            message.id,
            Message.Role.USER,
            text,
            message.position,
            Message.Status.COMPLETE,
            client_message_id,
            parts,
        )
    )
    return message


def _reply_turn(
    conversation: Conversation,
    stored: list[StoredMessage],
    new_messages: list[Message],
    user_message_id: uuid.UUID,
    *,
    user_id: int,
    web_search: bool,
    reply_id: uuid.UUID | None,
) -> sql.Steps[Turn]:
    """Save `new_messages` and the empty reply after them, move the conversation on: the turn
    that generates the reply."""
    model = model_for("chat")
    reply = Message(
        id=reply_id or uuid.uuid4(),
        conversation=conversation,
        position=conversation.next_position + len(new_messages),
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        model=model,
    )
    # The new messages, then the conversation's next position and time (it sorts first in its
    # owner's list): one statement on PostgreSQL.
    yield sql.insert_then_update_step(
        [*new_messages, reply],
        Conversation,
        {"next_position": reply.position + 1, "updated_at": timezone.now()},
        "id = %s",
        [sql.uuid_param(conversation.id)],
    )
    conversation.next_position = reply.position + 1
    history = history_of(
        stored, summary=conversation.summary, summarized_through=conversation.summarized_through
    )
    return Turn(
        kind=TurnKind.GENERATE,
        user_id=user_id,
        conversation_id=conversation.id,
        user_message_id=user_message_id,
        reply_id=reply.id,
        model=model,
        history=history,
        web_search=web_search,
        wants_title=conversation.title_source == Conversation.TitleSource.MESSAGE
        and not history.has_reply,
    )


@transaction.atomic
def _start_turn_locked(
    *,
    user_id: int,
    text: str,
    files: list[dict],
    conversation_id: uuid.UUID | None,
    chat_id: str | None,
    client_message_id: str | None,
    regenerate: bool,
    web_search: bool,
    reply_id: uuid.UUID | None,
) -> Turn:
    """`start_turn` in one transaction, the conversation's row locked for it. Continuing a
    conversation takes three statements, whatever its length: the conversation (locked, with
    its user's active check), its messages after the summary (the history, the running reply,
    a resent message), and one that inserts the new messages and moves the conversation's
    position and time on (two on SQLite)."""
    conversation = _existing_conversation(
        user_id=user_id,
        conversation_id=conversation_id,
        chat_id=chat_id,
        first_message_id=client_message_id,
    )
    if conversation is None:
        _check_active(user_id)
        if regenerate:
            raise ServiceError("There is no reply to regenerate.", code="nothing_to_regenerate")
        turn = sql.run(
            _start_conversation(
                user_id=user_id,
                text=text,
                files=files,
                chat_id=chat_id,
                client_message_id=client_message_id,
                web_search=web_search,
                reply_id=reply_id,
            )
        )
        if turn is not None:
            return turn
        conversation = _existing_conversation(
            user_id=user_id,
            conversation_id=None,
            chat_id=chat_id,
            first_message_id=client_message_id,
        )

    stored = stored_messages(conversation)
    running = next((m for m in stored if m.status == Message.Status.STREAMING), None)
    new_messages: list[Message] = []

    if regenerate:
        if running is not None:
            raise _in_progress(running.id)
        user_index = next(
            (i for i in range(len(stored) - 1, -1, -1) if stored[i].role == Message.Role.USER),
            None,
        )
        if user_index is None:
            raise ServiceError("There is no reply to regenerate.", code="nothing_to_regenerate")
        user_message_id = stored[user_index].id
        conversation.messages.filter(
            role=Message.Role.ASSISTANT, position__gt=stored[user_index].position
        ).delete()
        stored = stored[: user_index + 1] + [
            m for m in stored[user_index + 1 :] if m.role != Message.Role.ASSISTANT
        ]
    else:
        resent = (
            _resent_message(conversation, stored, client_message_id) if client_message_id else None
        )
        if resent is not None:
            user_message_id = resent.id
            turn = _resend(
                stored,
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
                raise _in_progress(running.id)
            files = store_files(user_id=user_id, files=files)
            user_message = _new_user_message(conversation, stored, text, files, client_message_id)
            new_messages.append(user_message)
            user_message_id = user_message.id
    return sql.run(
        _reply_turn(
            conversation,
            stored,
            new_messages,
            user_message_id,
            user_id=user_id,
            web_search=web_search,
            reply_id=reply_id,
        )
    )
