"""Titles written by the model: after a conversation's first reply, a short title from a cheap
model call (CHAT_TITLE_MODEL, by default the fast model), stored and sent to the client as a
`data-title` part before the reply's `finish`.

A title the user set is never replaced: a turn asks for a title only when the conversation's
title still comes from its first message (`Turn.wants_title`), and the title is stored by a
conditional UPDATE, so a rename that lands while the title is being written wins. A title call
that fails or takes longer than TITLE_TIMEOUT_S costs the reply nothing: a warning is logged, no
frame is sent, and the title stays the first message's."""

from __future__ import annotations

import asyncio
import logging
import uuid

from django.conf import settings
from pydantic import BaseModel, Field

from core import adb, sql
from llm import Usage, get_provider, model_for
from usage.services import usage_record

from .models import Conversation
from .turns import TITLE_MAX_CHARS, Turn

logger = logging.getLogger(__name__)

#: The reply's `finish` waits for the title: give up on a title that takes longer.
TITLE_TIMEOUT_S = 10.0
#: How much of the first message the title model reads.
PROMPT_MESSAGE_CHARS = 2000

#: What models wrap titles in: quotes of every kind, markdown emphasis (opening, closing).
WRAPPERS = ('"', "'", "`", "*", "_", "\u201c\u201d", "\u2018\u2019", "\u00ab\u00bb")

TITLE_INSTRUCTIONS = (
    "You name chat conversations. Given the first message of a conversation, write a title of 2 "
    "to 6 words that says what the conversation is about, in the language of the message. No "
    "quotes, no trailing punctuation, no emoji."
)


class ConversationTitle(BaseModel):
    """What the title model answers (JSON mode: no preamble or quotes to strip from free text)."""

    title: str = Field(description="2 to 6 words, no quotes, no trailing punctuation")


def title_model() -> str:
    return settings.CHAT_TITLE_MODEL or model_for("fast")


def _unwrap(line: str) -> str:
    """`"Lisbon"` and `**Lisbon**` → `Lisbon`, but `"A" and "B"` stays whole."""
    changed = True
    while changed:
        changed = False
        for pair in WRAPPERS:
            opening, closing = pair[0], pair[-1]
            if len(line) > 2 and line[0] == opening and line[-1] == closing:
                inner = line.strip(pair)
                if opening not in inner and closing not in inner:
                    line, changed = inner.strip(), True
    return line


def clean_title(raw: str) -> str:
    """One line of at most TITLE_MAX_CHARS, without the quotes, markdown or trailing dots models
    like to add; "" when nothing is left."""
    line = next((line for line in raw.splitlines() if line.strip()), "")
    line = " ".join(line.split()).lstrip("# ")
    if line.lower().startswith("title:"):
        line = line[len("title:") :].strip()
    line = _unwrap(_unwrap(line).rstrip(" .…:;,"))
    if len(line) <= TITLE_MAX_CHARS:
        return line
    cut = line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] or line[:TITLE_MAX_CHARS]
    return cut.rstrip(" .,:;") + "…"


def title_save(
    *, conversation_id: uuid.UUID, user_id: int, title: str, model: str, usage: Usage
) -> sql.Step | None:
    """What stores the title (if any) unless the user titled the conversation meanwhile (or
    another reply's title came first), and accounts the call's tokens either way; run, the
    number of conversations titled. On PostgreSQL one statement, atomic by itself
    (`core.sql.insert_then_update_step`). None: nothing to store."""
    record = usage_record(user_id=user_id, endpoint="chat:title", model=model, usage=usage)
    if not title:
        return sql.insert_statement([record]) if record is not None else None
    values = {"title": title, "title_source": Conversation.TitleSource.MODEL}
    where = "id = %s AND title_source = %s"
    params = [sql.uuid_param(conversation_id), Conversation.TitleSource.MESSAGE]
    if record is None:
        return sql.update_statement(Conversation, values, where, params)
    return sql.insert_then_update_step([record], Conversation, values, where, params)


async def save_title(**fields) -> bool:
    """`title_save`, run (on PostgreSQL on the event loop): whether the title was stored."""
    step = title_save(**fields)
    titled = await adb.run_step(step) if step is not None else 0
    return bool(fields["title"] and titled)


async def maybe_title(turn: Turn) -> str | None:
    """The title written for `turn`'s conversation from its first message, once stored (call it
    when the reply is complete); None when the turn wants none, the call failed, or the user's
    title won."""
    if not turn.wants_title:
        return None
    message = turn.history.turns[-1].message.content if turn.history.turns else ""
    if not message.strip():
        return None  # files alone: nothing to title the conversation by
    try:
        async with asyncio.timeout(TITLE_TIMEOUT_S):
            result = await get_provider().generate_object(
                ConversationTitle,
                message[:PROMPT_MESSAGE_CHARS],
                model=title_model(),
                system=TITLE_INSTRUCTIONS,
            )
        title = clean_title(result.object.title)
        stored = await save_title(
            conversation_id=turn.conversation_id,
            user_id=turn.user_id,
            title=title,
            model=result.model,
            usage=result.usage,
        )
    except Exception as exc:  # noqa: BLE001 - whatever fails, the reply is already complete
        logger.warning(
            "No title for conversation %s: %s: %s", turn.conversation_id, type(exc).__name__, exc
        )
        return None
    return title if stored else None
