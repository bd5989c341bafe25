import pytest
from django.core.management import call_command

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo")
    first = (Conversation.objects.count(), Message.objects.count())
    assert "username=demo" in capsys.readouterr().out
    call_command("seed_demo")
    assert (Conversation.objects.count(), Message.objects.count()) == first
    assert first[0] >= 2 and first[1] >= 4


def test_admin_shows_conversation_with_messages(admin_client):
    call_command("seed_demo")
    conversation = Conversation.objects.get(title="Explain Python generators")
    page = admin_client.get(f"/admin/chat/conversation/{conversation.id}/change/")
    assert page.status_code == 200
    assert b"And an async generator?" in page.content

    found = admin_client.get("/admin/chat/conversation/", {"q": "async generator"})
    assert found.status_code == 200 and b"Explain Python generators" in found.content
    assert b"Planning a trip" not in found.content
    by_role = admin_client.get("/admin/chat/message/", {"role__exact": "system"})
    assert by_role.status_code == 200 and b"travel assistant" in by_role.content


def test_admin_requires_staff(client, user):
    client.force_login(user)
    assert client.get("/admin/chat/conversation/").status_code == 302


def test_openapi_schema_documents_the_stream(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    stream = schema["paths"]["/api/chat/stream/"]["post"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert "ChatStreamRequest" in str(stream["requestBody"])
    assert client.get("/api/docs/").status_code == 200
