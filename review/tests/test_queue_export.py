"""The review queue exports the conversations of the replies a reviewer selected, whole, as the
conversation list's export writes them."""

import pytest
from asgiref.sync import sync_to_async

from chat.models import Conversation
from chat.tests.test_export import (
    CSRF,
    asgi_post,
    exported,
    jsonl,
    staff_cookies,  # noqa: F401 - a fixture
)

from .conftest import make_reply

QUEUE = "/admin/review/reply/"


def conversations_with_replies(user, n):
    made = []
    for i in range(n):
        conversation = Conversation.objects.create(user=user, title=f"C{i}")
        replies = [make_reply(conversation, f"answer {i}.{j}") for j in range(2)]
        made.append((conversation, replies[0]))
    return made


@pytest.mark.django_db(transaction=True)
async def test_the_queue_exports_the_selected_replies_conversations(
    staff_cookies,  # noqa: F811 - the fixture imported above
    user,
):
    made = await sync_to_async(conversations_with_replies)(user, 3)
    selected = [reply for _, reply in made[:2]]
    made = [conversation for conversation, _ in made]
    form = {
        "action": "export_jsonl",
        "_selected_action": [str(reply.pk) for reply in selected],
        "csrfmiddlewaretoken": CSRF,
        "index": "0",
    }

    start, chunks = await asgi_post(f"{QUEUE}?review=all", form, staff_cookies)

    assert start["status"] == 200
    body = b"".join(chunks)
    assert {line["id"] for line in jsonl(body)} == {str(c.pk) for c in made[:2]}
    expected = await sync_to_async(exported)(
        Conversation.objects.filter(pk__in=[c.pk for c in made[:2]]), "jsonl"
    )
    assert body == expected  # the conversations whole, every message, not only the replies
