"""The load generator: one process, raw asyncio streams on uvloop (a few KB per open stream, so a
thousand concurrent streams cost it little), one new connection per turn.

Reads one JSON job from stdin, writes one JSON result to stdout:

    job = {"host", "port", "mode": "backend"|"standin", "path", "requests": [
              {"headers": {...}, "body": {...}}, ...],   # one per worker
           "turns_per_worker", "timeout_s", "deadline_s"}

A worker's entry may instead be {"turns": [{"headers", "body"}, ...]}: its turns in order (e.g.
each turn continuing a conversation of its own).

`backend`: a chat turn (UI message stream): each `text-delta` frame is a token; the turn is ok when
the stream ends with a `finish` frame and `data: [DONE]`. `standin`: Gemini's SSE straight from the
stand-in: each `data:` frame is a token; ok when the last frame carries `finishReason`.

Per turn: ok, error, ttft_s (request sent → first token), gaps_s (between tokens), tokens."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

now = time.perf_counter


class TurnFailed(Exception):
    pass


def _request_bytes(host: str, port: int, path: str, headers: dict, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _body_pieces(reader: asyncio.StreamReader, chunked: bool):
    if not chunked:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            yield data
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


async def one_turn(job: dict, request: bytes) -> dict:
    backend = job["mode"] == "backend"
    sep = b"\n\n" if backend else b"\r\n\r\n"
    started = now()
    stamps: list[float] = []
    finished = done = False
    writer = None
    try:
        reader, writer = await asyncio.open_connection(job["host"], job["port"], limit=1 << 20)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            rest = await asyncio.wait_for(reader.read(2000), 5)
            raise TurnFailed(f"HTTP {status}: {rest[:200]!r}")
        chunked = b"transfer-encoding: chunked" in head.lower()
        buffer = b""
        async for piece in _body_pieces(reader, chunked):
            t = now()
            buffer += piece
            *frames, buffer = buffer.split(sep)
            for frame in frames:
                if backend:
                    if b'"type":"text-delta"' in frame:
                        stamps.append(t)
                    elif b'"type":"finish"' in frame:
                        finished = True
                    elif frame == b"data: [DONE]":
                        done = True
                    elif b'"type":"error"' in frame:
                        raise TurnFailed(f"error frame: {frame[:200]!r}")
                elif frame.startswith(b"data: "):
                    if b'"error"' in frame[:20]:
                        raise TurnFailed(f"error frame: {frame[:200]!r}")
                    stamps.append(t)
                    if b'"finishReason"' in frame:
                        finished = done = True
        if not (finished and done):
            raise TurnFailed(f"stream ended without finish/[DONE] after {len(stamps)} tokens")
        if not stamps:
            raise TurnFailed("no tokens")
        error = None
    except TurnFailed as exc:
        error = str(exc)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            writer.close()
    return {
        "ok": error is None,
        "error": error,
        "start": started,
        "ttft_s": stamps[0] - started if stamps else None,
        "gaps_s": [b - a for a, b in itertools.pairwise(stamps)],
        "tokens": len(stamps),
        "end": now(),
    }


async def worker(job: dict, requests: list[bytes], results: list, deadline: float) -> None:
    for n in range(job["turns_per_worker"]):
        request = requests[n % len(requests)]
        if now() > deadline:
            results.append({"ok": False, "error": "skipped: level deadline passed"})
            continue
        try:
            results.append(await asyncio.wait_for(one_turn(job, request), job["timeout_s"]))
        except TimeoutError:
            results.append({"ok": False, "error": f"timeout after {job['timeout_s']}s"})


async def run(job: dict) -> dict:
    requests = [
        [
            _request_bytes(job["host"], job["port"], job["path"], t["headers"], t["body"])
            for t in r.get("turns") or [r]
        ]
        for r in job["requests"]
    ]
    results: list[dict] = []
    started = now()
    deadline = started + job["deadline_s"]
    await asyncio.gather(*(worker(job, mine, results, deadline) for mine in requests))
    return {"wall_s": now() - started, "turns": results}


def main() -> None:
    job = json.load(sys.stdin)
    if uvloop is not None:
        uvloop.install()
    result = asyncio.run(run(job))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
