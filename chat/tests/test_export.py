"""Exporting conversations for review: what a reviewer finds in the JSON Lines and CSV files, from
the admin's actions (streamed through the ASGI handler) and from `manage.py
export_conversations`."""

import asyncio
import csv
import io
import json
import uuid
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat import export as export_module
from chat.admin import ConversationAdmin
from chat.export import CSV_COLUMNS, ConversationExport, selection
from chat.models import Conversation, Message, MessageFeedback

ATTACHMENT_ID = "5b0f3a5e-2a43-4c1f-9d7e-0c3f0a6f1e11"


def small_conversation(user, title="Lisbon"):
    conversation = Conversation.objects.create(
        user=user, title=title, summary="Earlier: flights.", next_position=2
    )
    question = Message.objects.create(
        conversation=conversation,
        position=0,
        role="user",
        content="Three days in Lisbon?",
        parts=[
            {"type": "text", "text": "Three days in Lisbon?"},
            {
                "type": "file",
                "mediaType": "image/png",
                "filename": "map.png",
                "attachmentId": ATTACHMENT_ID,
            },
        ],
    )
    reply = Message.objects.create(
        conversation=conversation,
        position=1,
        role="assistant",
        content="=See Belém.",
        parts=[
            {"type": "reasoning", "text": "Short answer."},
            {"type": "text", "text": "=See Belém."},
        ],
        model="gemini-2.5-flash",
        input_tokens=12,
        output_tokens=5,
        total_tokens=17,
        finish_reason="stop",
    )
    feedback = MessageFeedback.objects.create(
        message=reply, user=user, rating="down", comment="Too short", categories=["incomplete"]
    )
    return conversation, question, reply, feedback


def conversations_with_messages(user, n, messages=2):
    made = []
    for i in range(n):
        conversation = Conversation.objects.create(user=user, title=f"C{i}", next_position=messages)
        Message.objects.bulk_create(
            Message(conversation=conversation, position=p, role="user", content=f"{i}.{p}")
            for p in range(messages)
        )
        made.append(conversation)
    return made


def exported(conversations, format, **kwargs) -> bytes:
    return b"".join(ConversationExport(conversations, format, **kwargs).chunks())


def jsonl(data: bytes) -> list[dict]:
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.django_db
def test_jsonl_holds_the_conversation_its_parts_feedback_and_usage(user):
    conversation, question, reply, feedback = small_conversation(user)
    Message.objects.create(  # stored before parts existed: its text is its one part
        conversation=conversation, position=2, role="user", content="And a fourth day?"
    )
    conversation.refresh_from_db()
    late = Message.objects.get(position=2)

    [line] = jsonl(exported(Conversation.objects.all(), "jsonl"))

    assert line == {
        "id": str(conversation.id),
        "title": "Lisbon",
        "user": "alice",
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "summary": "Earlier: flights.",
        "messages": [
            {
                "id": str(question.id),
                "position": 0,
                "role": "user",
                "parts": [
                    {"type": "text", "text": "Three days in Lisbon?"},
                    {
                        "type": "file",
                        "mediaType": "image/png",
                        "filename": "map.png",
                        "attachmentId": ATTACHMENT_ID,
                    },
                ],
                "content": "Three days in Lisbon?",
                "status": "complete",
                "model": "",
                "input_tokens": None,
                "output_tokens": None,
                "total_tokens": None,
                "finish_reason": "",
                "created_at": question.created_at.isoformat(),
                "feedback": [],
            },
            {
                "id": str(reply.id),
                "position": 1,
                "role": "assistant",
                "parts": [
                    {"type": "reasoning", "text": "Short answer."},
                    {"type": "text", "text": "=See Belém."},
                ],
                "content": "=See Belém.",
                "status": "complete",
                "model": "gemini-2.5-flash",
                "input_tokens": 12,
                "output_tokens": 5,
                "total_tokens": 17,
                "finish_reason": "stop",
                "created_at": reply.created_at.isoformat(),
                "feedback": [
                    {
                        "user": "alice",
                        "rating": "down",
                        "comment": "Too short",
                        "categories": ["incomplete"],
                        "created_at": feedback.created_at.isoformat(),
                        "updated_at": feedback.updated_at.isoformat(),
                    }
                ],
            },
            {
                "id": str(late.id),
                "position": 2,
                "role": "user",
                "parts": [{"type": "text", "text": "And a fourth day?"}],
                "content": "And a fourth day?",
                "status": "complete",
                "model": "",
                "input_tokens": None,
                "output_tokens": None,
                "total_tokens": None,
                "finish_reason": "",
                "created_at": late.created_at.isoformat(),
                "feedback": [],
            },
        ],
        "usage": {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17, "replies": 1},
    }


@pytest.mark.django_db
def test_csv_has_one_row_per_message_with_its_feedback(user):
    conversation, question, reply, _ = small_conversation(user)

    rows = list(csv.reader(io.StringIO(exported(Conversation.objects.all(), "csv").decode())))

    assert rows[0] == CSV_COLUMNS
    conversation_columns = [
        str(conversation.id),
        "Lisbon",
        "alice",
        conversation.created_at.isoformat(),
    ]
    assert rows[1:] == [
        [
            *conversation_columns,
            str(question.id),
            "0",
            "user",
            "complete",
            "",
            "Three days in Lisbon?",
            "",
            "",
            "",
            "",
            question.created_at.isoformat(),
            "",
            "",
        ],
        [
            *conversation_columns,
            str(reply.id),
            "1",
            "assistant",
            "complete",
            "gemini-2.5-flash",
            "'=See Belém.",  # not a formula for a spreadsheet (JSON Lines has it as written)
            "12",
            "5",
            "17",
            "stop",
            reply.created_at.isoformat(),
            "down",
            "Too short",
        ],
    ]


@pytest.mark.django_db
def test_batches_cost_three_queries_whatever_their_number_of_conversations(user, other_user):
    def queries(batch_size):
        with CaptureQueriesContext(connection) as captured:
            data = exported(Conversation.objects.all(), "jsonl", batch_size=batch_size)
        return len(captured), len(jsonl(data))

    small_conversation(user)  # with feedback
    conversations_with_messages(other_user, 4, messages=3)

    # conversations (with users), their messages, the messages' feedback (with users): per batch
    assert queries(batch_size=100) == (3, 5)
    assert queries(batch_size=2) == (3 * 3, 5)  # batches of 2, 2, 1
    assert queries(batch_size=5) == (3 + 1, 5)  # a full batch, then an empty one
    conversations_with_messages(other_user, 20)
    assert queries(batch_size=100) == (3, 25)


@pytest.mark.django_db
def test_every_conversation_once_in_order_across_batches(user):
    made = conversations_with_messages(user, 7)
    # Conversations created in the same instant: the keyset's id decides.
    Conversation.objects.update(created_at=made[0].created_at)
    lines = jsonl(exported(Conversation.objects.all(), "jsonl", batch_size=3))
    assert sorted(line["id"] for line in lines) == sorted(str(c.id) for c in made)
    assert [line["id"] for line in lines] == sorted(str(c.id) for c in made)


@pytest.mark.django_db
def test_management_command_writes_the_selection(user, other_user, tmp_path, capsys):
    mine, *_ = small_conversation(user)
    [theirs, other] = conversations_with_messages(other_user, 2)
    output = tmp_path / "out.jsonl"

    call_command("export_conversations", "--user", "alice", "--output", str(output))
    assert [line["id"] for line in jsonl(output.read_bytes())] == [str(mine.id)]
    assert "Exported 1 conversations, 2 messages (jsonl)" in capsys.readouterr().err

    call_command("export_conversations", "--format", "csv", "--ids", str(theirs.id), str(other.id))
    out = capsys.readouterr().out
    assert out.encode() == exported(Conversation.objects.exclude(pk=mine.pk), "csv")

    Conversation.objects.filter(pk=other.pk).update(created_at="2030-01-02T00:00:00Z")
    call_command("export_conversations", "--since", "2030-01-01")
    assert [line["id"] for line in jsonl(capsys.readouterr().out.encode())] == [str(other.id)]


@pytest.mark.django_db
def test_management_command_refuses_bad_arguments():
    with pytest.raises(CommandError, match="--since"):
        call_command("export_conversations", "--since", "yesterday")
    with pytest.raises(CommandError, match="not a conversation id"):
        call_command("export_conversations", "--ids", "nope")


@pytest.mark.django_db
def test_selection_filters_combine(user, other_user):
    mine = small_conversation(user)[0]
    conversations_with_messages(other_user, 1)
    assert list(selection(usernames=["alice"], ids=[str(mine.id)])) == [mine]
    assert list(selection(usernames=["alice"], ids=[str(uuid.uuid4())])) == []


# --- Admin actions --------------------------------------------------------------------------------

CSRF = "a" * 32  # an unmasked token: the cookie's secret, as Django accepts it


async def asgi_post(path: str, form: dict, cookies: dict) -> tuple[dict, list[bytes]]:
    """POST through the project's ASGI application, as uvicorn would: the response start and
    every body message, as sent."""
    from chatbackend.asgi import application

    body = urlencode(form, doseq=True).encode()
    path, _, query = path.partition("?")
    cookie = "; ".join(f"{k}={v}" for k, v in {**cookies, "csrftoken": CSRF}.items())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            (b"cookie", cookie.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    requested = False
    start: dict = {}
    chunks: list[bytes] = []

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Future()  # the client stays connected

    async def send(message):
        if message["type"] == "http.response.start":
            start.update(message)
        elif message.get("body"):
            chunks.append(message["body"])
            sent_after.append(len(batches_read))

    sent_after: list[int] = []
    batches_read: list[object] = []
    asgi_post.sent_after, asgi_post.batches_read = sent_after, batches_read
    await application(scope, receive, send)
    return start, chunks


@pytest.fixture
def count_batches(monkeypatch):
    """Records each batch read, to see when the response sent what."""
    read = export_module.ConversationExport.batch

    def counting(self, after=None):
        asgi_post.batches_read.append(after)
        return read(self, after)

    monkeypatch.setattr(export_module.ConversationExport, "batch", counting)


@pytest.fixture
def staff_cookies(admin_user):
    client = Client()
    client.force_login(admin_user)
    return {name: morsel.value for name, morsel in client.cookies.items()}


def action_form(action, conversations):
    return {
        "action": action,
        "_selected_action": [str(c.pk) for c in conversations],
        "csrfmiddlewaretoken": CSRF,
        "index": "0",
    }


@pytest.mark.django_db(transaction=True)
async def test_admin_action_streams_the_selected_conversations_batch_by_batch(
    staff_cookies, user, monkeypatch, count_batches
):
    from asgiref.sync import sync_to_async

    made = await sync_to_async(conversations_with_messages)(user, 6)
    selected = made[:5]
    monkeypatch.setattr(ConversationAdmin, "export_batch_size", 2)

    start, chunks = await asgi_post(
        "/admin/chat/conversation/", action_form("export_jsonl", selected), staff_cookies
    )

    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"Content-Type"] == b"application/jsonl; charset=utf-8"
    assert headers[b"Content-Disposition"].startswith(b'attachment; filename="conversations-')
    # One body message a batch, each sent before the next batch was read: streamed, not read
    # whole first (as Django does under ASGI with a sync iterator).
    assert asgi_post.sent_after == [1, 2, 3]
    assert [len(jsonl(chunk)) for chunk in chunks] == [2, 2, 1]
    expected = await sync_to_async(exported)(
        Conversation.objects.filter(pk__in=[c.pk for c in selected]), "jsonl"
    )
    assert b"".join(chunks) == expected
    assert {line["id"] for line in jsonl(expected)} == {str(c.pk) for c in selected}


@pytest.mark.django_db(transaction=True)
async def test_admin_csv_action_streams_the_header_then_the_rows(
    staff_cookies, user, count_batches
):
    from asgiref.sync import sync_to_async

    made = await sync_to_async(conversations_with_messages)(user, 2, messages=3)

    start, chunks = await asgi_post(
        "/admin/chat/conversation/", action_form("export_csv", made), staff_cookies
    )

    assert start["status"] == 200
    assert dict(start["headers"])[b"Content-Type"] == b"text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert rows[0] == CSV_COLUMNS
    assert sorted(row[9] for row in rows[1:]) == ["0.0", "0.1", "0.2", "1.0", "1.1", "1.2"]
    assert asgi_post.sent_after[0] == 0  # the header went out before any row was read


@pytest.mark.django_db
def test_export_actions_are_for_staff_only(client, user, django_user_model):
    [conversation] = conversations_with_messages(user, 1)
    form = action_form("export_jsonl", [conversation])

    client.force_login(user)  # not staff
    response = client.post("/admin/chat/conversation/", form)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

    staff = django_user_model.objects.create_user("bob", password="x-y-z-123456", is_staff=True)
    client.force_login(staff)  # staff without the permission to view conversations
    response = client.post("/admin/chat/conversation/", form)
    assert response.status_code == 403
    assert not getattr(response, "streaming", False)
