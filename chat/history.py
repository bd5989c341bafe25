"""The history sent to the model: the saved conversation within a token budget, older turns folded
into a stored summary, and the files that went with each turn."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

from django.conf import settings
from django.db import transaction

from core.db import run_db
from llm import ChatMessage, FilePart, LLMError, estimate_tokens, get_provider, model_for
from usage.services import save_usage

from .models import Conversation

logger = logging.getLogger(__name__)

SUMMARY_PROMPT = """Summarize the conversation below for your own later reference, so that it can
be continued without it. Keep names, facts, numbers, decisions, the user's preferences and any open
questions. Write at most 250 words, in the conversation's language.

{previous}Conversation:
{transcript}"""

#: What a file costs in the model's context, roughly: Gemini counts 258 tokens per image (and per
#: PDF page); other files by their size.
IMAGE_TOKENS = 258


def file_ids(parts: list[dict]) -> tuple[str, ...]:
    return tuple(
        str(p["attachmentId"]) for p in parts if p.get("type") == "file" and p.get("attachmentId")
    )


def _file_tokens(part: dict) -> int:
    media_type = str(part.get("mediaType", ""))
    if media_type.startswith("image/"):
        return IMAGE_TOKENS
    return int(part.get("size") or 0) // 4 + IMAGE_TOKENS


class StoredMessage(NamedTuple):
    """What a turn reads of each stored message of its conversation (`chat.turns`): enough to
    build the history and to find the running reply or a resent message. `parts` is read for
    user messages only (their files); None for the others."""

    id: uuid.UUID
    role: str
    content: str
    position: int
    status: str
    client_message_id: str | None
    parts: list[dict] | None


class HistoryTurn(NamedTuple):
    """One message the model is sent (a tuple: a long history builds one per message per turn)."""

    position: int
    message: ChatMessage
    #: The attachment ids of the files sent with this turn, and their estimated tokens.
    files: tuple[str, ...] = ()
    file_tokens: int = 0

    def tokens(self) -> int:
        return estimate_tokens(self.message.content) + self.file_tokens


@dataclass(frozen=True)
class ConversationHistory:
    """The saved conversation as the model will see it: system instructions, the summary of
    turns folded away earlier, and the turns after it."""

    system: tuple[str, ...]
    summary: str
    turns: tuple[HistoryTurn, ...]

    @classmethod
    def empty(cls) -> ConversationHistory:
        return cls((), "", ())

    @classmethod
    def first(cls, text: str, files: list[dict]) -> ConversationHistory:
        """The history of a conversation's first turn: the user's message alone."""
        turn = HistoryTurn(
            0, ChatMessage("user", text), file_ids(files), sum(_file_tokens(f) for f in files)
        )
        return cls((), "", (turn,))

    @property
    def file_ids(self) -> tuple[str, ...]:
        return tuple(i for turn in self.turns for i in turn.files)

    def messages(self, files: dict[str, FilePart] | None = None) -> list[ChatMessage]:
        """The messages to send; `files` maps attachment ids to their loaded bytes."""
        system = [ChatMessage("system", text) for text in self.system]
        if self.summary:
            system.append(
                ChatMessage("system", f"Summary of the earlier conversation:\n{self.summary}")
            )
        turns = [
            replace(t.message, files=tuple(files[i] for i in t.files if i in files))
            if files and t.files
            else t.message
            for t in self.turns
        ]
        return system + turns

    def tokens(self) -> int:
        system = sum(estimate_tokens(text) for text in self.system)
        return system + estimate_tokens(self.summary) + sum(t.tokens() for t in self.turns)

    def split(self, budget: int) -> tuple[list[ChatMessage], ConversationHistory]:
        """Within budget: ([], self). Over it: the older turns to fold into the summary, and the
        history without them, keeping the newest turns within half the budget (so that folding
        happens now and then, not on every turn). The newest turn is always kept."""
        if self.tokens() <= budget:
            return [], self
        room = budget // 2 - sum(estimate_tokens(text) for text in self.system)
        kept: list[HistoryTurn] = []
        for turn in reversed(self.turns):
            cost = turn.tokens()
            if kept and cost > room:
                break
            kept.append(turn)
            room -= cost
        kept.reverse()
        older = [t.message for t in self.turns[: len(self.turns) - len(kept)]]
        return older, replace(self, turns=tuple(kept))

    @property
    def has_reply(self) -> bool:
        """Whether the model already answered in this conversation: a reply with text (failed
        replies without any are left out of the history), or turns folded into the summary."""
        return bool(self.summary) or any(t.message.role == "assistant" for t in self.turns)

    @property
    def first_position(self) -> int | None:
        return self.turns[0].position if self.turns else None


def history_of(
    rows: Iterable[StoredMessage], *, summary: str, summarized_through: int
) -> ConversationHistory:
    """The history the model is sent, from the conversation's stored messages (oldest first, as
    `chat.turns` reads them in the turn's one query). Failed replies that produced no text are
    left out; partial replies stay, since the user saw them, unless another reply to the same
    message followed (a resend after the failure): the model sees one answer per message, never
    the void attempt before it (nor, when writing that retry, the attempt it replaces).
    Reasoning is never sent back; files go with their turn. Messages folded into the summary
    are left out (system messages never are)."""
    system: list[str] = []
    turns: list[HistoryTurn] = []
    last_role = None  # of turns[-1]
    for _id, role, content, position, _status, _client_id, parts in rows:
        if role == "system":
            system.append(content)
            continue
        if position < summarized_through or (role == "assistant" and not content):
            continue
        if role == "assistant" and last_role == "assistant":
            turns.pop()  # an answer that another answer to the same message followed
        if role == "user" and parts and (files := [p for p in parts if p.get("type") == "file"]):
            turn = HistoryTurn(
                position,
                ChatMessage(role, content),
                file_ids(files),
                sum(_file_tokens(f) for f in files),
            )
        else:
            turn = HistoryTurn(position, ChatMessage(role, content))
        turns.append(turn)
        last_role = role
    if last_role == "assistant":
        turns.pop()  # an answer being written again (a regenerate) or to a message now resent
    return ConversationHistory(tuple(system), summary, tuple(turns))


def save_summary(*, conversation_id, user_id, summary: str, through: int, model: str, usage):
    with transaction.atomic():
        Conversation.objects.filter(id=conversation_id, summarized_through__lt=through).update(
            summary=summary, summarized_through=through
        )
        save_usage(user_id=user_id, endpoint="chat:summary", model=model, usage=usage)


async def history_within_budget(turn) -> ConversationHistory:
    """The history to send, within CHAT_HISTORY_TOKEN_BUDGET: older turns that no longer fit are
    folded into the conversation's stored summary (by the fast model) rather than dropped. If the
    summary cannot be made, the whole history is sent: too long beats silently forgetting."""
    older, kept = turn.history.split(settings.CHAT_HISTORY_TOKEN_BUDGET)
    if not older:
        return turn.history
    previous = f"Summary so far:\n{turn.history.summary}\n\n" if turn.history.summary else ""
    transcript = "\n".join(f"{m.role}: {m.content}" for m in older)
    try:
        result = await get_provider().generate_text(
            SUMMARY_PROMPT.format(previous=previous, transcript=transcript),
            model=model_for("fast"),
        )
    except LLMError:
        logger.warning(
            "Could not summarise conversation %s; sending it whole", turn.conversation_id
        )
        return turn.history
    await run_db(
        save_summary,
        conversation_id=turn.conversation_id,
        user_id=turn.user_id,
        summary=result.text,
        through=kept.first_position,
        model=result.model,
        usage=result.usage,
    )
    return replace(kept, summary=result.text)
