"""Conversations that already have a history, for the tests of a continued turn.

`seed_conversations(users, per_user, messages)` makes `per_user` conversations for each user, each
holding `messages` earlier messages the way real ones are stored: user and assistant turns of
realistic length, every assistant reply with a reasoning part and two web sources, and every
tenth user message with an image attachment (a real stored file, sent with its turn). Bulk
inserts: thousands of conversations in a few seconds."""

from __future__ import annotations

USER_TEXT = (
    "I am comparing ways to stream replies from a model to a browser. Could you explain how "
    "server-sent events behave behind a proxy, and what I should set so that nothing buffers? "
)
REPLY_TEXT = (
    "Server-sent events are a plain HTTP response that never ends: the server writes `data:` "
    "lines and flushes them, and the browser's EventSource (or fetch with a reader) hands each "
    "event over as it arrives. Proxies buffer by default, so send `Cache-Control: no-cache` and "
    "`X-Accel-Buffering: no`, keep the connection alive with a comment every fifteen seconds, and "
    "make sure compression is off for this route. " * 3
)
REASONING_TEXT = "The user asks about buffering; nginx's proxy_buffering is the usual culprit. " * 4


def seed_conversations(users, per_user: int, messages: int) -> list[list[str]]:
    """Per user, the ids (str) of `per_user` new conversations of `messages` messages each."""
    from django.core.files.base import ContentFile
    from django.db import transaction

    from attachments.models import Attachment
    from attachments.tests import files
    from chat.models import Conversation, Message

    made: list[list[str]] = []
    image = files.png(64, 64)
    with transaction.atomic():
        for user in users:
            attachment = Attachment(
                user=user,
                media_type="image/png",
                filename="diagram.png",
                size=len(image),
                sha256="",
            )
            attachment.file.save("diagram.png", ContentFile(image), save=False)
            attachment.save()
            file_part = {
                "type": "file",
                "mediaType": "image/png",
                "filename": "diagram.png",
                "attachmentId": str(attachment.id),
                "size": len(image),
            }
            conversations = Conversation.objects.bulk_create(
                [
                    Conversation(
                        user=user, title="Streaming behind a proxy", next_position=messages
                    )
                    for _ in range(per_user)
                ]
            )
            rows = []
            for conversation in conversations:
                for position in range(messages):
                    if position % 2 == 0:
                        parts = [{"type": "text", "text": USER_TEXT}]
                        if position % 20 == 0:
                            parts.insert(0, file_part)
                        rows.append(
                            Message(
                                conversation=conversation,
                                position=position,
                                role="user",
                                content=USER_TEXT,
                                parts=parts,
                            )
                        )
                    else:
                        rows.append(
                            Message(
                                conversation=conversation,
                                position=position,
                                role="assistant",
                                content=REPLY_TEXT,
                                parts=[
                                    {"type": "reasoning", "text": REASONING_TEXT},
                                    {"type": "text", "text": REPLY_TEXT},
                                    *(
                                        {
                                            "type": "source-url",
                                            "sourceId": f"src-{position}-{i}",
                                            "url": f"https://example.com/proxies/{i}",
                                            "title": "Proxy buffering explained",
                                        }
                                        for i in range(2)
                                    ),
                                ],
                                model="gemini-2.5-flash",
                                input_tokens=400,
                                output_tokens=150,
                                total_tokens=550,
                                finish_reason="stop",
                            )
                        )
            Message.objects.bulk_create(rows, batch_size=2000)
            made.append([str(c.id) for c in conversations])
    return made
