"""Feedback on replies: POST/PUT/DELETE /api/chat/messages/{id}/feedback/, shown with the message
as UIMessage `metadata.feedback`."""

from uuid import uuid4

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from chat.models import Conversation, Message, MessageFeedback
from conftest import bearer

pytestmark = pytest.mark.django_db


def conversation_of(user, *roles: str) -> list[Message]:
    conversation = Conversation.objects.create(user=user, title="Trip")
    messages = [
        Message.objects.create(
            conversation=conversation, position=i, role=role, content=f"{role} {i}"
        )
        for i, role in enumerate(roles)
    ]
    conversation.next_position = len(roles)
    conversation.save()
    return messages


def url(message) -> str:
    return f"/api/chat/messages/{message.id}/feedback/"


def messages_page(api, message) -> list[dict]:
    page = api.get(f"/api/chat/conversations/{message.conversation_id}/messages/")
    assert page.status_code == 200
    return page.json()["results"]


def test_feedback_round_trip_shows_with_the_message(api, user):
    _question, reply = conversation_of(user, "user", "assistant")
    assert [m["metadata"] for m in messages_page(api, reply)] == [{}, {"feedback": None}]

    given = api.post(
        url(reply),
        {"rating": "down", "comment": "Wrong date.", "categories": ["inaccurate", "incomplete"]},
        format="json",
    )

    assert given.status_code == 201
    stored = MessageFeedback.objects.get()
    assert (stored.message_id, stored.user_id, stored.rating) == (reply.id, user.id, "down")
    assert (stored.comment, stored.categories) == ("Wrong date.", ["inaccurate", "incomplete"])
    shown = {
        "rating": "down",
        "comment": "Wrong date.",
        "categories": ["inaccurate", "incomplete"],
        "updatedAt": stored.updated_at.isoformat().replace("+00:00", "Z"),
    }
    assert given.json() == shown
    assert [m["metadata"] for m in messages_page(api, reply)] == [{}, {"feedback": shown}]

    replaced = api.put(url(reply), {"rating": "up"}, format="json")

    assert replaced.status_code == 200
    assert replaced.json()["rating"] == "up"
    stored = MessageFeedback.objects.get()
    assert (stored.rating, stored.comment, stored.categories) == ("up", "", [])  # whole
    assert messages_page(api, reply)[1]["metadata"]["feedback"]["rating"] == "up"

    assert api.delete(url(reply)).status_code == 204
    assert not MessageFeedback.objects.exists()
    assert messages_page(api, reply)[1]["metadata"] == {"feedback": None}
    gone = api.delete(url(reply))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_a_second_post_is_409_and_leaves_the_first(api, user):
    (reply,) = conversation_of(user, "assistant")
    assert api.post(url(reply), {"rating": "up"}, format="json").status_code == 201

    again = api.post(url(reply), {"rating": "down"}, format="json")

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "feedback_exists"
    assert list(MessageFeedback.objects.values_list("rating", flat=True)) == ["up"]


def test_put_creates_when_there_is_none(api, user):
    (reply,) = conversation_of(user, "assistant")

    created = api.put(url(reply), {"rating": "up", "comment": "Spot on"}, format="json")

    assert created.status_code == 201
    assert MessageFeedback.objects.get().comment == "Spot on"


def test_another_users_reply_is_404_and_nothing_is_written(api, user, other_user):
    (theirs,) = conversation_of(other_user, "assistant")
    MessageFeedback.objects.create(message=theirs, user=other_user, rating="up")

    for method in (api.post, api.put):
        refused = method(url(theirs), {"rating": "down"}, format="json")
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "not_found"
    assert api.delete(url(theirs)).status_code == 404
    assert list(MessageFeedback.objects.values_list("user_id", "rating")) == [(other_user.id, "up")]
    unknown = api.post(f"/api/chat/messages/{uuid4()}/feedback/", {"rating": "up"}, format="json")
    assert unknown.status_code == 404


def test_only_replies_can_be_rated(api, user):
    system, question = conversation_of(user, "system", "user")

    for message in (system, question):
        refused = api.post(url(message), {"rating": "up"}, format="json")
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "not_a_reply"
    assert not MessageFeedback.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "rating"),
        ({"rating": "meh"}, "rating"),
        ({"rating": 1}, "rating"),
        ({"rating": "up", "comment": 5}, "comment"),
        ({"rating": "up", "comment": "x" * 2001}, "comment"),
        ({"rating": "up", "categories": "inaccurate"}, "categories"),
        ({"rating": "up", "categories": ["made-up"]}, "categories"),
        ({"rating": "up", "categories": [7]}, "categories"),
    ],
)
def test_bad_bodies_are_400_and_nothing_is_written(api, user, body, field):
    (reply,) = conversation_of(user, "assistant")

    refused = api.post(url(reply), body, format="json")

    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "invalid_request" and field in error["details"]
    assert not MessageFeedback.objects.exists()


def test_categories_come_from_the_setting_each_once(api, user, settings):
    settings.FEEDBACK_CATEGORIES = ["wrong-tone", "other"]
    (reply,) = conversation_of(user, "assistant")

    unknown = {"rating": "down", "categories": ["inaccurate"]}
    assert api.post(url(reply), unknown, format="json").status_code == 400
    twice = {"rating": "down", "categories": ["wrong-tone", "wrong-tone"]}
    given = api.put(url(reply), twice, format="json")

    assert given.status_code == 201
    assert MessageFeedback.objects.get().categories == ["wrong-tone"]


def test_feedback_needs_a_token():
    assert APIClient().post(f"/api/chat/messages/{uuid4()}/feedback/", {}).status_code == 401


def test_feedback_is_rate_limited_per_user(api, user, other_user, settings, monkeypatch):
    from chat.throttling import FeedbackRateThrottle

    # Counters of its own, whatever earlier tests left in a shared cache; an hour's window so that
    # no window ends during the test.
    monkeypatch.setattr(FeedbackRateThrottle, "group", f"feedback-test-{uuid4()}")
    settings.FEEDBACK_RATE_LIMIT = "2/h"
    (reply,) = conversation_of(user, "assistant")
    assert api.put(url(reply), {"rating": "up"}, format="json").status_code == 201
    assert api.put(url(reply), {"rating": "down"}, format="json").status_code == 200

    refused = api.delete(url(reply))

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert MessageFeedback.objects.get().rating == "down"
    (theirs,) = conversation_of(other_user, "assistant")
    mallory = APIClient()
    mallory.credentials(HTTP_AUTHORIZATION=bearer(other_user))
    assert mallory.put(url(theirs), {"rating": "up"}, format="json").status_code == 201


def test_a_page_of_messages_reads_feedback_in_one_query(api, user, other_user):
    messages = conversation_of(user, *["user", "assistant"] * 30)
    replies = messages[1::2]
    for reply in replies[::2]:
        MessageFeedback.objects.create(message=reply, user=user, rating="up")
    # Someone else's rating of the same reply (an admin's, say) is never shown to the owner.
    MessageFeedback.objects.create(message=replies[1], user=other_user, rating="down")

    def page_queries(page_size: int) -> tuple[int, list[dict]]:
        with CaptureQueriesContext(connection) as queries:
            response = api.get(
                f"/api/chat/conversations/{replies[0].conversation_id}/messages/"
                f"?page_size={page_size}"
            )
        return len(queries), response.json()["results"]

    few, _ = page_queries(4)
    many, results = page_queries(60)

    assert many == few  # no query per message
    shown = [m["metadata"]["feedback"] for m in results if m["role"] == "assistant"]
    assert [f and f["rating"] for f in shown] == ["up", None] * 15


def test_openapi_schema_documents_feedback(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    endpoint = schema["paths"]["/api/chat/messages/{id}/feedback/"]
    assert set(endpoint) >= {"post", "put", "delete"}
    assert "FeedbackRequest" in str(endpoint["post"]["requestBody"])
    assert set(endpoint["post"]["responses"]) >= {"201", "400", "404", "409", "429"}
    assert set(endpoint["put"]["responses"]) >= {"200", "201"}
    assert "204" in endpoint["delete"]["responses"]
    components = schema["components"]["schemas"]
    assert set(components["Feedback"]["properties"]) == {
        "rating",
        "comment",
        "categories",
        "updatedAt",
    }
    assert "metadata" in components["Message"]["properties"]
