"""CPU per chat turn in-process, without uvicorn or a load generator: the Django ASGI application
is called directly for `POST /api/chat/stream/` against PostgreSQL and the stand-in (no pacing
delays), and every frame is read to the end. Steadier than `bench.run` for A/B-ing one change:

    python -m bench.turn_cost [--turns 400] [--concurrency 10] [--profile] [--history 50]

Prints CPU (process_time, all threads) per turn; `--profile` adds a pyinstrument tree of the
same turns (slower; its absolute CPU does not count). `--history N`: each turn continues its own
conversation of N earlier messages (seeded by bench/seed.py as for `bench.run --cases N`; reset to
N between runs, outside the measured time) instead of starting one."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time

from bench.run import SECRET, calibration_ms, create_database, reset_conversations, tool
from bench.sdk_cost import start_standin

PG = "postgres://postgres@127.0.0.1:5432"
DB = "chatbackend_turncost"


async def turn(app, token: str, on_first_text=None, conversation_id: str | None = None) -> None:
    """One chat turn through the ASGI application, as uvicorn calls it, read to its end.
    `on_first_text` is called when the first text delta reaches the client (the tests' hook)."""
    request = {"message": "How do streams work?"}
    if conversation_id:
        request["conversation_id"] = conversation_id
    body = json.dumps(request).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/chat/stream/",
        "raw_path": b"/api/chat/stream/",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"accept", b"text/event-stream"),
            (b"authorization", b"Bearer " + token.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    finished = asyncio.Event()
    frames: list[bytes] = []

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        nonlocal on_first_text
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
        elif message["type"] == "http.response.body":
            frames.append(message.get("body", b""))
            if on_first_text is not None and b"text-delta" in frames[-1]:
                on_first_text()
                on_first_text = None
            if not message.get("more_body"):
                finished.set()

    await app(scope, receive, send)
    assert b"[DONE]" in b"".join(frames[-2:]), frames[-3:]


async def run(args, app, tokens: list[str], conversations=None) -> float:
    """`conversations`: [id, user index] per turn (each continued once), or None (new ones)."""
    queue = list(range(args.turns))

    async def worker(i: int) -> None:
        while queue:
            n = queue.pop()
            if conversations is None:
                await turn(app, tokens[i])
            else:
                conversation_id, user = conversations[n]
                await turn(app, tokens[user], conversation_id=conversation_id)

    started = time.process_time()
    await asyncio.gather(*(worker(i) for i in range(args.concurrency)))
    spent = (time.process_time() - started) / args.turns * 1000
    if conversations is not None:  # back to N messages, outside the measured time
        await asyncio.to_thread(reset_conversations, f"{PG}/{DB}", conversations, args.history)
    return spent


def print_self_times(session, turns: int, top: int = 45) -> None:
    """Self time per function and per package, in µs per turn."""
    from collections import Counter

    by_function: Counter = Counter()
    by_package: Counter = Counter()

    def walk(frame) -> None:
        own = frame.total_self_time
        path = frame.file_path_short or ""
        by_function[f"{frame.function} ({path}:{frame.line_no})"] += own
        by_package[path.split("/")[0] if "/" in path else path] += own
        for child in frame.children:
            walk(child)

    walk(session.root_frame(trim_stem=False))
    print("self time, µs per turn, by package:")
    for name, seconds in by_package.most_common(20):
        print(f"  {seconds / turns * 1e6:8.0f}  {name}")
    print("by function:")
    for name, seconds in by_function.most_common(top):
        print(f"  {seconds / turns * 1e6:8.0f}  {name}")


def main() -> None:
    global DB
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--db-name", default="chatbackend_turncost", help="recreated, dropped")
    parser.add_argument("--history", type=int, default=0, help="continue N-message conversations")
    parser.add_argument("--files-every", type=int, default=5, help="seeding: a file every k-th")
    args = parser.parse_args()
    DB = args.db_name
    media = tempfile.TemporaryDirectory(prefix="turn-cost-media-")

    standin, base_url = start_standin(args.chunks)
    create_database(f"{PG}/postgres", DB)
    os.environ.update(
        DJANGO_SETTINGS_MODULE=os.environ.get("TURN_COST_SETTINGS", "chatbackend.settings"),
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=SECRET,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DATABASE_URL=f"{PG}/{DB}",
        AI_PROVIDER="gemini",
        GEMINI_API_KEY="bench-key",
        GEMINI_BASE_URL=base_url,
        CHAT_RATE_LIMIT="0",
        JWT_ACCESS_MINUTES="240",
        LOG_LEVEL="WARNING",
        DJANGO_MEDIA_ROOT=media.name,
    )
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from django.contrib.auth import get_user_model
        from django.db import connection
        from rest_framework_simplejwt.tokens import AccessToken

        users = [  # named as bench.users names them, for bench/seed.py
            get_user_model().objects.create(username=f"bench-{i:05d}")
            for i in range(args.concurrency)
        ]
        tokens = [str(AccessToken.for_user(user)) for user in users]
        connection.close()
        conversations = None
        if args.history:
            seeded = subprocess.run(
                [
                    *tool("seed.py"),
                    f"--users={args.concurrency}",
                    f"--conversations={max(args.turns, 40)}",
                    f"--history={args.history}",
                    f"--files-every={args.files_every}",
                ],
                env={**os.environ, "PYTHONPATH": os.getcwd()},
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            conversations = json.loads(seeded)[str(args.history)]
        import uvloop

        from chatbackend.asgi import application

        async def session() -> None:
            warm = argparse.Namespace(**{**vars(args), "turns": 40})
            await run(warm, application, tokens, conversations)
            for _ in range(args.repeat):
                calibration = calibration_ms()
                spent = await run(args, application, tokens, conversations)
                print(f"{spent:6.2f} ms CPU per turn (calibration {calibration} ms)")
            if args.profile:
                from pyinstrument import Profiler

                with Profiler(async_mode="disabled") as profiler:
                    await run(args, application, tokens, conversations)
                print(profiler.output_text(unicode=True, color=False, show_all=False))
                print_self_times(profiler.last_session, args.turns)

        uvloop.run(session())
    finally:
        standin.stdin.close()
        standin.terminate()
        standin.wait(10)
        from bench.run import drop_database

        drop_database(f"{PG}/postgres", DB)
        media.cleanup()


if __name__ == "__main__":
    main()
