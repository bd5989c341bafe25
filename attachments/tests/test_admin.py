"""The admin shows attachments as thumbnails and a message's parts readably, escaping everything."""

import re

import pytest
from django.test import Client

from attachments import services
from attachments.models import Attachment
from chat.admin import render_parts
from chat.models import Conversation, Message

from . import files

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-admin-123")
    client = Client()
    client.force_login(admin)
    return client


def content_urls(html: str) -> list[str]:
    return [
        url.replace("&amp;", "&")
        for url in re.findall(r'src="(/api/chat/attachments/[^"]+/content/\?[^"]+)"', html)
    ]


def test_attachment_admin_shows_a_thumbnail_that_loads(staff_client, user):
    data = files.png()
    attachment = services.create_attachment(
        user=user, data=data, media_type="image/png", filename='<b>"x".png'
    )

    listing = staff_client.get("/admin/attachments/attachment/").content.decode()
    page = staff_client.get(f"/admin/attachments/attachment/{attachment.id}/change/")

    assert page.status_code == 200
    assert "<b>" not in listing and "&lt;b&gt;&quot;x&quot;.png" in listing
    [thumbnail] = content_urls(listing)
    assert thumbnail.startswith(f"/api/chat/attachments/{attachment.id}/content/?")
    assert Client().get(thumbnail).content == data
    assert content_urls(page.content.decode())


def message_with(user, parts) -> Message:
    conversation = Conversation.objects.create(user=user, title="t")
    message = Message(conversation=conversation, position=0, role="assistant", content="x")
    message.parts = parts  # the lead's Message.parts field, or a plain attribute before it
    return message


def test_parts_render_readably_and_escaped(user):
    image = services.create_attachment(user=user, data=files.png(), media_type="image/png")
    pdf = services.create_attachment(user=user, data=files.pdf(), media_type="application/pdf")
    message = message_with(
        user,
        [
            {"type": "reasoning", "text": "think <i>hard</i>"},
            {"type": "text", "text": "<script>alert(1)</script>"},
            {
                "type": "file",
                "mediaType": "image/png",
                "url": "data:image/png;base64,AAAA",
                "filename": "cat.png",
                "attachmentId": str(image.id),
            },
            {
                "type": "file",
                "mediaType": "application/pdf",
                "url": "/old",
                "filename": "r.pdf",
                "attachmentId": str(pdf.id),
            },
            {"type": "file", "mediaType": "image/png", "url": "javascript:alert(2)"},
            {
                "type": "source-url",
                "sourceId": "s1",
                "url": "https://example.com/a?b=1&c=2",
                "title": "Ex <ample>",
            },
            {"type": "source-url", "sourceId": "s2", "url": "javascript:alert(3)", "title": "bad"},
        ],
    )

    html = str(render_parts(message))

    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<details><summary>reasoning</summary>" in html
    assert "think &lt;i&gt;hard&lt;/i&gt;" in html
    [thumbnail] = content_urls(html)
    assert thumbnail.startswith(f"/api/chat/attachments/{image.id}/content/?")
    assert Client().get(thumbnail).status_code == 200  # signed for the conversation's owner
    assert f'href="/api/chat/attachments/{pdf.id}/content/?' in html
    assert "javascript:" not in html  # neither a file's nor a source's url is linked
    assert '<a href="https://example.com/a?b=1&amp;c=2"' in html
    assert "Ex &lt;ample&gt;</a>" in html
    assert "data:image" not in html


def test_message_without_parts_shows_its_content(user):
    conversation = Conversation.objects.create(user=user, title="t")
    message = Message(conversation=conversation, position=0, role="user", content="a < b")
    if hasattr(message, "parts"):
        message.parts = []
    assert "a &lt; b" in str(render_parts(message))


def test_message_admin_page_renders_parts(staff_client, user):
    conversation = Conversation.objects.create(user=user, title="t")
    message = Message.objects.create(
        conversation=conversation, position=0, role="assistant", content="hello <there>"
    )
    page = staff_client.get(f"/admin/chat/message/{message.id}/change/")
    assert page.status_code == 200
    assert "hello &lt;there&gt;" in page.content.decode()
    assert Attachment.objects.count() == 0


@pytest.mark.skipif(
    "parts" not in {f.name for f in Message._meta.get_fields()},
    reason="Message.parts is not in the model yet",
)
def test_conversation_page_shows_stored_parts(staff_client, user):
    image = services.create_attachment(user=user, data=files.png(), media_type="image/png")
    conversation = Conversation.objects.create(user=user, title="t")
    Message.objects.create(
        conversation=conversation,
        position=0,
        role="user",
        content="what is <this>?",
        parts=[
            {"type": "file", "mediaType": "image/png", "attachmentId": str(image.id)},
            {"type": "text", "text": "what is <this>?"},
        ],
    )

    page = staff_client.get(f"/admin/chat/conversation/{conversation.id}/change/").content.decode()

    [thumbnail] = content_urls(page)
    assert Client().get(thumbnail).content == files.png()
    assert "what is &lt;this&gt;?" in page


def test_attachment_admin_search_by_name_or_id(staff_client, user):
    attachment = services.create_attachment(
        user=user, data=files.png(), media_type="image/png", filename="holiday.png"
    )
    for term in ["holiday", str(attachment.id), "alice"]:
        page = staff_client.get("/admin/attachments/attachment/", {"q": term})
        assert page.status_code == 200
        assert str(attachment.id) in page.content.decode(), term
    page = staff_client.get("/admin/attachments/attachment/", {"q": "nothing-like-it"})
    assert page.status_code == 200 and str(attachment.id) not in page.content.decode()
