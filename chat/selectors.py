"""Reads of conversations and messages. Every read is scoped to its owner."""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.db.models import Count, Q, QuerySet

from llm import ChatMessage

from .models import Conversation, Message


def conversations_of(*, user) -> QuerySet[Conversation]:
    return (
        Conversation.objects.filter(user=user)
        .annotate(message_count=Count("messages"))
        .order_by("-updated_at")
    )


def messages_of(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.order_by("position")


def estimate_tokens(text: str) -> int:
    """A cheap, slightly pessimistic token estimate (about four characters a token)."""
    return len(text) // 4 + 4


@dataclass(frozen=True)
class ConversationHistory:
    """The saved conversation as the model will see it: system instructions, the summary of
    turns folded away earlier, and the turns after it as (position, message)."""

    system: tuple[str, ...]
    summary: str
    turns: tuple[tuple[int, ChatMessage], ...]

    def messages(self) -> list[ChatMessage]:
        system = [ChatMessage("system", text) for text in self.system]
        if self.summary:
            system.append(
                ChatMessage("system", f"Summary of the earlier conversation:\n{self.summary}")
            )
        return system + [message for _, message in self.turns]

    def tokens(self) -> int:
        return sum(estimate_tokens(m.content) for m in self.messages())

    def split(self, budget: int) -> tuple[list[ChatMessage], ConversationHistory]:
        """Within budget: ([], self). Over it: the older turns to fold into the summary, and the
        history without them, keeping the newest turns within half the budget (so that folding
        happens now and then, not on every turn). The newest turn is always kept."""
        if self.tokens() <= budget:
            return [], self
        room = budget // 2 - sum(estimate_tokens(text) for text in self.system)
        kept: list[tuple[int, ChatMessage]] = []
        for position, message in reversed(self.turns):
            cost = estimate_tokens(message.content)
            if kept and cost > room:
                break
            kept.append((position, message))
            room -= cost
        kept.reverse()
        older = [message for _, message in self.turns[: len(self.turns) - len(kept)]]
        return older, replace(self, turns=tuple(kept))

    @property
    def first_position(self) -> int | None:
        return self.turns[0][0] if self.turns else None


def conversation_history(
    *, conversation: Conversation, before_position: int
) -> ConversationHistory:
    """The saved conversation, oldest first, up to (not including) the reply being written.
    Failed replies that produced no text are left out; partial replies stay, since the user saw
    them."""
    rows = (
        conversation.messages.filter(position__lt=before_position)
        # Turns already folded into the summary are not read again (system messages always are).
        .filter(Q(role=Message.Role.SYSTEM) | Q(position__gte=conversation.summarized_through))
        .exclude(role=Message.Role.ASSISTANT, content="")
        .order_by("position")
        .values_list("role", "content", "position")
    )
    system: list[str] = []
    turns: list[tuple[int, ChatMessage]] = []
    for role, content, position in rows:
        if role == Message.Role.SYSTEM:
            system.append(content)
        elif position >= conversation.summarized_through:
            turns.append((position, ChatMessage(role, content)))
    return ConversationHistory(tuple(system), conversation.summary, tuple(turns))
