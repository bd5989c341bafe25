"""Peak memory of exporting conversations (`chat.export`), at 10k and 100k messages: it should not
grow with the export's size. Against PostgreSQL, in a database of its own (dropped at the end):

    python -m bench.export_memory [--sizes 100,1000] [--messages 100] [--keep]

For each size (conversations of `--messages` messages each: parts, tokens, feedback on one reply in
five) it measures, each in a fresh process, with the output thrown away:

* `command`: `manage.py export_conversations --format F --output /dev/null`;
* `response`: the admin action "Export selected" (all conversations) through the project's ASGI
  application, as uvicorn calls it, reading every body message.

Each is run twice: once for the RSS peak's growth over the process's size before the export
(`ru_maxrss`, whole process: Python objects, the driver's buffers, the allocator's slack), once
under tracemalloc for the peak of Python allocations during the export (slower)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from urllib.parse import urlencode

from bench.run import SECRET, create_database, drop_database

PG = "postgres://postgres@127.0.0.1:5432"
DB = "chatbackend_exportbench"
CSRF = "b" * 32


def environment(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatbackend.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": SECRET,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": database_url,
        "AI_PROVIDER": "offline",
        "LOG_LEVEL": "WARNING",
    }


def setup_django(database_url: str) -> None:
    os.environ.update(environment(database_url))
    import django

    django.setup()


# --- Data -------------------------------------------------------------------------------------


def add_conversations(total: int, per_conversation: int) -> None:
    """Bulk-creates conversations until there are `total`."""
    from django.contrib.auth import get_user_model

    from chat.models import Conversation, Message, MessageFeedback

    user, _ = get_user_model().objects.get_or_create(username="export-bench")
    missing = total - Conversation.objects.count()
    sentence = "How would you plan a three-day trip to Lisbon with a small budget and good food?"
    for start in range(0, missing, 50):
        conversations = Conversation.objects.bulk_create(
            Conversation(user=user, title=f"Trip {start + i}", next_position=per_conversation)
            for i in range(min(50, missing - start))
        )
        messages = Message.objects.bulk_create(
            Message(
                conversation=conversation,
                position=p,
                role="user" if p % 2 == 0 else "assistant",
                content=f"{p}: {sentence}",
                parts=[{"type": "text", "text": f"{p}: {sentence}"}],
                model="" if p % 2 == 0 else "gemini-2.5-flash",
                input_tokens=None if p % 2 == 0 else 120 + p,
                output_tokens=None if p % 2 == 0 else 40,
                total_tokens=None if p % 2 == 0 else 160 + p,
                finish_reason="" if p % 2 == 0 else "stop",
            )
            for conversation in conversations
            for p in range(per_conversation)
        )
        MessageFeedback.objects.bulk_create(
            MessageFeedback(message=m, user=user, rating="down", comment="Too long")
            for m in messages
            if m.position % 10 == 1
        )


# --- Measurements (each in its own process) -----------------------------------------------------


def export_command(format: str) -> dict:
    from django.core.management import call_command

    call_command("export_conversations", "--format", format, "--output", os.devnull)
    return {}


def export_response(format: str) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from chat.models import Conversation
    from chatbackend.asgi import application

    admin, _ = get_user_model().objects.get_or_create(
        username="export-bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)
    cookies = {name: morsel.value for name, morsel in client.cookies.items()}
    cookies["csrftoken"] = CSRF
    first = Conversation.objects.values_list("pk", flat=True).first()
    body = urlencode(
        {
            "action": f"export_{format}",
            "select_across": "1",
            "_selected_action": str(first),
            "csrfmiddlewaretoken": CSRF,
            "index": "0",
        }
    ).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/admin/chat/conversation/",
        "raw_path": b"/admin/chat/conversation/",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            (b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    received = {"status": None, "chunks": 0, "bytes": 0}

    async def receive():
        if not received.get("sent"):
            received["sent"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Future()

    async def send(message):
        if message["type"] == "http.response.start":
            received["status"] = message["status"]
        elif message.get("body"):
            received["chunks"] += 1
            received["bytes"] += len(message["body"])

    asyncio.run(application(scope, receive, send))
    assert received["status"] == 200, received
    return {"chunks": received["chunks"], "bytes": received["bytes"]}


def measure(path: str, format: str, traced: bool) -> dict:
    from django.db import connection

    from chat.models import Message

    messages = Message.objects.count()  # warms the connection and the ORM up
    connection.close()
    run = export_command if path == "command" else export_response
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    result = run(format)
    elapsed = time.perf_counter() - started
    result.update(messages=messages)
    result["seconds_traced" if traced else "seconds"] = round(elapsed, 1)
    if traced:
        result["tracemalloc_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    else:
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        result["rss_growth_mib"] = round(grown / 1024, 1)
        result["rss_peak_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000", help="conversations, comma-separated")
    parser.add_argument("--messages", type=int, default=100, help="messages a conversation")
    parser.add_argument("--formats", default="jsonl,csv")
    parser.add_argument("--paths", default="command,response")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # path,format,traced (child)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        path, format, traced = args.measure.split(",")
        setup_django(args.database_url)
        print(json.dumps(measure(path, format, traced == "1")))
        return

    database_url = f"{PG}/{DB}"
    create_database(f"{PG}/postgres", DB)
    try:
        setup_django(database_url)
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, PostgreSQL")
        for size in (int(s) for s in args.sizes.split(",")):
            add_conversations(size, args.messages)
            connection.close()
            for format in args.formats.split(","):
                for path in args.paths.split(","):
                    row = {"conversations": size, "format": format, "path": path}
                    for traced in ("0", "1"):
                        child = subprocess.run(
                            [
                                sys.executable,
                                "-m",
                                "bench.export_memory",
                                "--measure",
                                f"{path},{format},{traced}",
                                "--database-url",
                                database_url,
                            ],
                            capture_output=True,
                            text=True,
                            env=environment(database_url),
                            check=True,
                        )
                        row.update(json.loads(child.stdout.strip().splitlines()[-1]))
                    print(json.dumps(row), flush=True)
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(f"{PG}/postgres", DB)


if __name__ == "__main__":
    main()
