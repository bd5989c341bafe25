import pytest

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def make_conversation(user, title="Hello", n_messages=0):
    conversation = Conversation.objects.create(user=user, title=title)
    for i in range(n_messages):
        Message.objects.create(
            conversation=conversation,
            position=i,
            role="user" if i % 2 == 0 else "assistant",
            content=f"m{i}",
        )
    conversation.next_position = n_messages
    conversation.save()
    return conversation


def test_create_list_retrieve_update_delete(api, user):
    created = api.post("/api/chat/conversations/", {"title": "Trip"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["title"] == "Trip" and body["message_count"] == 0
    conversation_id = body["id"]

    listed = api.get("/api/chat/conversations/").json()
    assert [c["id"] for c in listed["results"]] == [conversation_id]

    renamed = api.patch(
        f"/api/chat/conversations/{conversation_id}/", {"title": "Lisbon"}, format="json"
    )
    assert renamed.status_code == 200 and renamed.json()["title"] == "Lisbon"
    assert Conversation.objects.get(id=conversation_id).title == "Lisbon"

    assert api.delete(f"/api/chat/conversations/{conversation_id}/").status_code == 204
    assert not Conversation.objects.filter(id=conversation_id).exists()


def test_system_prompt_is_stored_as_first_message(api):
    body = api.post(
        "/api/chat/conversations/", {"title": "T", "system_prompt": "Be terse."}, format="json"
    ).json()
    assert body["message_count"] == 1
    message = Message.objects.get(conversation_id=body["id"])
    assert (message.role, message.content, message.position) == ("system", "Be terse.", 0)


def test_list_is_newest_first_and_counts_messages(api, user):
    older = make_conversation(user, "older", n_messages=3)
    newer = make_conversation(user, "newer", n_messages=1)
    results = api.get("/api/chat/conversations/").json()["results"]
    assert [(c["id"], c["message_count"]) for c in results] == [
        (str(newer.id), 1),
        (str(older.id), 3),
    ]


def test_messages_are_paginated_oldest_first(api, user):
    conversation = make_conversation(user, n_messages=5)
    page = api.get(f"/api/chat/conversations/{conversation.id}/messages/?page_size=2").json()
    assert page["count"] == 5
    assert [m["content"] for m in page["results"]] == ["m0", "m1"]
    assert set(page["results"][0]) >= {
        "id",
        "role",
        "content",
        "status",
        "model",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "finish_reason",
        "created_at",
    }
    page3 = api.get(f"/api/chat/conversations/{conversation.id}/messages/?page_size=2&page=3")
    assert [m["content"] for m in page3.json()["results"]] == ["m4"]


@pytest.mark.parametrize(
    "method,suffix", [("get", ""), ("patch", ""), ("delete", ""), ("get", "messages/")]
)
def test_other_users_conversation_is_404_everywhere(api, other_user, method, suffix):
    theirs = make_conversation(other_user, "secret", n_messages=2)
    response = getattr(api, method)(
        f"/api/chat/conversations/{theirs.id}/{suffix}",
        {"title": "x"} if method == "patch" else None,
        format="json",
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.title == "secret"


def test_others_conversations_are_not_listed(api, other_user):
    make_conversation(other_user, "secret")
    assert api.get("/api/chat/conversations/").json()["count"] == 0


def test_no_token_is_401(client):
    response = client.get("/api/chat/conversations/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_empty_title_is_400(api):
    response = api.post("/api/chat/conversations/", {"title": ""}, format="json")
    assert response.status_code == 400
    assert "title" in response.json()["error"]["details"]
