"""Conversations that already have a history, for `bench.run --cases` (a continued turn).

    python bench/seed.py --users 10 --conversations 200 --history 5,20,50    (server's environment)

Run as a script with the server tree's directory as cwd and on PYTHONPATH (so `bench.run
--server-tree` seeds through that tree's models). Reads the benchmark users `bench-00000`...
(made by `bench.users`), and for each history length N makes `--conversations` conversations
spread over the first `--users` users, each holding N earlier messages: user and assistant in
turn, of realistic lengths; every third assistant message with a `reasoning` part and two
`source-url` parts, every `--files-every`-th user message with a `file` part, an image or a PDF
stored through the attachments app (`attachments.services.create_attachment`: a row and a file
in the storage), as `chat.turns.store_files` keeps them. The history stays within
CHAT_HISTORY_TOKEN_BUDGET's default (24,000) at N = 50, so no turn folds it into a summary.

Prints {"<N>": [[conversation id, user index], ...], ...} as JSON."""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import zlib

WORDS = (
    "the stream request model token reply database history server worker python django "
    "conversation message answer question latency budget summary file image document cache "
    "because when which would could should about their there other after before again"
).split()


def sentence(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        out.append(word)
        size += len(word) + 1
    text = " ".join(out)
    return text[0].upper() + text[1:] + "."


def png(rng: random.Random, width: int = 96, height: int = 72) -> bytes:
    """A real PNG of noise (so it does not compress): ~20 KB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )


def pdf(rng: random.Random, chars: int = 12000) -> bytes:
    text = sentence(rng, chars).encode()
    stream = b"BT /F1 10 Tf 20 800 Td (" + text + b") Tj ET"
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n"
        + f"4 0 obj << /Length {len(stream)} >> stream\n".encode()
        + stream
        + b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--conversations", type=int, default=200, help="per history length")
    parser.add_argument("--history", default="5,20,50", help="earlier messages per conversation")
    parser.add_argument("--files-every", type=int, default=5, help="a file every k-th user msg")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from attachments.services import create_attachment
    from chat.models import Conversation, Message

    rng = random.Random(20261204)
    names = [f"bench-{i:05d}" for i in range(args.users)]
    found = {u.username: u for u in get_user_model().objects.filter(username__in=names)}
    users = [found[name] for name in names]
    out: dict[str, list[list]] = {}
    for n in (int(x) for x in args.history.split(",") if x.strip()):
        conversations, messages = [], []
        for c in range(args.conversations):
            user_index = c % len(users)
            user = users[user_index]
            conversation = Conversation(user=user, title=sentence(rng, 40)[:200], next_position=n)
            conversations.append(conversation)
            user_turn = 0
            for position in range(n):
                if position % 2 == 0:  # the user
                    user_turn += 1
                    text = sentence(rng, rng.randint(120, 500))
                    parts: list[dict] = []
                    if args.files_every and user_turn % args.files_every == 0:
                        if (user_turn // args.files_every) % 2:
                            data, media_type, filename = png(rng), "image/png", "chart.png"
                        else:
                            data, media_type, filename = pdf(rng), "application/pdf", "notes.pdf"
                        attachment = create_attachment(
                            user=user, data=data, media_type=media_type, filename=filename
                        )
                        parts.append(
                            {
                                "type": "file",
                                "mediaType": attachment.media_type,
                                "filename": attachment.filename,
                                "attachmentId": str(attachment.id),
                                "size": attachment.size,
                            }
                        )
                    parts.append({"type": "text", "text": text})
                    messages.append(
                        Message(
                            conversation=conversation,
                            position=position,
                            role="user",
                            content=text,
                            parts=parts,
                        )
                    )
                else:  # the model's reply
                    text = sentence(rng, rng.randint(900, 2200))
                    parts = []
                    if position % 6 == 1:
                        parts.append({"type": "reasoning", "text": sentence(rng, 600)})
                    parts.append({"type": "text", "text": text})
                    if position % 6 == 1:
                        parts.extend(
                            {
                                "type": "source-url",
                                "sourceId": f"src-{position}-{k}",
                                "url": f"https://example.com/docs/{position}/{k}",
                                "title": sentence(rng, 30),
                            }
                            for k in range(2)
                        )
                    tokens = len(text) // 4
                    messages.append(
                        Message(
                            conversation=conversation,
                            position=position,
                            role="assistant",
                            content=text,
                            parts=parts,
                            model="gemini-2.5-flash",
                            input_tokens=400 + 300 * position,
                            output_tokens=tokens,
                            total_tokens=400 + 300 * position + tokens,
                            finish_reason="stop",
                        )
                    )
        with transaction.atomic():
            Conversation.objects.bulk_create(conversations)
            Message.objects.bulk_create(messages, batch_size=2000)
        out[str(n)] = [[str(conv.id), i % len(users)] for i, conv in enumerate(conversations)]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
