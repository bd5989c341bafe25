"""Summarise a py-spy raw (collapsed stacks) profile:

    python -m bench.profile_summary bench/results/profile-...txt [--top 40] [--under NAME]
    python -m bench.profile_summary FILE --callers NAME     (who calls NAME, a few frames up)
    python -m bench.profile_summary FILE --cpu-ms-per-turn 12.9   (shares as ms per turn too)

Prints samples per thread, the share of the samples spent in each part of the work (a stack
counts for every part it passes through, so the parts overlap), then the functions with the most
inclusive (total) and self samples. `bench.run --py-spy` writes this next to the profile."""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_LINE = re.compile(r":\d+\)")

#: The parts of a served turn, by a substring of a frame ("function (path)"), in the order shown.
#: Inclusive: a sample counts for each part its stack passes through.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("uvicorn: HTTP protocol (parse, send, access log)", ("uvicorn/protocols/http/",)),
    ("  of which the access log line", ("ACCESS",)),  # see _part_hits
    ("logging, all of it (access log, llm.calls, ...)", ("logging/__init__.py",)),
    ("Django's ASGI handler and middleware", ("django/core/handlers/",)),
    ("DRF / adrf (request, authentication, serializer)", ("rest_framework/", "adrf/")),
    ("chat.turns.start_turn (the turn's first DB burst)", ("start_turn (",)),
    ("  chat.history.conversation_history (history rows)", ("conversation_history (",)),
    ("attachments file_parts (history files: rows + bytes)", ("file_parts (",)),
    ("chat.generation (the generation task)", ("chat/generation.py",)),
    ("llm/gemini/wire.py (request building, event parsing)", ("llm/gemini/wire.py",)),
    ("google-genai SDK", ("genai/",)),
    ("aiohttp (the model's connection)", ("aiohttp/",)),
    ("core.hub / streams (frames out)", ("core/hub", "chat/streams.py")),
    ("save_reply (the reply's DB burst)", ("save_reply (",)),
    ("Django ORM: queries built and run (django/db/models/sql/)", ("django/db/models/sql/",)),
    ("  of which building the SQL (as_sql)", ("as_sql (",)),
    ("psycopg (+ pool)", ("psycopg/", "psycopg_pool/")),
    ("json / orjson encode, decode", ("json/", "orjson")),
    ("base64 (inline files; JWT)", ("base64",)),
    ("threading / concurrent.futures (thread hops)", ("threading.py", "concurrent/futures/")),
)


#: Frames every stack of a thread passes through (start-up, the event loop's runner, a pool
#: thread's loop): left out of the inclusive list, which they would fill.
SCAFFOLD = re.compile(
    r"\((<frozen runpy>|click/core\.py|uvicorn/main\.py|uvicorn/__main__\.py|uvicorn/_compat\.py"
    r"|uvicorn/server\.py|asyncio/runners\.py|threading\.py|concurrent/futures/thread\.py)\)$"
)


def _frames(stack: str) -> list[str]:
    return [
        re.sub(r" \((.*?)\)", lambda m: " (" + m.group(1).split("site-packages/")[-1] + ")", f)
        for f in stack.split(";")
    ]


def _part_hits(label: str, needles: tuple[str, ...], body: list[str]) -> bool:
    if needles == ("ACCESS",):  # a logging call made by uvicorn's HTTP protocol
        inside = False
        for f in body:
            if "uvicorn/protocols/http/" in f:
                inside = True
            elif inside and "logging/__init__.py" in f:
                return True
        return False
    return any(n in f for f in body for n in needles)


def summary(
    path: str | Path,
    *,
    top: int = 40,
    under: str | None = None,
    callers_of: str | None = None,
    depth: int = 6,
    cpu_ms_per_turn: float | None = None,
) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    callers: collections.Counter[str] = collections.Counter()
    parts: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            n = int(count)
            frames = _frames(stack)
            if under and not any(under in f for f in frames):
                continue
            total += n
            first = 1 if frames[0].startswith("process ") else 0
            if frames[first].startswith("thread "):
                name = frames[first].split(": ", 1)[-1].strip('"')
                # Pool threads are numbered: one line per pool.
                threads[re.sub(r"_\d+$", "_*", name)[:60]] += n
                first += 1
            body = [_LINE.sub(")", f) for f in frames[first:]]
            for f in set(body):
                inclusive[f] += n
            if body:
                own[body[-1]] += n
            for label, needles in PARTS:
                if _part_hits(label, needles, body):
                    parts[label] += n
            if callers_of:
                for i, f in enumerate(frames):
                    if callers_of in f:
                        chain = reversed(frames[max(first, i - depth) : i + 1])
                        callers[" <- ".join(chain)] += n
                        break
    out = [f"samples: {total} (py-spy at 100 Hz: ~{total / 100:.1f} s of a thread running)"]

    def pct(n: int) -> str:
        share = n / max(total, 1)
        per_turn = f"  {share * cpu_ms_per_turn:5.2f} ms/turn" if cpu_ms_per_turn else ""
        return f"{n:6d} {100 * share:5.1f}%{per_turn}"

    if callers_of:
        for chain, n in callers.most_common(top):
            out.append(f"{pct(n)}  {chain[:700]}\n")
        return "\n".join(out) + "\n"
    out.append("--- threads")
    out += [f"{pct(n)}  {name}" for name, n in threads.most_common(12)]
    out.append("--- parts of the work (inclusive; they overlap)")
    out += [f"{pct(parts[label])}  {label}" for label, _ in PARTS]
    out.append(f"--- total (inclusive), top {top}, without the threads' scaffolding")
    shown = [(name, n) for name, n in inclusive.most_common() if not SCAFFOLD.search(name)]
    out += [f"{pct(n)}  {name[:150]}" for name, n in shown[:top]]
    out.append(f"--- self, top {top}")
    out += [f"{pct(n)}  {name[:150]}" for name, n in own.most_common(top)]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--under", help="only stacks through a frame containing this")
    parser.add_argument("--callers", help="show who calls the frame containing this")
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--cpu-ms-per-turn", type=float, help="show shares as ms per turn")
    args = parser.parse_args()
    print(
        summary(
            args.path,
            top=args.top,
            under=args.under,
            callers_of=args.callers,
            depth=args.depth,
            cpu_ms_per_turn=args.cpu_ms_per_turn,
        ),
        end="",
    )


if __name__ == "__main__":
    main()
