"""A review queue to look at: replies of two users with feedback, errors, interruptions, costly
and long ones, one already reviewed; and the people who look at it."""

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from chat.models import Conversation, Message, MessageFeedback
from review.models import ReplyReview

PASSWORD = "a-long-reviewer-password-7"


def make_reply(
    conversation: Conversation,
    text: str,
    *,
    status: str = Message.Status.COMPLETE,
    model: str = "gemini-2.5-flash",
    tokens: tuple[int, int] = (100, 50),
    day: str = "2026-03-02",
) -> Message:
    """The user's question and the assistant's reply to it, the reply dated `day` at noon UTC."""
    position = conversation.next_position
    Message.objects.create(
        conversation=conversation, position=position, role="user", content=f"Q: {text}"
    )
    reply = Message.objects.create(
        conversation=conversation,
        position=position + 1,
        role="assistant",
        content=text,
        parts=[{"type": "text", "text": text}],
        status=status,
        model=model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        total_tokens=sum(tokens),
    )
    at = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    Message.objects.filter(pk=reply.pk).update(created_at=at)
    conversation.next_position = position + 2
    conversation.save(update_fields=["next_position"])
    reply.refresh_from_db()
    return reply


@dataclass
class Queue:
    wrong: Message  # thumbs-down with a comment
    failed: Message  # status error
    cut: Message  # status interrupted
    costly: Message  # over both thresholds (tokens and cost)
    long: Message  # over the token threshold, cheap
    liked: Message  # thumbs-up
    reviewed: Message  # mallory's, thumbs-down, already reviewed

    @property
    def open(self) -> list[Message]:
        return [self.wrong, self.failed, self.cut, self.costly, self.long, self.liked]


@pytest.fixture
def reviewer(django_user_model):
    user = django_user_model.objects.create_user(username="rita", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="reviewer"))
    return user


@pytest.fixture
def queue(user, other_user, settings) -> Queue:
    settings.REVIEW_TOKEN_THRESHOLD = 20_000
    settings.REVIEW_COST_THRESHOLD_USD = 0.05
    trip = Conversation.objects.create(user=user, title="Trip to Lisbon")
    wrong = make_reply(trip, "Lisbon is the capital of Spain.", day="2026-03-01")
    MessageFeedback.objects.create(
        message=wrong, user=user, rating="down", comment="Wrong country", categories=["incorrect"]
    )
    failed = make_reply(trip, "The museum opens at", status="error", tokens=(80, 3))
    cut = make_reply(trip, "Day one: Alfama, then", status="interrupted", model="gemini-2.5-pro")
    # 30k in, 5k out of Pro: $0.0375 + $0.05 = $0.0875.
    costly = make_reply(trip, "A long itinerary.", model="gemini-2.5-pro", tokens=(30_000, 5_000))
    # 25k in, 1k out of Flash-Lite: $0.0025 + $0.0004 = $0.0029.
    long = make_reply(
        trip, "A long summary.", model="gemini-2.5-flash-lite", tokens=(25_000, 1_000)
    )
    liked = make_reply(trip, "Take tram 28.", day="2026-03-03")
    MessageFeedback.objects.create(message=liked, user=user, rating="up")

    recipes = Conversation.objects.create(user=other_user, title="Recipes")
    reviewed = make_reply(recipes, "Bake for three hours at 300 C.")
    MessageFeedback.objects.create(message=reviewed, user=other_user, rating="down")
    boss = type(user).objects.create_user(username="boss", is_staff=True, is_superuser=True)
    ReplyReview.objects.create(
        message=reviewed, reviewer=boss, reviewed_at=timezone.now(), note="Known bad recipe"
    )
    return Queue(wrong, failed, cut, costly, long, liked, reviewed)
