"""`seed_demo` makes enough varied data to try every part of the product and its admin, and
running it again changes nothing."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models.functions import TruncDate

from chat.models import Conversation, Message, MessageFeedback
from review.models import ReplyReview
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def counts() -> dict:
    return {
        "users": get_user_model().objects.count(),
        "conversations": Conversation.objects.count(),
        "messages": Message.objects.count(),
        "feedback": MessageFeedback.objects.count(),
        "reviews": ReplyReview.objects.count(),
        "usage": UsageRecord.objects.count(),
    }


def test_running_it_twice_changes_nothing(capsys):
    call_command("seed_demo")
    first = counts()
    messages = sorted(Message.objects.values_list("id", "content", "created_at"))
    call_command("seed_demo")
    assert counts() == first
    assert sorted(Message.objects.values_list("id", "content", "created_at")) == messages
    out = capsys.readouterr().out
    assert "username=demo  password=demo-password-123" in out
    assert "username=reviewer  password=reviewer-password-123" in out


def test_the_data_covers_what_the_review_tools_filter_on():
    call_command("seed_demo")
    replies = Message.objects.filter(role="assistant")
    assert replies.filter(status="error").exists() and replies.filter(status="interrupted").exists()
    assert MessageFeedback.objects.filter(rating="down").count() >= 4
    assert MessageFeedback.objects.filter(rating="up").count() >= 3
    assert MessageFeedback.objects.exclude(categories=[]).exists()
    assert replies.filter(model="gemini-2.5-pro", total_tokens__gt=20_000).exists()
    assert ReplyReview.objects.exclude(note="").count() >= 2
    assert max(c.messages.count() for c in Conversation.objects.all()) > 100
    assert Conversation.objects.values("user").distinct().count() >= 4
    kinds = {part["type"] for reply in replies for part in reply.parts}
    assert {"text", "reasoning", "source-url"} <= kinds
    days = UsageRecord.objects.annotate(day=TruncDate("created_at")).values("day").distinct()
    assert days.count() >= 25
    assert set(UsageRecord.objects.values_list("model", flat=True)) == {
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
    }


def test_the_seeded_reviewer_logs_in_and_sees_the_open_queue(client):
    call_command("seed_demo")
    assert client.login(username="reviewer", password="reviewer-password-123")
    page = client.get("/admin/review/reply/", follow=True)
    assert page.status_code == 200
    html = page.content.decode()
    assert "The capital of Australia is Sydney" in html
    assert "You are right, and I was wrong" not in html  # reviewed: not open
    assert re.search(r"thumbs-down \(\d+\)", html)
